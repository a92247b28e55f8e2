"""The snapshot's window after a change in the world: where the change began, and whether the data since then is
enough to train on (functions/prepare_training_data/change.py)."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from functions.prepare_training_data.change import (
    DRIFT,
    LIVE_AUC,
    MIN_NET_CHANGED_DAYS,
    Change,
    ChangeSignal,
    change_start,
    days_of_every_version,
    drift_signals,
    live_auc_signals,
    live_metrics_since,
    min_split_span_days,
    window_rule,
)
from functions.shared.contract import load_contract
from mlloop.datagen import generate_churn
from training.data import TrainingDataError, point_in_time_split
from training.train import TrainingConfig

DAY0 = date(2026, 3, 1)


def days(changed: list[bool], source: str = LIVE_AUC, start: date = DAY0) -> list[ChangeSignal]:
    return [ChangeSignal(start + timedelta(days=i), c, source) for i, c in enumerate(changed)]


def test_the_change_starts_at_the_day_that_best_splits_before_from_after_whatever_a_noisy_day_says() -> None:
    # Given 40 unchanged days with two noisy changed ones, then 30 changed days with two noisy unchanged ones
    before = [i in (12, 30) for i in range(40)]
    after = [i not in (3, 17) for i in range(30)]

    found = change_start(days(before + after))

    # Then the change starts on day 40, not at a noisy day before it nor after the first noisy day after it
    assert found == Change(DAY0 + timedelta(days=40), (LIVE_AUC,), 26)


def test_a_few_changed_days_are_no_change() -> None:
    assert change_start(days([False] * 30 + [True] * (MIN_NET_CHANGED_DAYS - 1))) is None
    assert change_start(days([False] * 30 + [True] * MIN_NET_CHANGED_DAYS)) is not None
    assert change_start([]) is None


def test_each_detector_is_read_on_its_own_and_the_earlier_established_start_wins() -> None:
    # Given drift that saw nothing on any day, and live AUC (a label window behind) that saw a change from day 10
    drift = days([False] * 60, DRIFT)
    auc = days([False] * 10 + [True] * 17, LIVE_AUC)

    found = change_start([*drift, *auc])

    # Then the drift detector's silence on the days live AUC cannot judge yet does not cancel the change
    assert found is not None and found.since == DAY0 + timedelta(days=10) and found.seen_by == (LIVE_AUC,)

    both = change_start([*days([False] * 8 + [True] * 30, DRIFT), *auc])
    assert both is not None and both.since == DAY0 + timedelta(days=8) and both.seen_by == (DRIFT, LIVE_AUC)


def test_drift_reports_are_dated_by_their_last_hour_whichever_version_they_judged() -> None:
    reports = [
        {"model_version": "v1", "verdict": "drift", "drift_detected": True, "window_end": "2026-03-02T00:00:00Z"},
        {"model_version": "v1", "verdict": "no_drift", "window_end": "2026-03-02T13:00:00Z"},
        {"model_version": "v1", "verdict": "insufficient_data", "window_end": "2026-03-03T13:00:00Z"},
        {
            "model_version": "v2",
            "verdict": "drift",
            "prediction_drift_detected": True,
            "window_end": "2026-03-04T13:00:00Z",
        },
    ]

    assert drift_signals(reports) == [
        ChangeSignal(date(2026, 3, 1), True, DRIFT),
        ChangeSignal(date(2026, 3, 2), False, DRIFT),
        ChangeSignal(date(2026, 3, 4), True, DRIFT),
    ]


def test_live_auc_days_are_judged_by_the_alarms_thresholds_against_their_versions_evaluation_and_pooled_by_labels() -> (
    None
):
    report = {
        "v1": {
            "by_day": {
                "2026-03-01": {"verdict": "measured", "auc": 0.81, "labeled_predictions": 100},
                "2026-03-02": {"verdict": "measured", "auc": 0.78, "labeled_predictions": 300},
            }
        },
        "v2": {
            "by_day": {
                "2026-03-03": {"verdict": "measured", "auc": 0.64, "labeled_predictions": 100},
                "2026-03-04": {"verdict": "insufficient_data", "auc": None, "labeled_predictions": 3},
            }
        },
    }
    by_day = days_of_every_version(report)

    signals = live_auc_signals(
        by_day, evaluated_auc={"v1": 0.82, "v2": 0.70}, min_live_auc=0.65, max_live_auc_drop=0.03
    )

    # Each day against the evaluated AUC of the version that served it; under the floor whatever it evaluated
    assert [s.changed for s in signals] == [False, True, True]
    assert live_auc_signals(by_day, evaluated_auc={}, min_live_auc=0.65, max_live_auc_drop=0.03) == []
    live = live_metrics_since(by_day, date(2026, 3, 2))
    assert live is not None and live["roc_auc"] == pytest.approx((0.78 * 300 + 0.64 * 100) / 400)
    assert live_metrics_since(by_day, date(2026, 3, 4)) is None


def test_a_retraining_whose_test_split_already_holds_the_changed_world_does_not_lower_the_bar_of_the_live_auc() -> None:
    # Given v1 (evaluated 0.82) serving ten days, then v2 retrained on the stage's window, whose newest (test) rows
    # are already the changed world, so it evaluates lower (0.78); the live AUC is 0.77 on every day
    measured = {"verdict": "measured", "auc": 0.77, "labeled_predictions": 500}
    report = {
        "v2": {"by_day": {(DAY0 + timedelta(days=10 + i)).isoformat(): measured for i in range(10)}},
        "v1": {"by_day": {(DAY0 + timedelta(days=i)).isoformat(): measured for i in range(10)}},
    }

    signals = live_auc_signals(
        days_of_every_version(report),
        evaluated_auc={"v1": 0.82, "v2": 0.78},
        min_live_auc=0.65,
        max_live_auc_drop=0.03,
    )

    # Then v2's days are judged against the best evaluation before it too: the world that v1 was evaluated in
    # is gone on every day, and the change is not hidden by v2's own lower figure
    assert [s.changed for s in sorted(signals, key=lambda s: s.day)] == [True] * 20
    found = change_start(signals)
    assert found is not None and found.since == DAY0


def test_without_a_change_inside_it_the_window_is_the_stages() -> None:
    rule = window_rule(DAY0, None, {DAY0: 10}, min_rows=1, min_span_days=1)
    assert (rule.start, rule.change_since, rule.ready) == (DAY0.isoformat(), "", True)

    old = Change(DAY0 - timedelta(days=3), (DRIFT,), 9)
    assert window_rule(DAY0, old, {DAY0: 10}, min_rows=1, min_span_days=1).change_since == ""


def test_the_window_starts_at_the_change_once_its_labelled_rows_suffice_and_waits_until_then() -> None:
    change = Change(DAY0 + timedelta(days=100), (LIVE_AUC,), 20)
    per_day = {DAY0 + timedelta(days=i): 50 for i in range(300)}

    ready = window_rule(DAY0, change, per_day, min_rows=1000, min_span_days=150)
    waiting = window_rule(DAY0, change, per_day, min_rows=1000, min_span_days=250)

    assert (ready.start, ready.ready, ready.labelled_since_change, ready.labelled_span_days) == (
        change.since.isoformat(),
        True,
        200 * 50,
        200,
    )
    assert not waiting.ready and waiting.reason.startswith("waiting for labels since the change")


def test_a_champion_trained_since_a_change_passes_the_change_on() -> None:
    per_day = {DAY0 + timedelta(days=i): 50 for i in range(300)}
    inherited = DAY0 + timedelta(days=40)

    rule = window_rule(DAY0, None, per_day, min_rows=10, min_span_days=10, inherited=inherited)
    newer = window_rule(
        DAY0,
        Change(DAY0 + timedelta(days=90), (DRIFT,), 30),
        per_day,
        min_rows=10,
        min_span_days=10,
        inherited=inherited,
    )

    assert rule.change_since == inherited.isoformat() and "champion's window" in rule.reason
    assert newer.change_since == (DAY0 + timedelta(days=90)).isoformat()


@pytest.mark.parametrize(("extra_days", "splits"), [(-10, False), (10, True)])
def test_min_split_span_is_what_the_training_split_needs(extra_days: int, splits: bool) -> None:
    # Given labelled rows over a span just under or just over the minimum the rule asks for
    contract = load_contract("churn")
    config = TrainingConfig()
    span = min_split_span_days(contract.label.window_days, config.validation_fraction, config.test_fraction)
    frame = generate_churn(20_000, seed=1, months=12)
    times = pd.to_datetime(frame["event_time"], utc=True)
    frame = frame[times < times.min() + pd.Timedelta(days=span + extra_days)]
    as_of = pd.to_datetime(frame["event_time"], utc=True).max() + pd.Timedelta(days=contract.label.window_days)

    # When the training job splits them
    def split() -> object:
        return point_in_time_split(frame, contract, validation_fraction=0.2, test_fraction=0.2, label_as_of=as_of)

    # Then it can exactly when the span is over the minimum
    if splits:
        split()
    else:
        with pytest.raises(TrainingDataError):
            split()
