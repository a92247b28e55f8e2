"""The recovery measurement's invariants: each scenario costs the old model real AUC on post-change data, and the
retrained model never learns from a label that had not arrived by its retraining."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from functions.shared.contract import load_contract
from infra.config import load_stage_config, read_cdk_json_context
from mlloop.recovery import (
    SCENARIOS,
    Scenario,
    Timeline,
    build_world,
    evaluated_auc,
    first_clean_retrain,
    history,
    holdout_auc,
    snapshot,
    stage_timeline,
    train_as_loop,
    train_oracle,
    train_v1,
)
from training.train import TrainingResult

SEED = 3
# Small enough to train in a second or two, large enough that the AUC gaps stand out of the sampling noise.
TIMELINE = Timeline(rows_per_day=30, holdout_rows=8000, retrain_after_days=120)


@pytest.fixture(scope="module")
def pre_change() -> pd.DataFrame:
    return history(SEED, TIMELINE)


@pytest.fixture(scope="module")
def v1(pre_change: pd.DataFrame) -> TrainingResult:
    return train_v1(pre_change, TIMELINE)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_each_scenario_costs_the_old_model_at_least_two_hundredths_of_auc(
    name: str, pre_change: pd.DataFrame, v1: TrainingResult
) -> None:
    # Given a world that changes at the timeline's change, and v1 trained the loop's way on the history before it
    world = build_world(SCENARIOS[name], SEED, TIMELINE, pre_change=pre_change)

    # When v1 and an oracle trained on post-change data with every label score the post-change holdout
    contract = load_contract("churn")
    gap = holdout_auc(train_oracle(world, TIMELINE), world.holdout, contract) - holdout_auc(v1, world.holdout, contract)

    # Then the change is no harmless shift
    assert gap >= 0.02, gap


def test_a_concept_change_takes_v1_past_the_live_auc_drop_alarm_while_the_absolute_floor_stays_silent(
    pre_change: pd.DataFrame, v1: TrainingResult
) -> None:
    # Given v1 with the test AUC its registration records, and the relationship changed under unchanged inputs (no
    # drift alarm can see it; only the labels can)
    monitoring = load_stage_config(read_cdk_json_context(), "dev").monitoring
    world = build_world(SCENARIOS["concept_change"], SEED, TIMELINE, pre_change=pre_change)

    # When v1 is scored on post-change outcomes, as the delayed labels would score it
    live = holdout_auc(v1, world.holdout, load_contract("churn"))

    # Then its drop below its own evaluation is over the stage's allowance, though it never reaches the floor
    assert evaluated_auc(v1) - live > monitoring.max_live_auc_drop, (evaluated_auc(v1), live)
    assert live > monitoring.min_live_auc


def test_concept_change_scenario_keeps_the_inputs() -> None:
    contract = load_contract("churn")
    start = TIMELINE.change
    changed = SCENARIOS["concept_change"].generate(3000, seed=SEED, start=start, days=60)
    unchanged = Scenario("none", "no change").generate(3000, seed=SEED, start=start, days=60)

    assert changed[contract.feature_names].equals(unchanged[contract.feature_names])
    assert not changed[contract.label.name].equals(unchanged[contract.label.name])


def test_scenario_traffic_stays_within_its_days() -> None:
    frame = SCENARIOS["feature_drift"].generate(2000, seed=SEED, start=TIMELINE.change, days=45)

    times = pd.to_datetime(frame["event_time"], utc=True)
    assert times.min() >= pd.Timestamp(TIMELINE.change)
    assert times.max() < pd.Timestamp(TIMELINE.change + timedelta(days=45))
    assert 1900 <= len(frame) <= 2100


def test_snapshot_holds_every_arrived_label_of_the_window_and_none_later(pre_change: pd.DataFrame) -> None:
    # Given traffic up to well after the retraining
    world = build_world(SCENARIOS["concept_change"], SEED, TIMELINE, pre_change=pre_change)
    retrain_at = TIMELINE.retrain_at
    delay = pd.Timedelta(days=TIMELINE.label_window_days, hours=TIMELINE.label_lag_hours)

    # When the loop's retraining cuts its snapshot
    rows = snapshot(world.traffic, as_of=retrain_at, timeline=TIMELINE)

    # Then no label arrives after the retraining, nothing is older than the window (window_days of partitions
    # ending at the newest one on or before the retraining's day), and nothing arrived in it is left out
    all_times = pd.to_datetime(world.traffic["event_time"], utc=True)
    window_start = max(d for d in all_times.dt.date if d <= retrain_at.date()) - timedelta(
        days=TIMELINE.window_days - 1
    )
    times = pd.to_datetime(rows["event_time"], utc=True)
    assert (times + delay <= pd.Timestamp(retrain_at)).all()
    assert times.min().date() >= window_start
    arrived_in_window = (all_times + delay <= pd.Timestamp(retrain_at)) & (all_times.dt.date >= window_start)
    assert len(rows) == int(arrived_in_window.sum())
    assert (all_times > pd.Timestamp(retrain_at) - delay).any(), "the traffic must hold labels not arrived yet"


def test_retrained_model_knows_labels_only_up_to_its_retraining(pre_change: pd.DataFrame) -> None:
    world = build_world(SCENARIOS["feature_drift"], SEED, TIMELINE, pre_change=pre_change)
    retrain_at = TIMELINE.retrain_at

    v2 = train_as_loop(
        snapshot(world.traffic, as_of=retrain_at, timeline=TIMELINE), labels_as_of=retrain_at, timeline=TIMELINE
    )

    assert pd.Timestamp(v2.split.boundaries["label_as_of"]) == pd.Timestamp(retrain_at)
    trained = pd.concat([v2.split.train, v2.split.validation, v2.split.test])
    latest_arrival = pd.to_datetime(trained["event_time"], utc=True).max() + pd.Timedelta(
        days=TIMELINE.label_window_days, hours=TIMELINE.label_lag_hours
    )
    assert latest_arrival <= pd.Timestamp(retrain_at)


def test_stage_timeline_follows_the_stage_and_the_label_contract() -> None:
    timeline = stage_timeline()

    labels = load_contract("churn_labels")
    assert timeline.label_window_days == labels.label.window_days
    assert timeline.label_lag_hours == labels.freshness.max_lag_hours
    assert timeline.retrain_after_days == first_clean_retrain(timeline.window_days)


@pytest.mark.parametrize(("window_days", "expected"), [(365, 371), (364, 364), (1, 7)])
def test_first_clean_retrain_is_the_first_weekly_run_past_one_window(window_days: int, expected: int) -> None:
    assert first_clean_retrain(window_days) == expected


def test_feature_drift_moves_tenure_past_the_point_where_churn_stops_depending_on_it() -> None:
    before = Scenario("none", "no change").generate(4000, seed=SEED, start=TIMELINE.change, days=60)
    after = SCENARIOS["feature_drift"].generate(4000, seed=SEED, start=TIMELINE.change, days=60)

    # The generator's log-odds use min(tenure, 72): flat past 72 months, linear below.
    assert (before["tenure_months"] > 72).mean() < 0.1
    assert (after["tenure_months"] > 72).mean() > 0.6


def test_the_loop_recovers_when_a_version_trained_since_the_change_serves_not_at_an_old_world_retraining() -> None:
    from mlloop.recovery import LoopRun

    run = LoopRun("s", 1, 200, deploys=[(7.0049, "v2", False), (189.0049, "v3", True)])
    run.auc_v1, run.auc_v2, run.auc_oracle = 0.76, 0.80, 0.805

    assert run.days_to_recover == 189.0049
    assert run.ratio == pytest.approx(0.04 / 0.045)
    assert LoopRun("s", 1, 200, deploys=[(7.0, "v2", False)]).days_to_recover is None


def test_a_loop_that_has_not_recovered_counts_as_the_horizon_a_censored_value() -> None:
    from mlloop.recovery import LoopRun, days_label

    recovered = LoopRun("s", 1, 200, deploys=[(189.0049, "v3", True)])
    waiting = LoopRun("s", 2, 260, deploys=[(7.0, "v2", False)])

    assert recovered.days_to_recover_censored(260) == (189.0049, False)
    assert waiting.days_to_recover_censored(260) == (260.0, True)
    assert days_label(260.0, True) == ">260"
    assert days_label(189.0049, False) == "189.0"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([(189.0, False), (260.0, True), (196.0, False)], (196.0, False)),
        ([(189.0, False), (260.0, True), (260.0, True)], (260.0, True)),
        ([(189.0, False), (196.0, False), (260.0, True), (200.0, False)], (198.0, False)),
        # an even count whose middle pair holds a censored value: a lower bound
        ([(189.0, False), (260.0, True)], (224.5, True)),
    ],
)
def test_the_median_days_to_recover_is_a_lower_bound_when_it_rests_on_a_censored_run(
    values: list[tuple[float, bool]], expected: tuple[float, bool]
) -> None:
    from mlloop.recovery import median_censored

    assert median_censored(values) == expected


def test_the_history_ends_at_the_change_whatever_its_length_in_months() -> None:
    # Given a history that is not a whole number of 30-day months (the benchmark's and the demo's 200 days)
    timeline = Timeline(rows_per_day=30, history_days=200)

    # When it is generated
    before = history(SEED, timeline)

    # Then no old-world row falls after the change (it would teach the retraining since the change the old world),
    # and the days it spans hold their rows a day
    times = pd.to_datetime(before["event_time"], utc=True)
    assert times.max() < pd.Timestamp(timeline.change)
    assert len(before) == pytest.approx(timeline.rows_per_day * timeline.history_days, rel=0.02)


def test_the_simulation_reads_the_churn_models_settings_when_the_stage_serves_several_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from infra.context import CONTEXT_ENV
    from mlloop.recovery import stage_loop_settings

    # Given the dev stage serving churn and a second model (as the demo's second-model phase publishes it)
    models = {"churn": {"dataset": "churn"}, "upsell": {"dataset": "churn", "training": {"window_days": 200}}}
    monkeypatch.setenv(CONTEXT_ENV, json.dumps({"models": models}))

    # Then the simulation of the churn scenarios takes the churn model's settings
    assert stage_timeline("dev").window_days == 365
    assert stage_loop_settings("dev").schedule_days == 7


def test_the_stages_schedule_is_read_in_days() -> None:
    from mlloop.recovery import schedule_days, stage_loop_settings

    assert schedule_days("rate(7 days)") == 7
    assert schedule_days("rate(1 day)") == 1
    with pytest.raises(ValueError, match="whole days"):
        schedule_days("rate(1 hour)")
    settings = stage_loop_settings("dev")
    assert settings.min_span_days == 150 and settings.canary_seconds == 420 and settings.schedule_days == 7
