"""Recovery after the world changes, measured on the loop itself simulated by day (mlloop/recovery.simulate_loop):
the detectors, the retraining alarm and the weekly schedule, the snapshot's window rule, training, the gate and the
canary's timings, per scenario, median over seeds.

- `recovery_ratio_<scenario>`: (AUC v2 - AUC v1) / (AUC oracle - AUC v1) on a labelled post-change holdout, v2 being
  the version serving at the end (the first one trained since the change, when the loop recovered);
- `days_to_recover`: simulated days from the change to that version serving all traffic, median over both scenarios
  and the seeds; a run not recovered within the simulated days counts as that horizon (censored, printed `>N`).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace

from benchmarks.common import BenchResult, Size
from benchmarks.timing import Ratio
from mlloop.recovery import (
    LOOP_HISTORY_DAYS,
    LOOP_ROWS_PER_DAY,
    SCENARIOS,
    LoopRun,
    days_label,
    history,
    median_censored,
    simulate_loop,
    stage_loop_settings,
    stage_timeline,
    train_v1,
)

SEEDS: dict[Size, tuple[int, ...]] = {"tiny": (1,), "full": (1, 2, 3, 4, 5)}
# The dev stage's drift check needs min_drift_samples (500) rows in its 24-hour window: 600 rows a day.
ROWS_PER_DAY: dict[Size, int] = {"tiny": 150, "full": LOOP_ROWS_PER_DAY}
HOLDOUT_ROWS: dict[Size, int] = {"tiny": 4000, "full": 20_000}
ORACLE_DAYS: dict[Size, int] = {"tiny": 190, "full": 360}
# Long enough for the loop to recover (labels since the change must span the training split's 150 days, and
# arrive 33 days after their events) plus the tail that shows v2's own live AUC.
DAYS = 260
HISTORY_DAYS = LOOP_HISTORY_DAYS
TARGET = 0.9
# Before the window rule a retraining recovered only once the stage's window had moved past the change.
DAYS_TARGET = 365


def run(size: Size) -> BenchResult:
    started, cpu_started = time.perf_counter(), time.process_time()
    timeline = stage_timeline(
        rows_per_day=ROWS_PER_DAY[size], holdout_rows=HOLDOUT_ROWS[size], history_days=HISTORY_DAYS
    )
    settings = stage_loop_settings()
    if size == "tiny":
        # A smoke run that keeps the benchmark from rotting: fewer rows a day, so lower minimums for a day's drift
        # check and a day's live AUC too.
        settings = replace(settings, drift=replace(settings.drift, min_samples=100), min_labeled=100)
    scenarios = ["feature_drift"] if size == "tiny" else sorted(SCENARIOS)
    result = BenchResult("recovery")
    runs: dict[str, list[LoopRun]] = {name: [] for name in scenarios}
    for seed in SEEDS[size]:
        pre_change = history(seed, timeline)
        v1 = train_v1(pre_change, timeline)
        for name in scenarios:
            runs[name].append(
                simulate_loop(
                    SCENARIOS[name],
                    seed,
                    timeline,
                    settings,
                    days=DAYS,
                    oracle_days=ORACLE_DAYS[size],
                    v1=v1,
                    pre_change=pre_change,
                )
            )
    result.facts["timeline"] = {
        "history_days": timeline.history_days,
        "days_simulated": DAYS,
        "window_days": timeline.window_days,
        "label_window_days": timeline.label_window_days,
        "label_lag_hours": timeline.label_lag_hours,
        "rows_per_day": timeline.rows_per_day,
        "holdout_rows": timeline.holdout_rows,
        "oracle_days": ORACLE_DAYS[size],
        "candidate": timeline.candidate,
        "schedule_days": settings.schedule_days,
        "canary_seconds": settings.canary_seconds,
    }
    result.facts["seconds"] = {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu_started}
    result.facts["seeds"] = list(SEEDS[size])
    result.facts["runs"] = {name: [_summary(r) for r in loop_runs] for name, loop_runs in runs.items()}
    for name, loop_runs in runs.items():
        ratios = [r.ratio for r in loop_runs]
        result.ratios.append(
            Ratio(
                f"recovery_ratio_{name}",
                statistics.median(ratios),
                TARGET,
                ">=",
                "median over seeds of (AUC v2 - AUC v1) / (AUC oracle - AUC v1), v2 the version serving after the"
                " loop simulated by day recovered",
                "post-change holdout",
            )
        )
        first = loop_runs[0]
        result.notes.append(
            f"{name}: ratio per seed {', '.join(f'{r.seed}: {r.ratio:.3f}' for r in loop_runs)} (spread"
            f" {min(ratios):.3f}..{max(ratios):.3f}); days to recover per seed"
            f" {', '.join(days_label(*r.days_to_recover_censored(DAYS)) for r in loop_runs)}; detected on day"
            f" {', '.join(str(r.detection[0]) + ' by ' + r.detection[1] if r.detection else '-' for r in loop_runs)};"
            f" AUC v1/v2/oracle of seed {first.seed}: {first.auc_v1:.4f}/{first.auc_v2:.4f}/{first.auc_oracle:.4f}"
        )
    # A run not recovered within the simulated days counts as the horizon, a censored value (`>N`).
    days = [r.days_to_recover_censored(DAYS) for loop_runs in runs.values() for r in loop_runs]
    median, censored = median_censored(days)
    result.ratios.append(
        Ratio(
            "days_to_recover",
            median,
            DAYS_TARGET,
            "<=",
            "median over seeds and scenarios of the simulated days from the change to the first version trained"
            f" since the change serving all traffic (a run not recovered within {DAYS} days counts as >{DAYS})",
            f"days ({days_label(median, censored)}; spread {days_label(*min(days))}..{days_label(*max(days))})",
        )
    )
    result.notes.append(
        f"recovery: the loop simulated by day (mlloop/recovery.simulate_loop) on the dev stage's settings, history"
        f" {timeline.history_days} days, {timeline.rows_per_day} rows a day, labels {timeline.label_window_days} days"
        f" + {timeline.label_lag_hours:g} h after the event; {time.perf_counter() - started:.0f} s"
        f" ({time.process_time() - cpu_started:.0f} s of CPU)"
    )
    return result


def _summary(run: LoopRun) -> dict[str, object]:
    summary = run.to_dict()
    summary.pop("live_auc")
    summary["retrainings"] = [r for r in summary["retrainings"] if r["outcome"] != "waiting"]
    return summary
