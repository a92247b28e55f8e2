"""Snapshot of the training window and the data gate, on moto S3 with real Parquet partitions."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pandas as pd
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from functions.check_data_gate.logic import (
    LATEST_PROFILE_KEY,
    DataGatePolicy,
    DataGateSettings,
    DataProfile,
    check_data_gate,
    evaluate_data_gate,
)
from functions.prepare_training_data.logic import PrepareSettings, prepare_training_data
from functions.shared.contract import load_contract
from functions.shared.policy import PolicyError
from mlloop.datagen import generate_churn
from tests.unit.workflow_support import curated_frame, put_curated

CONTRACT = load_contract("churn")
# The lake's arrival record is S3's LastModified, which moto stamps with the wall clock: the runs are cut after it.
NOW = datetime.now(UTC) + timedelta(minutes=5)
TRIGGER = {"kind": "schedule", "source": "rule", "time": NOW.isoformat()}


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.session.Session(region_name="us-east-1").client("s3")
        for bucket in ("curated", "artifacts"):
            client.create_bucket(Bucket=bucket)
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield client


def prepare(s3: Any, run_id: str, window_days: int = 365) -> Any:
    settings = PrepareSettings("curated", "artifacts", "churn", "churn", window_days)
    return prepare_training_data(run_id, TRIGGER, s3=s3, settings=settings, now=NOW)


def gate(s3: Any, snapshot: Any, min_rows: int = 1000) -> Any:
    settings = DataGateSettings("artifacts", "churn", DataGatePolicy(min_rows=min_rows))
    return check_data_gate(snapshot.run_id, snapshot.manifest_key, s3=s3, contract=CONTRACT, settings=settings)


def test_the_snapshot_writes_the_window_labelled_per_day_and_names_its_data_version(s3: Any) -> None:
    keys = put_curated(s3, "curated", curated_frame())
    s3.put_object(Bucket="curated", Key="churn/event_date=2020-01-01/old.parquet", Body=b"outside the window")

    snapshot = prepare(s3, "run-1")

    assert snapshot.object_count == len(keys)
    assert snapshot.training_job_name == "churn-run-1"
    copied = s3.list_objects_v2(Bucket="artifacts", Prefix="training/runs/run-1/data/")["Contents"]
    assert sorted(o["Key"].split("/data/")[1] for o in copied) == sorted(
        f"{k.removeprefix('churn/').rsplit('/', 1)[0]}/labelled.parquet" for k in keys
    )
    manifest = json.loads(s3.get_object(Bucket="artifacts", Key=snapshot.manifest_key)["Body"].read())
    assert manifest["data_version"] == snapshot.data_version
    assert all(o["version_id"] not in ("", "null") for o in manifest["objects"])
    assert snapshot.train_uri == "s3://artifacts/training/runs/run-1/data/"


def test_the_data_version_changes_when_a_file_is_rewritten_and_not_otherwise(s3: Any) -> None:
    keys = put_curated(s3, "curated", curated_frame())
    first = prepare(s3, "run-1").data_version
    same = prepare(s3, "run-2").data_version
    s3.copy_object(
        Bucket="curated", Key=keys[0], CopySource={"Bucket": "curated", "Key": keys[0]}, MetadataDirective="REPLACE"
    )
    changed = prepare(s3, "run-3").data_version

    assert first == same
    assert changed != first


def test_a_healthy_snapshot_passes_and_becomes_the_reference(s3: Any) -> None:
    put_curated(s3, "curated", curated_frame())
    result = gate(s3, prepare(s3, "run-1"))

    assert result.passed, result.reasons
    assert result.row_count == 3000
    assert 0.01 < result.positive_rate < 0.99
    latest = json.loads(s3.get_object(Bucket="artifacts", Key=LATEST_PROFILE_KEY)["Body"].read())
    assert latest["run_id"] == "run-1"


def test_an_empty_window_is_rejected_with_its_reason(s3: Any) -> None:
    result = gate(s3, prepare(s3, "run-1"))

    assert not result.passed
    assert any("row count 0" in r for r in result.reasons)
    assert "data gate rejected" in result.summary


def test_a_shift_against_the_previous_snapshot_gives_every_reason() -> None:
    previous = DataProfile("run-0", "v0", "churn@1.0.0", row_count=10_000, positive_count=2_000)
    current = DataProfile(
        "run-1",
        "v1",
        "churn@1.0.0",
        row_count=4_000,
        positive_count=2_000,
        null_counts={"total_charges": 1_200, "plan": 4},
    )

    reasons = evaluate_data_gate(current, previous, CONTRACT, DataGatePolicy())

    assert any("row count fell to 4000" in r for r in reasons)
    assert any("positive rate moved 0.300" in r for r in reasons)
    assert any("column total_charges null rate rose" in r for r in reasons)
    assert any("column plan" in r and "forbids nulls" in r for r in reasons)


def test_the_data_gate_reads_its_stage_policy_from_the_environment() -> None:
    env = {"ARTIFACTS_BUCKET": "artifacts", "DATASET": "churn", "DATA_GATE_POLICY": json.dumps({"min_rows": 50})}
    assert DataGateSettings.from_env(env).policy == DataGatePolicy(min_rows=50)
    assert DataGateSettings.from_env({**env, "DATA_GATE_POLICY": ""}).policy == DataGatePolicy()
    with pytest.raises(PolicyError, match="min_row: unknown policy field"):
        DataGateSettings.from_env({**env, "DATA_GATE_POLICY": json.dumps({"min_row": 50})})


def test_a_window_ends_at_the_newest_curated_data_so_a_decade_old_backfill_trains(s3: Any) -> None:
    history = generate_churn(600, seed=11, start=datetime(2015, 3, 1, tzinfo=UTC), months=2)
    keys = put_curated(s3, "curated", history)

    snapshot = prepare(s3, "run-history", window_days=30)

    newest = max(k.split("event_date=")[1][:10] for k in keys)
    assert snapshot.window_end == newest
    assert snapshot.object_count == sum(1 for k in keys if k.split("event_date=")[1][:10] >= snapshot.window_start)
    assert snapshot.object_count > 0
    assert snapshot.curated_span == f"{min(k.split('event_date=')[1][:10] for k in keys)}..{newest}"


def test_a_run_may_name_its_last_day_and_never_sees_data_after_it(s3: Any) -> None:
    keys = put_curated(s3, "curated", curated_frame())
    days = sorted(k.split("event_date=")[1][:10] for k in keys)
    trigger = {**TRIGGER, "kind": "manual", "detail": {"window_end": days[10]}}
    settings = PrepareSettings("curated", "artifacts", "churn", "churn", 365)

    snapshot = prepare_training_data("run-end", trigger, s3=s3, settings=settings, now=NOW)

    assert snapshot.window_end == days[10]
    assert snapshot.object_count == 11


def test_an_empty_window_says_where_the_curated_data_is(s3: Any) -> None:
    put_curated(s3, "curated", curated_frame())
    trigger = {**TRIGGER, "detail": {"window_end": "2001-01-01"}}
    settings = PrepareSettings("curated", "artifacts", "churn", "churn", 365)

    snapshot = prepare_training_data("run-empty", trigger, s3=s3, settings=settings, now=NOW)

    assert snapshot.object_count == 0
    assert snapshot.window_end == "2001-01-01"
    assert snapshot.curated_span.count("..") == 1
    assert not snapshot.curated_span.startswith("2001")


def test_the_snapshot_holds_each_fact_once_and_the_latest_arrival_wins(s3: Any) -> None:
    # Given a partition where a later file repeats earlier facts (ingestions that raced), one of them corrected
    frame = curated_frame(600)
    put_curated(s3, "curated", frame)
    day = pd.to_datetime(frame["event_time"], utc=True).dt.strftime("%Y-%m-%d")
    first_day = day.iloc[0]
    repeated = frame[day == first_day].copy()
    repeated.loc[repeated.index[0], "monthly_charges"] = 12.5
    buffer = io.BytesIO()
    repeated.to_parquet(buffer, index=False)
    s3.put_object(Bucket="curated", Key=f"churn/event_date={first_day}/part-0001.parquet", Body=buffer.getvalue())

    # When a snapshot is cut and checked
    snapshot = prepare(s3, "run-dedup")
    result = gate(s3, snapshot, min_rows=100)

    # Then the repeated facts are counted once, with the later file's values
    assert snapshot.duplicates_removed == len(repeated)
    assert result.row_count == len(frame)
    manifest = json.loads(s3.get_object(Bucket="artifacts", Key=snapshot.manifest_key)["Body"].read())
    assert manifest["duplicates_removed"] == len(repeated)
    keys = sorted({o["snapshot_key"] for o in manifest["objects"] if o["event_date"] == first_day})
    (merged,) = keys
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket="artifacts", Key=merged)["Body"].read())).to_pandas()
    assert len(table) == len(repeated)
    corrected = table[table["customer_id"] == repeated["customer_id"].iloc[0]]
    assert corrected["monthly_charges"].tolist() == [12.5]


def _changed_since(day: str) -> list[Any]:
    from functions.prepare_training_data.change import LIVE_AUC, ChangeSignal

    since = datetime.fromisoformat(day).date()
    return [ChangeSignal(since + timedelta(days=i), i >= 0, LIVE_AUC) for i in range(-20, 22)]


def test_a_change_the_detectors_established_starts_the_window_there_and_the_manifest_says_why(s3: Any) -> None:
    # Given a month of labelled data, and detectors that saw the world change on 2026-10-10
    put_curated(s3, "curated", curated_frame())
    settings = PrepareSettings("curated", "artifacts", "churn", "churn", 365, min_rows=100, min_span_days=5)

    # When a retraining snapshots it
    snapshot = prepare_training_data(
        "run-change", TRIGGER, s3=s3, settings=settings, now=NOW, change_signals=_changed_since("2026-10-10")
    )

    # Then it trains on the days since the change only, and records the rule
    assert snapshot.window_start == "2026-10-10" and snapshot.has_new_labels
    assert snapshot.window_rule["change_since"] == "2026-10-10"
    written = s3.list_objects_v2(Bucket="artifacts", Prefix="training/runs/run-change/data/")["Contents"]
    assert min(o["Key"].split("event_date=")[1][:10] for o in written) == "2026-10-10"
    manifest = json.loads(s3.get_object(Bucket="artifacts", Key=snapshot.manifest_key)["Body"].read())
    assert manifest["window"]["rule"]["reason"].startswith("the window starts at the change")
    assert all(o["event_date"] >= "2026-10-10" for o in manifest["objects"])


def test_a_change_with_too_few_labels_since_it_waits_before_the_training_job(s3: Any) -> None:
    put_curated(s3, "curated", curated_frame())
    settings = PrepareSettings("curated", "artifacts", "churn", "churn", 365, min_rows=100_000, min_span_days=5)

    snapshot = prepare_training_data(
        "run-wait", TRIGGER, s3=s3, settings=settings, now=NOW, change_signals=_changed_since("2026-10-10")
    )

    assert not snapshot.has_new_labels
    assert snapshot.retraining_reason.startswith("waiting for labels since the change")


def test_the_detectors_reports_say_which_days_changed_for_the_champion(s3: Any) -> None:
    from datetime import date

    from functions.prepare_training_data.change import DRIFT, LIVE_AUC, ChangeSignal
    from functions.prepare_training_data.detectors import DetectorThresholds, read_detector_record

    def put(key: str, body: dict[str, Any]) -> None:
        s3.put_object(Bucket="artifacts", Key=key, Body=json.dumps(body).encode())

    for hour, drifted in (("05", False), ("23", True)):
        put(
            f"drift-reports/ep/2026/10/02/{hour}/drift_report.json",
            {
                "model_version": "v1",
                "verdict": "drift",
                "drift_detected": drifted,
                "window_end": f"2026-10-02T{hour}:00:00Z",
            },
        )
    put("drift-reports/ep/2026/09/01/23/drift_report.json", {"model_version": "v1", "drift_detected": True})
    put(
        "drift-reports/ep/2026/10/03/23/drift_report.json",
        {"model_version": "v0", "verdict": "insufficient_data", "window_end": "2026-10-03T23:00:00Z"},
    )
    by_day = {"2026-10-01": {"verdict": "measured", "auc": 0.70, "labeled_predictions": 300}}
    put("monitoring/quality/ep/2026/11/20/06/quality_report.json", {"by_model_version": {"v1": {"by_day": {}}}})
    put("monitoring/quality/ep/2026/11/21/06/quality_report.json", {"by_model_version": {"v1": {"by_day": by_day}}})

    record = read_detector_record(
        s3,
        "artifacts",
        "ep",
        evaluated_auc=lambda versions: {"v1": 0.82},
        since=date(2026, 10, 1),
        thresholds=DetectorThresholds(min_live_auc=0.65, max_live_auc_drop=0.03),
    )

    assert record.signals == [
        ChangeSignal(date(2026, 10, 2), True, DRIFT),
        ChangeSignal(date(2026, 10, 1), True, LIVE_AUC),
    ]
    assert record.live_since(date(2026, 10, 1)) == {"roc_auc": 0.70, "ece": 0.0, "labeled_predictions": 300.0}
