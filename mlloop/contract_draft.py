"""Draft a data contract from a sample file, for a person to review.

`mlloop contract draft sample.csv --dataset loans --label defaulted` reads a CSV or Parquet sample and proposes
the contract's columns (entity key, event time, label, features with types, ranges, categories and
nullability). Every choice comes with the reason it was made, because a draft is only as good as its review:
the sample may not show every category, the true range or the missing values production will send.
The result is checked with the same parser ingestion and training use (`functions.shared.contract`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from functions.shared.contract import parse_contract

# A column with at most this many distinct values (and few relative to the rows) reads as categorical.
MAX_CATEGORIES = 50
MAX_CATEGORY_SHARE = 0.05
# Share of non-empty values that must parse as timestamps for a text column to be an event time.
MIN_TIMESTAMP_SHARE = 0.99
# Observed ranges are widened by this share of their span, so the first production value past the
# sample's extreme is not quarantined; a person narrows them to the domain's real bounds.
RANGE_MARGIN = 0.1
_TRUE_FALSE = {"true", "false", "t", "f", "yes", "no", "y", "n"}
_LABEL_HINTS = ("label", "target", "outcome", "churn", "default", "fraud", "converted", "class", "y")
_KEY_HINTS = ("_id", "id", "key", "uuid")
_TIME_HINTS = ("time", "date", "timestamp", "_at", "ts")


class DraftError(ValueError):
    """The sample cannot give a contract (no event time, no binary label, ...); the message says what to pass."""


@dataclass
class Draft:
    contract: dict[str, Any]
    reasons: list[str] = field(default_factory=list)

    def notes(self) -> str:
        lines = [f"# Review notes for the draft contract `{self.contract['dataset']}`", ""]
        lines += [f"- {reason}" for reason in self.reasons]
        return "\n".join(lines) + "\n"


def read_sample(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if p.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(p)
    if p.suffix.lower() in {".csv", ".txt"} or p.name.lower().endswith(".csv.gz"):
        return pd.read_csv(p, low_memory=False)
    raise DraftError(f"{p.name}: only CSV (.csv, .csv.gz) and Parquet (.parquet) samples are read")


def snake_case(name: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip())
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    if not text or not text[0].isalpha():
        text = f"col_{text}"
    return text


def _timestamps(column: pd.Series) -> pd.Series | None:
    """The column as UTC timestamps when (almost) every non-empty value is one, else None."""
    values = column.dropna()
    if values.empty or pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return None
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = pd.to_datetime(values, utc=True)
    else:
        parsed = pd.to_datetime(values.astype(str), utc=True, errors="coerce", format="mixed")
    if parsed.notna().mean() < MIN_TIMESTAMP_SHARE:
        return None
    return parsed


def _is_boolean(column: pd.Series) -> bool:
    values = column.dropna()
    if values.empty:
        return False
    if pd.api.types.is_bool_dtype(column):
        return True
    if pd.api.types.is_numeric_dtype(column):
        return False
    return {str(v).strip().lower() for v in values.unique()} <= _TRUE_FALSE


def _is_binary(column: pd.Series) -> bool:
    values = column.dropna()
    if values.empty:
        return False
    if pd.api.types.is_bool_dtype(column):
        return True
    return pd.api.types.is_numeric_dtype(column) and set(values.unique()) <= {0, 1}


def _hinted(name: str, hints: tuple[str, ...]) -> bool:
    lowered = name.lower()
    return any(lowered == hint or lowered.endswith(hint) or lowered.startswith(hint) for hint in hints)


def _nice(value: float, direction: int) -> float:
    """Round outwards to two significant digits, so a bound reads like a choice, not a sample's accident."""
    if value == 0 or not math.isfinite(value):
        return 0.0
    scale = 10 ** (math.floor(math.log10(abs(value))) - 1)
    rounded = (math.ceil if direction > 0 else math.floor)(value / scale) * scale
    return float(round(rounded, 10))


