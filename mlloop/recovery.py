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
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from functions.drift_detector.logic import DriftThresholds, detect_drift
from functions.label_quality.logic import PROBABILITY, measure_quality
from functions.prepare_training_data.change import (
    DRIFT,
    ChangeSignal,
    DayQuality,
    change_start,
    live_auc_signals,
    live_metrics_since,
    min_split_span_days,
    window_rule,
)
from functions.prepare_training_data.logic import ARRIVED_AT, join_labels_as_of, window_for
from functions.shared.contract import DataContract, labels_dataset, load_contract
from mlloop.datagen import generate_churn
from training.decision import ThresholdPolicy
from training.evaluate import ranking_and_calibration
from training.gate import GatePolicy, champion_since_change, evaluate_gate
from training.pipeline import model_input, positive_probabilities
from training.split_shares import TEST_FRACTION, VALIDATION_FRACTION
from training.train import TrainingConfig, TrainingResult, run_training

# The simulation takes the settings of the stage's model of this dataset: its scenarios are churn traffic
# (`generate_churn`, the churn contract), and a stage may serve other models beside it.
DATASET = "churn"
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
            aging=False,
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
    from infra.config import load_dataset_model
    from infra.context import effective_context

    training = load_dataset_model(effective_context(), stage, DATASET).training
    labels = load_contract(labels_dataset(DATASET))
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
    contract = load_contract(DATASET)
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
    config = TrainingConfig(
        candidate=timeline.candidate,
        **timeline.policy.to_dict(),
        label_as_of=labels_as_of.isoformat(),
        latency_samples=1,
    )
    return run_training(frame, load_contract(DATASET), config)


@dataclass(frozen=True)
class World:
    """One seed's data: pre-change history, post-change traffic up to the retraining, the oracle's fully labelled
    post-change year and the holdout."""

    history: pd.DataFrame
    traffic: pd.DataFrame
    oracle_data: pd.DataFrame
    holdout: pd.DataFrame


# The world before the change: the generator without knobs.
UNCHANGED = Scenario("unchanged", "the world before the change")


