"""Point-in-time labels of the training snapshot: which label a fact has at the cut, since when, and whether a run
has anything new to learn since the champion. Pure pandas, arrival times given explicitly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from functions.notify_training_outcome.logic import NotifySettings, summarise
from functions.prepare_training_data.logic import (
    LabelCounts,
    join_labels_as_of,
    retraining_verdict,
    versions_as_of,
)
from functions.shared.contract import load_contract

CONTRACT = load_contract("churn")
DAY0 = pd.Timestamp("2026-01-01", tz="UTC")
WINDOW = pd.Timedelta(days=CONTRACT.label.window_days)


def facts(*rows: tuple[str, pd.Timestamp, float | None, pd.Timestamp]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "event_time": [r[1] for r in rows],
            "churned": [r[2] for r in rows],
            "__arrived_at": [r[3] for r in rows],
        }
    )


def feed(*rows: tuple[str, pd.Timestamp, int, pd.Timestamp]) -> pd.DataFrame:
    return facts(*rows)


def test_an_inline_label_counts_only_when_its_file_landed_after_the_window_closed() -> None:
    rows = facts(
        ("mature-at-arrival", DAY0, 1, DAY0 + WINDOW + pd.Timedelta(days=1)),
        ("written-too-early", DAY0, 0, DAY0 + pd.Timedelta(days=3)),
    )

    latest, known = join_labels_as_of(rows, pd.DataFrame(), CONTRACT, (DAY0 + 3 * WINDOW).to_pydatetime())

    assert list(latest.index) == [0]
    assert known[0] == DAY0 + WINDOW + pd.Timedelta(days=1)


def test_a_feed_label_needs_both_its_arrival_and_its_window_closed_by_the_cut() -> None:
    rows = facts(("a", DAY0, None, DAY0), ("b", DAY0, None, DAY0), ("c", DAY0 + WINDOW, None, DAY0 + WINDOW))
    cut = DAY0 + WINDOW + pd.Timedelta(days=2)
    labels = feed(
        ("a", DAY0, 1, DAY0 + pd.Timedelta(days=5)),  # a cancellation reported early: a label once the window closed
        ("b", DAY0, 0, cut + pd.Timedelta(seconds=1)),  # landed after the cut
        ("c", DAY0 + WINDOW, 1, DAY0 + WINDOW + pd.Timedelta(days=1)),  # its window is still open at the cut
    )

    latest, known = join_labels_as_of(rows, labels, CONTRACT, cut.to_pydatetime())

    assert list(latest.index) == [0]
    assert latest.loc[0, "churned"] == 1
    assert known[0] == DAY0 + WINDOW


def test_the_latest_arrival_wins_and_the_first_known_time_is_kept() -> None:
    first = DAY0 + WINDOW + pd.Timedelta(days=1)
    rows = facts(("a", DAY0, 0, first))
    labels = feed(("a", DAY0, 1, first + pd.Timedelta(days=4)))

    latest, known = join_labels_as_of(rows, labels, CONTRACT, (first + pd.Timedelta(days=10)).to_pydatetime())

    assert latest.loc[0, "churned"] == 1 and latest.loc[0, "__label_from"] == "feed"
    assert known[0] == first


def test_the_version_current_at_the_cut_is_read_and_later_keys_are_counted_apart() -> None:
    t = datetime(2026, 3, 1, tzinfo=UTC)
    key, late = "churn/event_date=2026-01-01/a.parquet", "churn/event_date=2026-01-02/b.parquet"
    versions = [
        {"Key": key, "VersionId": "v2", "LastModified": t + timedelta(hours=2)},
        {"Key": key, "VersionId": "v1", "LastModified": t},
        {"Key": late, "VersionId": "v1", "LastModified": t + timedelta(hours=3)},
    ]

    current, later = versions_as_of(versions, [], t + timedelta(hours=1))
    marker = {"Key": key, "LastModified": t + timedelta(minutes=30)}
    deleted, _ = versions_as_of(versions, [marker], t + timedelta(hours=1))

    assert [v["VersionId"] for v in current] == ["v1"]
    assert [v["Key"] for v in later] == [late]
    assert deleted == []


def test_a_run_with_no_new_labels_since_the_champion_is_not_worth_a_training_job() -> None:
    stale = LabelCounts(cut="2026-03-01T00:00:00+00:00", labelled=4000, newly_matured=0, champion_model_version="v1")

    assert retraining_verdict(stale, {"kind": "alarm"}, has_champion=True)[0] is False
    assert "no new labels" in retraining_verdict(stale, {"kind": "alarm"}, has_champion=True)[1]
    assert retraining_verdict(stale, {"kind": "manual", "force": True}, has_champion=True)[0] is True
    assert retraining_verdict(stale, {"kind": "schedule"}, has_champion=False) == (True, "no champion yet")
    fresh = LabelCounts(cut=stale.cut, labelled=4000, newly_matured=12, champion_model_version="v1")
    assert retraining_verdict(fresh, {"kind": "alarm"}, has_champion=True)[0] is True


def test_the_notification_of_a_stopped_run_says_why_and_that_nothing_was_trained() -> None:
    state = {
        "trigger": {"kind": "alarm", "source": "mlloop-dev-monitoring-retraining-needed", "time": "2026-03-01T00:00Z"},
        "snapshot": {
            "object_count": 3,
            "has_new_labels": False,
            "retraining_reason": "no new labels: none of the 4000 labelled rows matured or arrived ...",
            "labels": {"cut": "2026-03-01T00:00:00+00:00", "labelled": 4000, "immature_dropped": 600},
        },
    }

    summary = summarise("no_new_labels", "run-7", state, NotifySettings("topic", "group", "dev"))

    assert "no new labels" in summary.subject
    assert "No training job was started and nothing was registered: no new labels" in summary.text
    assert "alarm from mlloop-dev-monitoring-retraining-needed" in summary.text
    assert "600 still in their label window" in summary.text
    assert summary.error == ""