def _bounds(values: pd.Series, integer: bool) -> tuple[float, float, str]:
    lo, hi = float(values.min()), float(values.max())
    margin = (hi - lo) * RANGE_MARGIN or abs(hi) * RANGE_MARGIN or 1.0
    low = 0.0 if lo >= 0 else _nice(lo - margin, -1)
    high = _nice(hi + margin, +1)
    if integer:
        low, high = float(math.floor(low)), float(math.ceil(high))
    why = f"observed {lo:g}..{hi:g}; bounds {low:g}..{high:g} add {RANGE_MARGIN:.0%} of the span" + (
        " and keep 0 as the floor of a non-negative column" if lo >= 0 else ""
    )
    return low, high, why


def _choose(
    frame: pd.DataFrame, given: str | None, *, role: str, candidates: list[str], flag: str, hint: str
) -> tuple[str, str]:
    if given is not None:
        if given not in frame.columns:
            raise DraftError(f"{flag} {given}: no such column (columns: {', '.join(map(str, frame.columns))})")
        return given, f"{role} `{given}`: given with {flag}"
    if not candidates:
        raise DraftError(f"no column looks like the {role} ({hint}); name it with {flag} COLUMN")
    return candidates[0], f"{role} `{candidates[0]}`: {hint}" + (
        f" (other candidates: {', '.join(candidates[1:4])}; pass {flag} to choose)" if len(candidates) > 1 else ""
    )


def draft_contract(
    frame: pd.DataFrame,
    *,
    dataset: str,
    label: str | None = None,
    entity_key: str | None = None,
    event_time: str | None = None,
    label_window_days: int | None = None,
    now: datetime | None = None,
) -> Draft:
    """A contract document for `frame`'s columns, with the reason for each choice."""
    if frame.empty:
        raise DraftError("the sample has no rows")
    reasons: list[str] = [f"sample: {len(frame):,} rows, {len(frame.columns)} columns"]
    renamed = {str(c): snake_case(str(c)) for c in frame.columns}
    for original, name in renamed.items():
        if original != name:
            reasons.append(
                f"column `{original}` must be snake_case in a contract: drafted as `{name}`; rename it in the "
                "source files too, since ingestion matches header names exactly"
            )
    frame = frame.rename(columns=renamed)
    given = {
        key: renamed.get(value, value) if value else None
        for key, value in (("label", label), ("entity_key", entity_key), ("event_time", event_time))
    }

    times = {str(c): parsed for c in frame.columns if (parsed := _timestamps(frame[c])) is not None}
    time_candidates = sorted(times, key=lambda c: (not _hinted(c, _TIME_HINTS), frame[c].isna().sum()))
    event_col, why = _choose(
        frame,
        given["event_time"],
        role="event time",
        candidates=time_candidates,
        flag="--event-time",
        hint="every value parses as a timestamp"
        + (" and its name says time" if time_candidates and _hinted(time_candidates[0], _TIME_HINTS) else ""),
    )
    reasons.append(why)
    if event_col not in times:
        raise DraftError(f"--event-time {event_col}: its values are not timestamps")
    stamps = times[event_col]

    label_candidates = sorted(
        (str(c) for c in frame.columns if c != event_col and (_is_binary(frame[c]) or _is_boolean(frame[c]))),
        key=lambda c: (not _hinted(c, _LABEL_HINTS), frame.columns.get_loc(c) * -1),
    )
    label_col, why = _choose(
        frame,
        given["label"],
        role="label",
        candidates=label_candidates,
        flag="--label",
        hint="a binary 0/1 column named like an outcome"
        if label_candidates and _hinted(label_candidates[0], _LABEL_HINTS)
        else "the last binary 0/1 column (none is named like an outcome; a label usually comes last)",
    )
    reasons.append(why)
    if not (_is_binary(frame[label_col]) or _is_boolean(frame[label_col])):
        raise DraftError(f"--label {label_col}: the platform trains binary classifiers; its values are not 0/1")
    positive_rate = float(pd.Series(frame[label_col]).dropna().astype(str).str.lower().isin(["1", "true"]).mean())
    reasons.append(f"label positive rate in the sample: {positive_rate:.3f}")

    def unique_with_time(column: str) -> bool:
        return not frame.duplicated(subset=[column, event_col]).any()

    key_candidates = [
        str(c)
        for c in frame.columns
        if c not in (event_col, label_col)
        and not pd.api.types.is_float_dtype(frame[c])
        and frame[c].notna().all()
        and frame[c].nunique() > 1
        and unique_with_time(str(c))
    ]
    key_candidates.sort(key=lambda c: (not _hinted(c, _KEY_HINTS), -frame[c].nunique()))
    key_col, why = _choose(
        frame,
        given["entity_key"],
        role="entity key",
        candidates=key_candidates,
        flag="--entity-key",
        hint="never empty, and unique together with the event time (the lake deduplicates on that pair)",
    )
    reasons.append(why)

    features: list[dict[str, Any]] = []
    for column in frame.columns:
        name = str(column)
        if name in (event_col, label_col, key_col):
            continue
        feature, why = _feature(name, frame[column])
        reasons.append(why)
        if feature is not None:
            features.append(feature)
    if not features:
        raise DraftError("no column is usable as a feature")

    now = now or datetime.now(UTC)
    oldest_days = max(1, math.ceil((now - stamps.min().to_pydatetime()).total_seconds() / 86400))
    max_age = int(_nice(oldest_days * 1.1 + 30, +1))
    reasons.append(
        f"freshness.max_event_age_days {max_age}: the oldest event is {oldest_days} days old; ingestion quarantines "
        "older rows, so historical backfills need this to cover them"
    )
    window = label_window_days or 30
    reasons.append(
        f"label.window_days {window}: "
        + (
            "given with --label-window-days"
            if label_window_days
            else "REVIEW: the sample cannot tell how long "
            "an outcome takes to be known; training treats a label as final only after this many days"
        )
    )
    document: dict[str, Any] = {
        "dataset": dataset,
        "version": "1.0.0",
        "description": f"REVIEW: what one row of {dataset} is, and what the label predicts.",
        "entity_key": key_col,
        "event_timestamp": event_col,
        "label": {
            "name": label_col,
            "definition": f"REVIEW: when {label_col} is 1.",
            "window_days": window,
            "positive_value": 1,
        },
        "freshness": {"max_lag_hours": 72, "max_event_age_days": max_age, "max_future_skew_minutes": 15},
        "features": features,
    }
    parse_contract(document)
    return Draft(contract=document, reasons=reasons)