def history(seed: int, timeline: Timeline) -> pd.DataFrame:
    """`history_days` of pre-change traffic, ending at the change (the generator spans whole 30-day months)."""
    return UNCHANGED.generate(
        timeline.rows_per_day * timeline.history_days, seed=seed, start=HISTORY_START, days=timeline.history_days
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
    contract = load_contract(DATASET)
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


# ------------------------------------------------------------------------------------------------ the loop, by day
# The loop's own logic on simulated days, in-process: the drift detector, the live-quality job, the retraining
# alarm, the weekly schedule, the snapshot's window rule, the training job, the promotion gate and the canary's
# timings. Not on the embedded AWS: Lambda handlers, training containers and moto stamp S3 arrivals and cut
# snapshots by the host's clock, not the controllable one, so months of simulated arrivals cannot pass there yet.


@dataclass(frozen=True)
class LoopSettings:
    """What the simulation takes from the stage: the detectors' thresholds, the gates, the schedule, the canary."""

    drift: DriftThresholds
    min_live_auc: float
    max_live_auc_drop: float
    min_labeled: int
    lookback_days: int
    gate: GatePolicy
    min_rows: int
    min_span_days: float
    schedule_days: int
    canary_seconds: int


def stage_loop_settings(stage: str = "dev") -> LoopSettings:
    """The stage's settings as synth passes them to the functions (cdk.json plus `-c` overrides)."""
    from infra.config import load_dataset_model
    from infra.context import effective_context
    from infra.stacks.monitoring import LABEL_LOOKBACK_DAYS, MIN_LABELED_PREDICTIONS

    config = load_dataset_model(effective_context(), stage, DATASET)
    m = config.monitoring
    return LoopSettings(
        drift=m.drift_thresholds(),
        min_live_auc=m.min_live_auc,
        max_live_auc_drop=m.max_live_auc_drop,
        min_labeled=MIN_LABELED_PREDICTIONS,
        lookback_days=LABEL_LOOKBACK_DAYS,
        gate=config.gates.promotion,
        min_rows=config.gates.data.min_rows,
        min_span_days=min_split_span_days(
            load_contract(labels_dataset(DATASET)).label.window_days, VALIDATION_FRACTION, TEST_FRACTION
        ),
        schedule_days=schedule_days(config.training.schedule),
        canary_seconds=config.deployment.wait_seconds + config.deployment.termination_wait_seconds,
    )


def schedule_days(expression: str) -> int:
    """Days between runs of a `rate(N day[s])` schedule (the stages' retraining schedule)."""
    value, _, unit = expression.removeprefix("rate(").removesuffix(")").partition(" ")
    if not unit.startswith("day"):
        raise ValueError(f"schedule {expression!r}: the simulation steps whole days; expected rate(N days)")
    return int(value)


@dataclass
class Model:
    """A registered version: its training result, and the change its window started at (None: the stage's)."""

    version: str
    result: TrainingResult
    change_since: date | None = None


@dataclass(frozen=True)
class Retraining:
    day: int
    trigger: str
    outcome: str  # "waiting", "promoted", "rejected"
    reason: str
    window_start: str = ""
    change_since: str = ""
    rows: int = 0
    model_version: str = ""
    test_auc: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoopRun:
    """One scenario at one seed, day by day from the change (day 0)."""

    scenario: str
    seed: int
    days: int
    alarms: list[tuple[int, str]] = field(default_factory=list)
    retrainings: list[Retraining] = field(default_factory=list)
    # (day it serves all traffic, version, trained since the change)
    deploys: list[tuple[float, str, bool]] = field(default_factory=list)
    # Live AUC per version per event day (days after the change), as the last live-quality run reports it.
    live_auc: dict[str, dict[int, float]] = field(default_factory=dict)
    auc_v1: float = float("nan")
    auc_v2: float = float("nan")
    auc_oracle: float = float("nan")
    v2_version: str = ""

    @property
    def detection(self) -> tuple[int, str] | None:
        return self.alarms[0] if self.alarms else None

    @property
    def days_to_recover(self) -> float | None:
        """Days from the change to the first version trained since the change serving all traffic."""
        recovered = [day for day, _, since_change in self.deploys if since_change]
        return recovered[0] if recovered else None

    def days_to_recover_censored(self, horizon: int) -> tuple[float, bool]:
        """`days_to_recover`, or `horizon` when the loop had not recovered by then: a censored value (it recovers
        later, if at all), so a median over runs stays defined. The flag says which."""
        days = self.days_to_recover
        return (float(horizon), True) if days is None else (float(days), False)

    @property
    def gap(self) -> float:
        return self.auc_oracle - self.auc_v1

    @property
    def ratio(self) -> float:
        return (self.auc_v2 - self.auc_v1) / self.gap

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "days_simulated": self.days,
            "detection": {"day": self.detection[0], "by": self.detection[1]} if self.detection else None,
            "alarms": [{"day": day, "by": by} for day, by in self.alarms],
            "retrainings": [r.to_dict() for r in self.retrainings],
            "deploys": [{"day": round(d, 4), "model_version": v, "since_change": c} for d, v, c in self.deploys],
            "days_to_recover": round(self.days_to_recover, 4) if self.days_to_recover is not None else None,
            "v2": self.v2_version,
            "auc_v1": round(self.auc_v1, 4),
            "auc_v2": round(self.auc_v2, 4),
            "auc_oracle": round(self.auc_oracle, 4),
            "recovery_ratio": round(self.ratio, 4),
            "live_auc": {v: {str(d): round(a, 4) for d, a in days.items()} for v, days in self.live_auc.items()},
        }


