"""Every row rule, each with a file that breaks it: bad rows reach quarantine naming the rule and the value,
good rows reach curated, and the counts add up."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from tests.unit.ingest_support import Lake, churn_rows, csv_bytes, lake

__all__ = ["lake"]

BAD_ROW = 3
Breaker = Callable[[pd.DataFrame], tuple[str, str]]


def _out_of_range(frame: pd.DataFrame) -> tuple[str, str]:
    frame.loc[BAD_ROW, "monthly_charges"] = 9999.5
    return "out_of_range", "9999.5"


def _below_range(frame: pd.DataFrame) -> tuple[str, str]:
    frame.loc[BAD_ROW, "discount_pct"] = -4.0
    return "out_of_range", "-4.0"


def _unknown_category(frame: pd.DataFrame) -> tuple[str, str]:
    frame.loc[BAD_ROW, "plan"] = "platinum"
    return "unknown_category", "platinum"


def _null_not_allowed(frame: pd.DataFrame) -> tuple[str, str]:
    frame["region"] = frame["region"].astype(object)
    frame.loc[BAD_ROW, "region"] = None
    return "null_not_allowed", "region is empty"


def _empty_key(frame: pd.DataFrame) -> tuple[str, str]:
    frame.loc[BAD_ROW, "customer_id"] = None
    return "null_not_allowed", "customer_id is empty"


def _type_mismatch_number(frame: pd.DataFrame) -> tuple[str, str]:
    frame["monthly_charges"] = frame["monthly_charges"].astype(object)
    frame.loc[BAD_ROW, "monthly_charges"] = "seventy"
    return "type_mismatch", "seventy"


def _type_mismatch_integer(frame: pd.DataFrame) -> tuple[str, str]:
    frame["tenure_months"] = frame["tenure_months"].astype(object)
    frame.loc[BAD_ROW, "tenure_months"] = "12.5"
    return "type_mismatch", "12.5"


def _type_mismatch_boolean(frame: pd.DataFrame) -> tuple[str, str]:
    frame["auto_renew"] = frame["auto_renew"].astype(object)
    frame.loc[BAD_ROW, "auto_renew"] = "maybe"
    return "type_mismatch", "maybe"


def _type_mismatch_timestamp(frame: pd.DataFrame) -> tuple[str, str]:
    frame["event_time"] = frame["event_time"].astype(object)
    frame.loc[BAD_ROW, "event_time"] = "last tuesday"
    return "type_mismatch", "last tuesday"


def _future_timestamp(frame: pd.DataFrame) -> tuple[str, str]:
    frame.loc[BAD_ROW, "event_time"] = pd.Timestamp("2026-07-01T00:00:00Z")
    return "future_timestamp", "2026-07-01"


def _stale_timestamp(frame: pd.DataFrame) -> tuple[str, str]:
    frame.loc[BAD_ROW, "event_time"] = pd.Timestamp("2019-01-01T00:00:00Z")
    return "stale_timestamp", "2019-01-01"


def _invalid_label(frame: pd.DataFrame) -> tuple[str, str]:
    frame.loc[BAD_ROW, "churned"] = 7
    return "invalid_label", "7"


def _duplicate_key(frame: pd.DataFrame) -> tuple[str, str]:
    frame.loc[BAD_ROW, ["customer_id", "event_time"]] = frame.loc[BAD_ROW - 1, ["customer_id", "event_time"]].to_numpy()
    return "duplicate_key", str(frame.loc[BAD_ROW, "customer_id"])


BREAKERS: list[Breaker] = [
    _out_of_range,
    _below_range,
    _unknown_category,
    _null_not_allowed,
    _empty_key,
    _type_mismatch_number,
    _type_mismatch_integer,
    _type_mismatch_boolean,
    _type_mismatch_timestamp,
    _future_timestamp,
    _stale_timestamp,
    _invalid_label,
    _duplicate_key,
]


@pytest.mark.parametrize("breaker", BREAKERS, ids=lambda b: b.__name__.strip("_"))
def test_a_row_breaking_a_rule_is_quarantined_with_rule_and_value(lake: Lake, breaker: Breaker) -> None:
    # Given a clean file with one row that breaks the rule
    frame = churn_rows(20)
    rule, shown = breaker(frame)
    source = lake.put_raw(f"churn/broken{breaker.__name__}.csv", csv_bytes(frame))

    # When it is ingested
    report = lake.ingest(source)

    # Then that row alone is quarantined, naming the rule and the value, and the rest is curated
    quarantined = lake.quarantined_rows(report)
    assert report.rows_in == 20 and report.rows_curated == 19 and report.rows_quarantined == 1
    assert report.rule_counts == {rule: 1}
    assert quarantined["source_row"].tolist() == [BAD_ROW]
    assert quarantined["rules"].tolist() == [rule]
    assert rule in quarantined["reason"][0] and shown in quarantined["reason"][0]
    assert len(lake.curated(report)) == 19
    assert not report.quarantined_whole


def test_a_row_breaking_several_rules_lists_each(lake: Lake) -> None:
    frame = churn_rows(10)
    _out_of_range(frame)
    _unknown_category(frame)
    source = lake.put_raw("churn/two-rules.csv", csv_bytes(frame))

    report = lake.ingest(source)

    (row,) = lake.quarantined_rows(report).to_dict("records")
    assert row["rules"] == "out_of_range,unknown_category"
    assert report.rule_counts == {"out_of_range": 1, "unknown_category": 1}
    assert report.rows_quarantined == 1


def test_nullable_features_may_be_empty(lake: Lake) -> None:
    frame = churn_rows(10)
    frame["payment_method"] = None
    frame["total_charges"] = None
    source = lake.put_raw("churn/nullable.csv", csv_bytes(frame))

    report = lake.ingest(source)

    assert report.rows_curated == 10
    assert report.null_rate_percent == pytest.approx(100 * 20 / (10 * 12), abs=0.01)


def test_a_ragged_csv_row_is_quarantined_as_malformed_with_its_text(lake: Lake) -> None:
    body = csv_bytes(churn_rows(10)) + b"C9999999,2026-05-01T00:00:00Z,3\n"
    source = lake.put_raw("churn/ragged.csv", body)

    report = lake.ingest(source)

    (row,) = lake.quarantined_rows(report).to_dict("records")
    assert report.rows_in == 11 and report.rows_curated == 10 and report.rows_quarantined == 1
    assert row["rules"] == "malformed_row"
    assert "C9999999" in row["record"]
    assert "expected 15 columns, found 3" in row["reason"]