def _feature(name: str, column: pd.Series) -> tuple[dict[str, Any] | None, str]:
    values = column.dropna()
    nullable = bool(column.isna().any())
    null_note = f", nullable ({column.isna().mean():.1%} empty in the sample)" if nullable else ", not nullable"
    base: dict[str, Any] = {"name": name, "description": f"REVIEW: what {name} measures.", "nullable": nullable}
    if values.empty:
        return None, f"`{name}` skipped: every value in the sample is empty"
    if _is_boolean(column) or (_is_binary(column) and pd.api.types.is_integer_dtype(column)):
        return {**base, "type": "boolean"}, f"`{name}` boolean: only true/false (or 0/1) values{null_note}"
    if pd.api.types.is_numeric_dtype(column):
        integer = pd.api.types.is_integer_dtype(column) or bool((values == values.round()).all())
        low, high, why = _bounds(values.astype(float), integer)
        kind = "integer" if integer else "float"
        return {**base, "type": kind, "min": low, "max": high}, f"`{name}` {kind}: {why}{null_note}"
    distinct = values.astype(str).unique()
    if len(distinct) <= MAX_CATEGORIES and len(distinct) <= max(2, MAX_CATEGORY_SHARE * len(column)):
        categories = sorted(str(v) for v in distinct)
        return {**base, "type": "categorical", "categories": categories}, (
            f"`{name}` categorical: {len(categories)} distinct values{null_note}; a category the sample does not "
            "show is quarantined at ingestion and flagged as drift: add the ones you know of"
        )
    return None, (
        f"`{name}` skipped: free text or an identifier ({len(distinct):,} distinct values); the platform's features "
        "are numbers, booleans and categories"
    )