def median_censored(values: Sequence[tuple[float, bool]]) -> tuple[float, bool]:
    """The median of (value, censored) pairs whose censored values are lower bounds at the horizon (the largest
    value): still the median, as a lower bound (True) when it rests on a censored value."""
    ordered = sorted(values, key=lambda v: (v[1], v[0]))
    n = len(ordered)
    if not n:
        raise ValueError("median_censored: no values")
    middle = ordered[(n - 1) // 2 : n // 2 + 1]
    return sum(v for v, _ in middle) / len(middle), any(c for _, c in middle)


def days_label(days: float, censored: bool) -> str:
    """How a day count prints: `>N` for a censored one."""
    return f">{days:.0f}" if censored else f"{days:.1f}"


class _PredictionLog:
    """Every row of traffic, who served it and its score, and the day its label arrives: what the prediction log
    and the label feed hold, indexed by day after the change."""

    def __init__(self, traffic: pd.DataFrame, timeline: Timeline, first_logged_day: int) -> None:
        contract = load_contract(DATASET)
        self.traffic = traffic
        times = pd.to_datetime(traffic[contract.event_timestamp], utc=True)
        change = pd.Timestamp(timeline.change)
        self.day = ((times - change) // pd.Timedelta(days=1)).to_numpy()
        self.label_day = ((times + timeline.label_delay - change) // pd.Timedelta(days=1)).to_numpy()
        self.positive = (traffic[contract.label.name] == contract.label.positive_value).to_numpy()
        self.version = np.full(len(traffic), "", dtype=object)
        self.score = np.full(len(traffic), np.nan)
        self.first_logged_day = first_logged_day

    def serve(self, model: Model, from_day: int) -> None:
        rows = self.day >= max(from_day, self.first_logged_day)
        self.version[rows] = model.version
        self.score[rows] = positive_probabilities(
            model.result.pipeline, model_input(self.traffic[rows], load_contract(DATASET))
        )

    def quality(self, rows: np.ndarray, min_labeled: int) -> dict[str, Any]:
        """functions/label_quality's figures for these labelled predictions."""
        contract = load_contract(DATASET)
        joined = pd.DataFrame({contract.label.name: self.positive[rows].astype(int), PROBABILITY: self.score[rows]})
        return measure_quality(
            joined, contract=contract, labels_received=int(rows.sum()), min_labeled=min_labeled
        ).to_dict()


def simulate_loop(
    scenario: Scenario,
    seed: int,
    timeline: Timeline,
    settings: LoopSettings,
    *,
    days: int,
    tail_days: int = 45,
    oracle_days: int = 360,
    v1: TrainingResult | None = None,
    pre_change: pd.DataFrame | None = None,
) -> LoopRun:
    """The loop after a change on day 0, a day at a time, until `days`, or `tail_days` after the first version
    trained since the change serves (its own live AUC appears a label window later). Each day: the champion serves
    the day's traffic; the drift detector judges the day against the champion's baseline; labels that matured and
    arrived join their predictions and the live-quality job measures the champion over its lookback; the retraining
    alarm (drift, or the live-AUC drop; OR-ed as the composite alarm does) entering ALARM, and the weekly schedule,
    ask for a retraining at the day's end, which cuts its snapshot with the window rule (change.window_rule), trains,
    is gated, and serves all traffic after the canary. Later triggers are not simulated once the loop has recovered."""
    before = history(seed, timeline) if pre_change is None else pre_change
    first = Model("v1", v1 if v1 is not None else train_v1(before, timeline))
    after = scenario.generate(timeline.rows_per_day * days, seed=seed + 1000, start=timeline.change, days=days)
    traffic = pd.concat([before, after], ignore_index=True)
    log = _PredictionLog(traffic, timeline, -settings.lookback_days)
    log.serve(first, -settings.lookback_days)
    label_days = -(-timeline.label_delay // timedelta(days=1))

    run = LoopRun(scenario.name, seed, days)
    champion, versions = first, 1
    evaluated = {first.version: evaluated_auc(first.result)}
    drift: list[ChangeSignal] = []
    live: dict[int, list[tuple[str, dict[str, Any]]]] = {}
    in_alarm, recovered_at = False, None
    for day in range(days):
        today = log.day == day
        report = detect_drift(
            champion.result.drift_baseline,
            model_input(traffic[today], load_contract(DATASET)),
            log.score[today],
            settings.drift,
        )
        drifted = report["verdict"] == "drift"
        if report["verdict"] != "insufficient_data":
            drift.append(ChangeSignal(timeline.change.date() + timedelta(days=day), drifted, DRIFT))
        # The event days whose labels all arrived today (at the start, every earlier one in the lookback).
        for event_day in range(-settings.lookback_days if day == 0 else day - label_days, day - label_days + 1):
            rows = log.day == event_day
            live[event_day] = [
                (str(v), log.quality(rows & (log.version == v), settings.min_labeled)) for v in set(log.version[rows])
            ]
        labelled = (
            (log.label_day <= day) & (log.day >= day - settings.lookback_days) & (log.version == champion.version)
        )
        quality = log.quality(labelled, settings.min_labeled)
        drop = evaluated_auc(champion.result) - quality["auc"] if quality["verdict"] == "measured" else None
        alarm = drifted or (drop is not None and drop > settings.max_live_auc_drop)
        triggers = []
        if alarm and not in_alarm:
            run.alarms.append((day, "drift alarm" if drifted else "live-AUC drop alarm"))
            triggers.append("retraining alarm")
        in_alarm = alarm
        if day % settings.schedule_days == settings.schedule_days - 1:
            triggers.append("schedule")
        if triggers and recovered_at is None:
            live_days: list[DayQuality] = [
                (version, (timeline.change.date() + timedelta(days=d)).isoformat(), q)
                for d, qs in live.items()
                for version, q in qs
            ]
            retraining, candidate = _retrain(
                day,
                " and ".join(triggers),
                traffic=traffic,
                timeline=timeline,
                settings=settings,
                champion=champion,
                evaluated=evaluated,
                drift=drift,
                live_days=live_days,
            )
            if candidate is not None:
                versions += 1
                candidate.version = f"v{versions}"
                retraining = replace(retraining, model_version=candidate.version)
                champion = candidate
                evaluated[champion.version] = evaluated_auc(champion.result)
                # It serves all traffic once the canary's bake and the old fleet's termination wait have passed:
                # minutes into the next day, so from the next day on here.
                run.deploys.append(
                    (day + 1 + settings.canary_seconds / 86_400, champion.version, bool(champion.change_since))
                )
                log.serve(champion, day + 1)
                if champion.change_since:
                    recovered_at = day
            run.retrainings.append(retraining)
        if recovered_at is not None and day >= recovered_at + tail_days:
            run.days = day + 1
            break
    run.live_auc = {}
    for event_day, per_version in sorted(live.items()):
        for version, q in per_version:
            if q.get("auc") is not None:
                run.live_auc.setdefault(version, {})[event_day] = float(q["auc"])
    contract = load_contract(DATASET)
    holdout = scenario.generate(timeline.holdout_rows, seed=seed + 3000, start=timeline.change, days=30)
    oracle_data = scenario.generate(
        timeline.rows_per_day * oracle_days, seed=seed + 2000, start=timeline.change, days=oracle_days
    )
    every_label = pd.to_datetime(oracle_data["event_time"], utc=True).max() + timeline.label_delay
    oracle = train_as_loop(oracle_data, labels_as_of=every_label.to_pydatetime(), timeline=timeline)
    run.auc_v1 = holdout_auc(first.result, holdout, contract)
    run.auc_v2 = holdout_auc(champion.result, holdout, contract)
    run.v2_version = champion.version
    run.auc_oracle = holdout_auc(oracle, holdout, contract)
    return run


def _retrain(
    day: int,
    trigger: str,
    *,
    traffic: pd.DataFrame,
    timeline: Timeline,
    settings: LoopSettings,
    champion: Model,
    evaluated: dict[str, float],
    drift: list[ChangeSignal],
    live_days: list[DayQuality],
) -> tuple[Retraining, Model | None]:
    """One retraining at the end of `day`: the snapshot step's window rule on the labels known then, the training
    job, and the promotion gate against the champion (its live figures since the change, when trained since one)."""
    cut = timeline.change + timedelta(days=day + 1)
    frame = snapshot(traffic, as_of=cut, timeline=timeline)
    event_days = pd.to_datetime(frame["event_time"], utc=True).dt.date
    signals = [
        *drift,
        *live_auc_signals(
            live_days,
            evaluated_auc=evaluated,
            min_live_auc=settings.min_live_auc,
            max_live_auc_drop=settings.max_live_auc_drop,
        ),
    ]
    landed = set(pd.to_datetime(traffic["event_time"], utc=True).dt.date)
    stage_start = window_for(landed, as_of=cut.date(), window_days=timeline.window_days)[0]
    rule = window_rule(
        stage_start,
        change_start(signals),
        {d: int(n) for d, n in event_days.value_counts().items()},
        min_rows=settings.min_rows,
        min_span_days=settings.min_span_days,
        inherited=champion.change_since,
    )
    if not rule.ready:
        return Retraining(
            day, trigger, "waiting", rule.reason, rule.start, rule.change_since, rule.labelled_since_change
        ), None
    since = date.fromisoformat(rule.start)
    frame = frame[(event_days >= since).to_numpy()].reset_index(drop=True)
    result = train_as_loop(frame, labels_as_of=cut, timeline=timeline)
    live = live_metrics_since(live_days, since) if rule.change_since else None
    decision = evaluate_gate(result.evaluation, champion_since_change(champion.result.evaluation, live), settings.gate)
    outcome = Retraining(
        day,
        trigger,
        "promoted" if decision.approved else "rejected",
        "; ".join(decision.reasons[:3]) if not decision.approved else rule.reason,
        rule.start,
        rule.change_since,
        len(frame),
        test_auc=evaluated_auc(result),
    )
    if not decision.approved:
        return outcome, None
    return outcome, Model("", result, since if rule.change_since else None)


# The loop's sizes outside the demo (the recovery benchmark's, `python -m mlloop.recovery --loop-days`).
LOOP_ROWS_PER_DAY = 600
LOOP_HISTORY_DAYS = 200
# The demo's sizes: the dev stage's drift check needs min_drift_samples (500) rows in a day, so 600 a day; a shorter
# history and oracle than the benchmark's keep it quick.
DEMO_ROWS_PER_DAY = 600
DEMO_HISTORY_DAYS = 200
DEMO_HOLDOUT_ROWS = 8000
DEMO_ORACLE_DAYS = 190
DEMO_DAYS = 260


def demo_runs(seed: int) -> list[dict[str, Any]]:
    """Both scenarios at one seed on the dev stage's settings, as JSON-ready dicts (the demo runs this in a worker
    process while the earlier phases run on the embedded AWS)."""
    timeline = stage_timeline(
        "dev", rows_per_day=DEMO_ROWS_PER_DAY, history_days=DEMO_HISTORY_DAYS, holdout_rows=DEMO_HOLDOUT_ROWS
    )
    settings = stage_loop_settings()
    pre_change = history(seed, timeline)
    v1 = train_v1(pre_change, timeline)
    return [
        simulate_loop(
            SCENARIOS[name],
            seed,
            timeline,
            settings,
            days=DEMO_DAYS,
            tail_days=40,
            oracle_days=DEMO_ORACLE_DAYS,
            v1=v1,
            pre_change=pre_change,
        ).to_dict()
        | {"description": SCENARIOS[name].description}
        for name in ("feature_drift", "concept_change")
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mlloop.recovery [--window-days N] [--retrain-after-days D ...] [--seed S ...]`: one JSON line per
    scenario, seed and retraining day; the dev stage's timeline unless told otherwise. With `--loop-days N`: the
    loop simulated by day instead (`simulate_loop` on the stage's settings), one JSON line per scenario and seed;
    `--scenario unchanged` runs it in a world that does not change (no change should be established)."""
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m mlloop.recovery", description=main.__doc__)
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--window-days", type=int, help="the stage's training.window_days instead")
    parser.add_argument("--retrain-after-days", type=int, action="append", help="default: first_clean_retrain")
    parser.add_argument("--seed", type=int, action="append", help="default: 1")
    parser.add_argument(
        "--scenario", choices=sorted([*SCENARIOS, UNCHANGED.name]), action="append", help="default: every scenario"
    )
    parser.add_argument("--loop-days", type=int, help="simulate the loop by day for this many days")
    parser.add_argument(
        "--rows-per-day", type=int, help=f"default: {Timeline.rows_per_day} ({LOOP_ROWS_PER_DAY} with --loop-days)"
    )
    parser.add_argument(
        "--history-days", type=int, help=f"default: {Timeline.history_days} ({LOOP_HISTORY_DAYS} with --loop-days)"
    )
    args = parser.parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.window_days:
        overrides["window_days"] = args.window_days
        overrides["retrain_after_days"] = first_clean_retrain(args.window_days)
    days = args.retrain_after_days or []
    if days:
        overrides["retrain_after_days"] = max(days)
    if args.loop_days:
        overrides |= {"rows_per_day": LOOP_ROWS_PER_DAY, "history_days": LOOP_HISTORY_DAYS}
    if args.rows_per_day:
        overrides["rows_per_day"] = args.rows_per_day
    if args.history_days:
        overrides["history_days"] = args.history_days
    timeline = stage_timeline(args.stage, **overrides)
    scenarios = {**SCENARIOS, UNCHANGED.name: UNCHANGED}
    for seed in args.seed or [1]:
        pre_change = history(seed, timeline)
        v1 = train_v1(pre_change, timeline)
        for name in args.scenario or sorted(SCENARIOS):
            if args.loop_days:
                run = simulate_loop(
                    scenarios[name],
                    seed,
                    timeline,
                    stage_loop_settings(args.stage),
                    days=args.loop_days,
                    v1=v1,
                    pre_change=pre_change,
                ).to_dict()
                run.pop("live_auc")
                run["retrainings"] = [r for r in run["retrainings"] if r["outcome"] != "waiting" or r["change_since"]]
                print(json.dumps(run), flush=True)
                continue
            curve = recovery_curve(
                scenarios[name], seed, timeline, days or [timeline.retrain_after_days], v1=v1, pre_change=pre_change
            )
            for point in curve:
                print(json.dumps({"window_days": timeline.window_days, **point.to_dict()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
