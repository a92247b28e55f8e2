"""When the world the champion learnt changed, and whether a retraining can already train on the data since then.

A retraining asked for because the world changed (a drift alarm, a live-AUC alarm, or the weekly schedule after
one) gains little from the stage's whole window: that window is mostly the old world, and the training split fits
on its oldest 60 %, so the model learns the old world again (docs/benchmarks.md measured it: a retraining on day
91 or 182 after a change wins back little or nothing; only one whose window has moved past the change recovers).
So the snapshot starts its window at the change once the detectors have established one, and trains only when the
data since then is enough for the training job; until then it waits, and the next trigger (the weekly schedule)
asks again.

What the detectors say, per day: the drift detector's daily window drifted or not (inputs or scores moved against
the serving version's baseline); the live-quality job's AUC on that day's labelled predictions fell (below
`min_live_auc`, or more than `max_live_auc_drop` under the best evaluated test AUC of the serving version and
the versions before it) or not. Every version's days count: a weekly retraining on the old window replaces the
champion with another model of the old world, and the change must not be forgotten with each new version. For each
detector, the change starts at the day that best splits its days into "before: not changed" and "after: changed"
(the maximum of a cumulative sum of +1 per changed day and -1 per unchanged day counted back from the newest): a noisy
day on either side moves it little, where "the first changed day" would be set by any one noisy day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

# How many more changed than unchanged days since its start a change needs before it cuts the window: a day's
# live AUC on a few hundred labels can cross the drop allowance by chance, and one such day must not cut a year
# of data; a real change gives one more changed day per day.
MIN_NET_CHANGED_DAYS = 7
DRIFT = "drift"
LIVE_AUC = "live_auc"


@dataclass(frozen=True)
class ChangeSignal:
    """One detector's verdict about the champion on one day (the day of the traffic it judged)."""

    day: date
    changed: bool
    source: str


@dataclass(frozen=True)
class Change:
    since: date
    # Detectors that saw a change on or after `since`, and the net count of changed days behind it.
    seen_by: tuple[str, ...]
    net_changed_days: int


def change_start(signals: Iterable[ChangeSignal], *, min_net_days: int = MIN_NET_CHANGED_DAYS) -> Change | None:
    """The day the latest change began, or None when no detector holds `min_net_days` more changed days than
    unchanged ones since some day. Each detector is read on its own: they see different things on different days
    (drift sees moved inputs the same day, live AUC a changed relationship a label window later, and its newest
    days are not yet judged), so one's silence is no evidence against the other. When both establish a change,
    the earlier start wins: the drift detector judges each day as it happens, while the live AUC of a few hundred
    labels a day needs more days to outweigh its noise and tends to start late."""
    by_source: dict[str, list[ChangeSignal]] = {}
    for s in signals:
        by_source.setdefault(s.source, []).append(s)
    found = [c for c in (_one_detector(s, min_net_days) for s in by_source.values()) if c is not None]
    if not found:
        return None
    since = min(c.since for c in found)
    return Change(
        since=since,
        seen_by=tuple(sorted(c.seen_by[0] for c in found)),
        net_changed_days=max(c.net_changed_days for c in found if c.since == since),
    )


def _one_detector(signals: list[ChangeSignal], min_net_days: int) -> Change | None:
    by_day: dict[date, bool] = {}
    for s in signals:
        by_day[s.day] = by_day.get(s.day, False) or s.changed
    score, best, best_day = 0, 0, None
    for day in sorted(by_day, reverse=True):
        score += 1 if by_day[day] else -1
        # `>`: among equal scores the latest day wins, so the window holds no old-world day it could leave out.
        if score > best:
            best, best_day = score, day
    if best_day is None or best < min_net_days:
        return None
    return Change(since=best_day, seen_by=(signals[0].source,), net_changed_days=best)


def drift_signals(reports: Iterable[Mapping[str, Any]]) -> list[ChangeSignal]:
    """The drift detector's reports (functions/drift_detector: `drift_report.json`), each dated by the last hour of
    its window; a window with too few samples is no verdict. Every version's reports count: a weekly retraining on
    the old window replaces the champion with another model of the old world, and the change must not be forgotten
    with each new version."""
    out = []
    for report in reports:
        end = str(report.get("window_end", ""))
        if report.get("verdict") == "insufficient_data" or not end:
            continue
        last_hour = date.fromisoformat(end[:10]) if end[11:13] != "00" else _day_before(end[:10])
        changed = bool(report.get("drift_detected") or report.get("prediction_drift_detected"))
        out.append(ChangeSignal(last_hour, changed, DRIFT))
    return out


def _day_before(iso_day: str) -> date:
    return date.fromordinal(date.fromisoformat(iso_day).toordinal() - 1)


# (model version, ISO day, the live-quality job's figures of that version on that day)
DayQuality = tuple[str, str, Mapping[str, Any]]


