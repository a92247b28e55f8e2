"""Nothing lost: rows in = rows curated + rows quarantined at 0 %, 1 % and 100 % bad rows, in one chunk or many;
curated data is partitioned by event date and stamped with the contract version."""

from __future__ import annotations

import pandas as pd
import pytest

from functions.shared.contract import load_contract
from tests.unit.ingest_support import CURATED, Lake, churn_rows, csv_bytes, lake

__all__ = ["lake"]


@pytest.mark.parametrize("bad_share", [0.0, 0.01, 1.0])
@pytest.mark.parametrize("chunk_rows", [10_000, 70])
def test_every_row_is_curated_or_quarantined(lake: Lake, bad_share: float, chunk_rows: int) -> None:
    # Given a file where a known share of rows breaks the contract
    frame = churn_rows(400, seed=3, corrupt_fraction=bad_share)
    bad_rows = set(frame.attrs["corrupt_rows"])
    source = lake.put_raw(f"churn/share-{bad_share}-{chunk_rows}.csv", csv_bytes(frame))

    # When it is ingested, in one chunk or in chunks smaller than the file
    report = lake.ingest(source, chunk_rows=chunk_rows)

    # Then every row lands exactly once, and exactly the bad rows are quarantined
    curated, quarantined = lake.curated(report), lake.quarantined_rows(report)
    assert report.rows_in == 400
    assert report.rows_curated + report.rows_quarantined == report.rows_in
    assert (len(curated), len(quarantined)) == (report.rows_curated, report.rows_quarantined)
    assert set(quarantined.get("source_row", [])) == bad_rows
    clean_ids = frame.drop(index=list(bad_rows))["customer_id"]
    assert sorted(curated.get("customer_id", [])) == sorted(clean_ids)
    assert lake.report(report)["rows_in"] == 400


def test_duplicate_keys_are_found_across_chunks(lake: Lake) -> None:
    frame = churn_rows(100)
    frame.loc[90, ["customer_id", "event_time"]] = frame.loc[5, ["customer_id", "event_time"]].to_numpy()
    source = lake.put_raw("churn/dup-across-chunks.csv", csv_bytes(frame))

    report = lake.ingest(source, chunk_rows=30)

    assert report.rule_counts == {"duplicate_key": 1}
    assert lake.quarantined_rows(report)["source_row"].tolist() == [90]
    assert report.duplicate_rate_percent == pytest.approx(1.0)


def test_chunked_file_writes_one_part_per_chunk_and_date(lake: Lake) -> None:
    source = lake.put_raw("churn/many-chunks.csv", csv_bytes(churn_rows(300)))

    chunked = lake.ingest(source, chunk_rows=50)

    parts = {uri.rsplit("-", 1)[1] for uri in chunked.curated_objects}
    assert parts == {f"{n:05d}.parquet" for n in range(6)}
    assert chunked.rows_curated == 300


def test_curated_layout_is_partitioned_by_event_date_and_stamped_with_the_contract(lake: Lake) -> None:
    contract = load_contract("churn")
    frame = churn_rows(60)
    source = lake.put_raw("churn/stamped.csv", csv_bytes(frame))

    report = lake.ingest(source)

    for uri in report.curated_objects:
        key = uri.split("/", 3)[3]
        dataset, partition, name = key.split("/")
        table = lake.parquet_table(CURATED, key)
        dates = {t.date().isoformat() for t in table.column("event_time").to_pylist()}
        assert (dataset, partition) == ("churn", f"event_date={dates.pop()}") and not dates
        assert name.startswith("stamped-") and name.endswith(".parquet")
        assert table.schema.metadata[b"contract_version"] == contract.version.encode()
        assert table.schema.metadata[b"contract"] == contract.ref.encode()
        assert set(table.column("contract_version").to_pylist()) == {contract.version}
        head = lake.s3.head_object(Bucket=CURATED, Key=key)
        assert head["Metadata"]["contract_version"] == contract.version
    curated = lake.curated(report)
    assert list(curated.columns[: len(contract.columns)]) == contract.columns
    assert str(curated["event_time"].dt.tz) == "UTC"


def test_report_counts_rules_and_freshness(lake: Lake) -> None:
    frame = churn_rows(200, corrupt_fraction=0.05)
    source = lake.put_raw("churn/report.csv", csv_bytes(frame))

    report = lake.report(lake.ingest(source))

    assert sum(report["rule_counts"].values()) >= report["rows_quarantined"] == 10
    assert report["quarantine_rate_percent"] == pytest.approx(5.0)
    assert report["contract_version"] == "1.0.0"
    assert report["freshness_lag_seconds"] > 0
    assert report["stale"] is False


def test_an_old_but_allowed_file_is_curated_and_flagged_stale(lake: Lake) -> None:
    frame = churn_rows(20)
    frame["event_time"] = frame["event_time"] - pd.Timedelta(days=40)
    source = lake.put_raw("churn/old.csv", csv_bytes(frame))

    report = lake.ingest(source)

    assert report.rows_curated == 20
    assert report.stale
