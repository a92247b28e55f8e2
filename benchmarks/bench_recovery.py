"""Recovery after the world changes: how much of the AUC a change costs the champion the loop's retraining wins
back, on labelled post-change data (mlloop/recovery.py), per scenario, median over seeds.

`days_to_recover` (the issue's simulated days from the change to v2 serving all traffic) is not measured here: it
needs the loop itself (detection, the training state machine, the canary and its bake) on a controllable clock.
"""

from __future__ import annotations

import statistics
import time

from benchmarks.common import BenchResult, Size
from benchmarks.timing import Ratio
from mlloop.recovery import SCENARIOS, Recovery, history, recovery_curve, stage_timeline, train_v1

SEEDS: dict[Size, tuple[int, ...]] = {"tiny": (1,), "full": (1, 2, 3, 4, 5)}
ROWS_PER_DAY: dict[Size, int] = {"tiny": 25, "full": 60}
HOLDOUT_ROWS: dict[Size, int] = {"tiny": 4000, "full": 20_000}
# Earlier retrainings, on the first seed only: how recovery builds up while the window still holds the old world.
EARLIER_DAYS: dict[Size, tuple[int, ...]] = {"tiny": (), "full": (91, 182, 273)}
TARGET = 0.9


def run(size: Size) -> BenchResult:
    started, cpu_started = time.perf_counter(), time.process_time()
    timeline = stage_timeline(rows_per_day=ROWS_PER_DAY[size], holdout_rows=HOLDOUT_ROWS[size])
    result = BenchResult("recovery")
    measured: dict[str, list[Recovery]] = {name: [] for name in SCENARIOS}
    earlier: dict[str, list[Recovery]] = {}
    for seed in SEEDS[size]:
        pre_change = history(seed, timeline)
        v1 = train_v1(pre_change, timeline)
        for name, scenario in SCENARIOS.items():
            days = [*EARLIER_DAYS[size], timeline.retrain_after_days] if seed == SEEDS[size][0] else []
            curve = recovery_curve(
                scenario, seed, timeline, days or [timeline.retrain_after_days], v1=v1, pre_change=pre_change
            )
            measured[name].append(curve[-1])
            if len(curve) > 1:
                earlier[name] = curve
    result.facts["timeline"] = {
        "history_days": timeline.history_days,
        "retrain_after_days": timeline.retrain_after_days,
        "window_days": timeline.window_days,
        "label_window_days": timeline.label_window_days,
        "label_lag_hours": timeline.label_lag_hours,
        "rows_per_day": timeline.rows_per_day,
        "holdout_rows": timeline.holdout_rows,
        "candidate": timeline.candidate,
    }
    result.facts["seconds"] = {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu_started}
    result.facts["seeds"] = list(SEEDS[size])
    result.facts["runs"] = {name: [r.to_dict() for r in runs] for name, runs in measured.items()}
    result.facts["earlier_retrainings"] = {name: [r.to_dict() for r in curve] for name, curve in earlier.items()}
    for name, runs in measured.items():
        ratios = [r.ratio for r in runs]
        median = statistics.median(ratios)
        result.ratios.append(
            Ratio(
                f"recovery_ratio_{name}",
                median,
                TARGET,
                ">=",
                f"median over seeds of (AUC v2 - AUC v1) / (AUC oracle - AUC v1), v2 retrained on day"
                f" {timeline.retrain_after_days} after the change",
                "post-change holdout",
            )
        )
        per_seed = ", ".join(f"{r.seed}: {r.ratio:.3f}" for r in runs)
        gaps = ", ".join(f"{r.gap:.3f}" for r in runs)
        result.notes.append(
            f"{name}: ratio per seed {per_seed} (spread {min(ratios):.3f}..{max(ratios):.3f}); v1's loss to the"
            f" oracle per seed {gaps}; AUC v1/v2/oracle of seed {runs[0].seed}:"
            f" {runs[0].auc_v1:.4f}/{runs[0].auc_v2:.4f}/{runs[0].auc_oracle:.4f}"
        )
        if name in earlier:
            points = ", ".join(f"day {r.retrain_after_days}: {r.ratio:.2f}" for r in earlier[name])
            result.notes.append(f"{name}: ratio of the retraining on (seed {earlier[name][0].seed}) {points}")
    result.notes.append(
        f"stage window {timeline.window_days} days, labels arrive {timeline.label_window_days} days +"
        f" {timeline.label_lag_hours:g} h after the event, {timeline.rows_per_day} rows a day;"
        f" {time.perf_counter() - started:.0f} s ({time.process_time() - cpu_started:.0f} s of CPU);"
        " days_to_recover needs the loop on a controllable clock"
    )
    return result
