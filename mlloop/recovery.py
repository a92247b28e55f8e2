"""How much of what a change in the world costs the model the loop's retraining wins back: v1, v2 and an oracle
on labelled post-change data. Pure logic (no AWS); the recovery benchmark and the demo's recovery phase share it.

For one scenario and one seed:

- history: ``history_days`` of churn traffic before the change at ``change``, then post-change traffic;
- v1: trained as the loop trains (``training.train.run_training`` with the stage's decision policy and
  candidate) on the stage's window ending at the change, labels known by then;
- v2: trained the same way at ``retrain_at``, on the snapshot the loop's retraining would cut then: the stage's
  window of partitions (``window_for``, as the snapshot step picks it) holding only rows whose label has
  arrived by ``retrain_at`` (event time + the label contract's window + its arrival lag <= ``retrain_at``);
- oracle: the same training on a year of post-change traffic with every label;
- all three scored on a labelled post-change holdout none of them trained on: AUC each, and the recovery
  ratio (v2 - v1) / (oracle - v1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from functions.prepare_training_data.logic import ARRIVED_AT, join_labels_as_of, window_for
from functions.shared.contract import DataContract, labels_dataset, load_contract
from mlloop.datagen import generate_churn
from training.decision import ThresholdPolicy
from training.evaluate import ranking_and_calibration
from training.pipeline import model_input, positive_probabilities
from training.train import TrainingConfig, TrainingResult, run_training

# Every scenario starts its history here: a fixed date keeps runs reproducible whatever the wall clock says.
HISTORY_START = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    """A change in the world: generator knobs applied to all traffic from the change on."""

    name: str
    description: str
    drift: dict[str, float] = field(default_factory=dict)
    concept_change: float = 0.0

    def generate(self, rows: int, *, seed: int, start: datetime, days: int) -> pd.DataFrame:
        """Post-change traffic: `rows` rows over `days` days from `start`."""
        months = -(-days // 30)
        frame = generate_churn(
            rows * months * 30 // days,
            seed=seed,
            start=start,
            months=months,
            drift=self.drift,
            concept_change=self.concept_change,
        )
        end = pd.Timestamp(start + timedelta(days=days))
        return frame[frame["event_time"] < end].reset_index(drop=True)


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario(
            "concept_change",
            "same inputs, a changed relationship: 60 % of the way to datagen.changed_log_odds",
            concept_change=0.6,
        ),
        Scenario(
            "feature_drift",
            "tenure moves 3 standard deviations up, mostly past 72 months, beyond which it no longer lowers"
            " churn (the generator's min(tenure, 72)): a region where the relationship is not linear",
            drift={"tenure_months": 3.0},
        ),
    )
}


@dataclass(frozen=True)
class Timeline:
    """When things happen, in days from the start of the history, and how the stage trains."""

    history_days: int = 360
    # When v2 is retrained, in days after the change: see `first_clean_retrain`.
    retrain_after_days: int = 371
    rows_per_day: int = 60
    holdout_rows: int = 20_000
    window_days: int = 365
    label_window_days: int = 30
    # The label contract's freshness.max_lag_hours: the latest a label may arrive after its window closes.
    label_lag_hours: float = 72.0
    policy: ThresholdPolicy = field(default_factory=ThresholdPolicy)
    candidate: str = "hist_gradient_boosting"

    @property
    def change(self) -> datetime:
        return HISTORY_START + timedelta(days=self.history_days)

    @property
    def retrain_at(self) -> datetime:
        return self.change + timedelta(days=self.retrain_after_days)

    @property
    def label_delay(self) -> timedelta:
        return timedelta(days=self.label_window_days, hours=self.label_lag_hours)


def first_clean_retrain(window_days: int, schedule_days: int = 7) -> int:
    """Days from the change to the first scheduled retraining whose window holds no pre-change partition.

    The loop retrains on a schedule (the stages' `rate(7 days)`, counted here from the change) and on new data,
    always on the stage's whole window, and the training split fits on the oldest 60 % of it; so before its
    window has moved past the change a retrained model still learns mostly the old world (the benchmark prints
    the ratio at earlier retrainings too). This is the retraining the loop, as configured, recovers at."""
    return -(-window_days // schedule_days) * schedule_days


def stage_timeline(stage: str = "dev", **overrides: Any) -> Timeline:
    """A timeline with the stage's training window, decision policy and candidate (cdk.json plus `-c` overrides)
    and the label contract's window and arrival lag."""
    from infra.config import load_stage_config
    from infra.context import effective_context

    training = load_stage_config(effective_context(), stage).training
    labels = load_contract(labels_dataset("churn"))
    return Timeline(
        **{
            "window_days": training.window_days,
            "policy": training.decision,
            "candidate": training.candidate,
            "label_window_days": labels.label.window_days,
            "label_lag_hours": labels.freshness.max_lag_hours,
            "retrain_after_days": first_clean_retrain(training.window_days),
            **overrides,
        }
    )


def snapshot(traffic: pd.DataFrame, *, as_of: datetime, timeline: Timeline) -> pd.DataFrame:
    """What the loop's retraining at `as_of` trains on: the stage's window of daily partitions chosen as the
    snapshot step chooses it, labelled by the snapshot step's own point-in-time join. Each row lands as it happens;
    its label lands through the label feed `timeline.label_delay` after the event."""
    contract = load_contract("churn")
    ts, key, label = contract.event_timestamp, contract.entity_key, contract.label.name
    times = pd.to_datetime(traffic[ts], utc=True)
    days = times.dt.date
    start, end = window_for(set(days), as_of=as_of.date(), window_days=timeline.window_days)
    in_window = traffic[((days >= start) & (days <= end)).to_numpy()].reset_index(drop=True)
    landed = times[((days >= start) & (days <= end)).to_numpy()].reset_index(drop=True)
    facts = in_window.assign(**{ts: landed, ARRIVED_AT: landed})
    feed = facts[[key, ts, label]].assign(**{ARRIVED_AT: landed + timeline.label_delay})
    labelled, _ = join_labels_as_of(facts, feed, contract, as_of)
    return in_window.loc[labelled.index].reset_index(drop=True)


def train_as_loop(frame: pd.DataFrame, *, labels_as_of: datetime, timeline: Timeline) -> TrainingResult:
    """The training job's own code, with the hyperparameters the training state machine passes."""
    policy = timeline.policy
    config = TrainingConfig(
        candidate=timeline.candidate,
        cost_false_positive=policy.cost_false_positive,
        cost_false_negative=policy.cost_false_negative,
        positive_budget=policy.positive_budget,
        target_precision=policy.target_precision,
        target_recall=policy.target_recall,
        label_as_of=labels_as_of.isoformat(),
        latency_samples=1,
    )
    return run_training(frame, load_contract("churn"), config)


@dataclass(frozen=True)
class World:
    """One seed's data: pre-change history, post-change traffic up to the retraining, the oracle's fully labelled
    post-change year and the holdout."""

    history: pd.DataFrame
    traffic: pd.DataFrame
    oracle_data: pd.DataFrame
    holdout: pd.DataFrame


def history(seed: int, timeline: Timeline) -> pd.DataFrame:
    return generate_churn(
        timeline.rows_per_day * timeline.history_days,
        seed=seed,
        start=HISTORY_START,
        months=-(-timeline.history_days // 30),
    )


def build_world(scenario: Scenario, seed: int, timeline: Timeline, *, pre_change: pd.DataFrame | None = None) -> World:
    """Independent draws (seed offsets) for the post-change traffic, the oracle's data and the holdout."""
    before = history(seed, timeline) if pre_change is None else pre_change
    after = scenario.generate(
        timeline.rows_per_day * timeline.retrain_after_days,
        seed=seed + 1000,
        start=timeline.change,
        days=timeline.retrain_after_days,
    )
    oracle_data = scenario.generate(timeline.rows_per_day * 360, seed=seed + 2000, start=timeline.change, days=360)
    holdout = scenario.generate(timeline.holdout_rows, seed=seed + 3000, start=timeline.change, days=30)
    return World(
        history=before,
        traffic=pd.concat([before, after], ignore_index=True),
        oracle_data=oracle_data,
        holdout=holdout,
    )


def holdout_auc(result: TrainingResult, holdout: pd.DataFrame, contract: DataContract) -> float:
    scores = positive_probabilities(result.pipeline, model_input(holdout, contract))
    labels = (holdout[contract.label.name] == contract.label.positive_value).to_numpy().astype(int)
    return float(ranking_and_calibration(labels, scores)["roc_auc"])


def evaluated_auc(result: TrainingResult) -> float:
    """The test AUC registration records for the model (`test_roc_auc`), the live-AUC drop alarm's reference."""
    return float(result.evaluation["metrics"]["test"]["roc_auc"])


@dataclass(frozen=True)
class Recovery:
    scenario: str
    seed: int
    retrain_after_days: int
    auc_v1: float
    auc_v2: float
    auc_oracle: float
    v2_rows: int
    v2_chosen: str
    # v1's AUC on its own test set at registration: what the live-AUC drop alarm compares with.
    auc_v1_evaluated: float

    @property
    def gap(self) -> float:
        """What the change costs v1 against the oracle on post-change data."""
        return self.auc_oracle - self.auc_v1

    @property
    def ratio(self) -> float:
        return (self.auc_v2 - self.auc_v1) / self.gap

    @property
    def v1_live_auc_drop(self) -> float:
        """LiveAUCDrop v1 would show once the post-change labels arrive (functions/label_quality)."""
        return self.auc_v1_evaluated - self.auc_v1

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "retrain_after_days": self.retrain_after_days,
            "auc_v1": round(self.auc_v1, 4),
            "auc_v2": round(self.auc_v2, 4),
            "auc_oracle": round(self.auc_oracle, 4),
            "gap": round(self.gap, 4),
            "recovery_ratio": round(self.ratio, 4),
            "v2_rows": self.v2_rows,
            "v2_chosen": self.v2_chosen,
            "auc_v1_evaluated": round(self.auc_v1_evaluated, 4),
            "v1_live_auc_drop": round(self.v1_live_auc_drop, 4),
        }


def train_v1(pre_change: pd.DataFrame, timeline: Timeline) -> TrainingResult:
    """The champion before the change: the loop's retraining run at the change, on the history alone."""
    return train_as_loop(
        snapshot(pre_change, as_of=timeline.change, timeline=timeline), labels_as_of=timeline.change, timeline=timeline
    )


def train_oracle(world: World, timeline: Timeline) -> TrainingResult:
    """Post-change data with every label: labels are taken as known at the end of the last label window."""
    every_label = pd.to_datetime(world.oracle_data["event_time"], utc=True).max() + timeline.label_delay
    return train_as_loop(world.oracle_data, labels_as_of=every_label.to_pydatetime(), timeline=timeline)


def measure(
    scenario: Scenario,
    seed: int,
    timeline: Timeline,
    *,
    v1: TrainingResult | None = None,
    pre_change: pd.DataFrame | None = None,
) -> Recovery:
    """One scenario at one seed, v2 retrained at the timeline's retrain time. `v1` and `pre_change` let scenarios
    sharing a seed share the history and its model."""
    return recovery_curve(scenario, seed, timeline, [timeline.retrain_after_days], v1=v1, pre_change=pre_change)[0]


def recovery_curve(
    scenario: Scenario,
    seed: int,
    timeline: Timeline,
    retrain_after_days: Sequence[int],
    *,
    v1: TrainingResult | None = None,
    pre_change: pd.DataFrame | None = None,
) -> list[Recovery]:
    """The same world and oracle, v2 retrained at each of these days after the change (up to the timeline's)."""
    if max(retrain_after_days) > timeline.retrain_after_days:
        raise ValueError(f"retrain_after_days: traffic is generated up to day {timeline.retrain_after_days} only")
    contract = load_contract("churn")
    world = build_world(scenario, seed, timeline, pre_change=pre_change)
    champion = v1 if v1 is not None else train_v1(world.history, timeline)
    auc_v1 = holdout_auc(champion, world.holdout, contract)
    auc_oracle = holdout_auc(train_oracle(world, timeline), world.holdout, contract)
    points = []
    for days in retrain_after_days:
        retrain_at = timeline.change + timedelta(days=days)
        retrained_on = snapshot(world.traffic, as_of=retrain_at, timeline=timeline)
        v2 = train_as_loop(retrained_on, labels_as_of=retrain_at, timeline=timeline)
        points.append(
            Recovery(
                scenario=scenario.name,
                seed=seed,
                retrain_after_days=days,
                auc_v1=auc_v1,
                auc_v2=holdout_auc(v2, world.holdout, contract),
                auc_oracle=auc_oracle,
                v2_rows=len(retrained_on),
                v2_chosen=str(v2.chosen),
                auc_v1_evaluated=evaluated_auc(champion),
            )
        )
    return points


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mlloop.recovery [--window-days N] [--retrain-after-days D ...] [--seed S ...]`: one JSON line per
    scenario, seed and retraining day; the dev stage's timeline unless told otherwise."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m mlloop.recovery", description=main.__doc__)
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--window-days", type=int, help="the stage's training.window_days instead")
    parser.add_argument("--retrain-after-days", type=int, action="append", help="default: first_clean_retrain")
    parser.add_argument("--seed", type=int, action="append", help="default: 1")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append", help="default: every scenario")
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.window_days:
        overrides["window_days"] = args.window_days
        overrides["retrain_after_days"] = first_clean_retrain(args.window_days)
    days = args.retrain_after_days or []
    if days:
        overrides["retrain_after_days"] = max(days)
    timeline = stage_timeline(args.stage, **overrides)
    for seed in args.seed or [1]:
        pre_change = history(seed, timeline)
        v1 = train_v1(pre_change, timeline)
        for name in args.scenario or sorted(SCENARIOS):
            curve = recovery_curve(
                SCENARIOS[name], seed, timeline, days or [timeline.retrain_after_days], v1=v1, pre_change=pre_change
            )
            for point in curve:
                print(json.dumps({"window_days": timeline.window_days, **point.to_dict()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