def days_of_every_version(by_model_version: Mapping[str, Mapping[str, Any]]) -> list[DayQuality]:
    """(version, day, quality) of every version in a live-quality report (`by_model_version[v]["by_day"]`)."""
    return [
        (str(version), day, quality)
        for version, figures in by_model_version.items()
        for day, quality in (figures.get("by_day") or {}).items()
    ]


def live_auc_signals(
    days: Iterable[DayQuality], *, evaluated_auc: Mapping[str, float], min_live_auc: float, max_live_auc_drop: float
) -> list[ChangeSignal]:
    """Per-day live figures (functions/label_quality) judged by the live-AUC alarms' thresholds, each against the
    best evaluated test AUC of the version that served the day and of the versions that served before it (in the
    order they first served): a version retrained on the stage's window after a change evaluates lower, because
    its newest rows, its test split, are already the changed world; judged by its own figure, its days and those
    of every weekly retraining after it would hide the change (docs/benchmarks.md: a concept change never
    detected in 260 days, each old-world retraining evaluating a little lower). Too few labels, or a version
    without an evaluated AUC, is no verdict."""
    listed = list(days)
    first_served: dict[str, str] = {}
    for version, day, _ in listed:
        first_served[version] = min(first_served.get(version, day), day)
    reference: dict[str, float] = {}
    best: float | None = None
    for version in sorted(first_served, key=lambda v: (first_served[v], v)):
        own = evaluated_auc.get(version)
        if own is None:
            continue
        best = own if best is None else max(best, own)
        reference[version] = best
    out = []
    for version, day, quality in listed:
        auc, bar = quality.get("auc"), reference.get(version)
        if quality.get("verdict") != "measured" or auc is None or bar is None:
            continue
        changed = float(auc) < min_live_auc or bar - float(auc) > max_live_auc_drop
        out.append(ChangeSignal(date.fromisoformat(day), changed, LIVE_AUC))
    return out


def live_metrics_since(days: Iterable[DayQuality], since: date) -> dict[str, float] | None:
    """What the served models scored live on the days since `since` (AUC, calibration error), each day weighted
    by its labelled predictions (a mean of daily figures, not one pooled AUC: the report keeps days, not rows).
    None without any."""
    measured = [
        q
        for _, day, q in days
        if date.fromisoformat(day) >= since and q.get("verdict") == "measured" and q.get("auc") is not None
    ]
    total = sum(int(q["labeled_predictions"]) for q in measured)
    if not total:
        return None

    def mean(read: Any) -> float:
        return float(sum(read(q) * int(q["labeled_predictions"]) for q in measured) / total)

    return {
        "roc_auc": mean(lambda q: float(q["auc"])),
        "ece": mean(lambda q: float((q.get("calibration") or {}).get("expected_calibration_error", 0.0))),
        "labeled_predictions": float(total),
    }


def min_split_span_days(label_window_days: int, validation_fraction: float, test_fraction: float) -> float:
    """The shortest span of labelled days the training job can split: `training.data.point_in_time_split` leaves
    a label window between train and validation and between validation and test, so each share must span more
    than one label window."""
    smallest = min(1.0 - validation_fraction - test_fraction, validation_fraction, test_fraction)
    return label_window_days / smallest


@dataclass(frozen=True)
class WindowRule:
    """Where the snapshot's window starts, and whether the run can train on it now."""

    start: str
    # The change the window starts at; "" when it is the stage's whole window.
    change_since: str
    ready: bool
    reason: str
    labelled_since_change: int = 0
    labelled_span_days: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def window_rule(
    stage_start: date,
    change: Change | None,
    labelled_per_day: Mapping[date, int],
    *,
    min_rows: int,
    min_span_days: float,
    inherited: date | None = None,
) -> WindowRule:
    """The stage's window, unless a change inside it is known: detected now, or `inherited` (the change the
    champion's own window started at, so a model trained since a change is never replaced by one trained mostly
    before it). Then the window starts at the change when its labelled rows are enough for the data gate
    (`min_rows`) and span enough days for the training split (`min_span_days`); else the run waits."""
    candidates = [(change.since, "detected by " + " and ".join(change.seen_by))] if change else []
    if inherited is not None:
        candidates.append((inherited, "the champion's window started at it"))
    inside = [(day, why) for day, why in candidates if day > stage_start]
    if not inside:
        return WindowRule(stage_start.isoformat(), "", True, "the stage's window: no change known inside it")
    since, why = max(inside)
    days = [day for day, n in labelled_per_day.items() if day >= since and n > 0]
    rows = sum(labelled_per_day[day] for day in days)
    span = (max(days) - min(days)).days + 1 if days else 0
    facts = f"{rows} labelled rows over {span} days since the change on {since.isoformat()} ({why})"
    if rows >= min_rows and span > min_span_days:
        reason = f"the window starts at the change: {facts}"
        return WindowRule(since.isoformat(), since.isoformat(), True, reason, rows, span)
    return WindowRule(
        since.isoformat(),
        since.isoformat(),
        False,
        f"waiting for labels since the change: {facts}; training needs at least {min_rows} rows over more than"
        f" {min_span_days:g} days (data gate, training split); the old window would teach the old world again",
        rows,
        span,
    )
