"""Names and value rules of the drift baseline shared by training (which writes it) and the drift detector."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

SCHEMA_VERSION = 1
BASELINE_KIND = "mlloop.drift_baseline"
REPORT_KIND = "mlloop.drift_report"
BOOLEAN_CATEGORIES: tuple[str, ...] = ("false", "true")
PREDICTION_NAME = "prediction_score"
_BOOLEAN_WORDS = {"true": "true", "false": "false", "1": "true", "0": "false", "1.0": "true", "0.0": "false"}


def normalize_category(value: Any, *, boolean: bool = False) -> str | None:
    """The string a categorical or boolean value is counted under; None when missing.

    Booleans arrive as JSON true/false, "True"/"False" from CSV, or 1/0: all count as "true"/"false".
    """
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):  # numpy 2 and numpy 1 names
        return "true" if value else "false"
    text = str(value)
    if not text:
        return None
    if boolean:
        return _BOOLEAN_WORDS.get(text.lower(), text)
    return text


def importance_shares(names: Iterable[str], importances: Mapping[str, Any] | None) -> dict[str, float]:
    """Each feature's share of the model's importance, summing to 1: negative importances (noise) count as none;
    equal shares when nothing was measured or nothing mattered."""
    raw = {name: max(float((importances or {}).get(name) or 0.0), 0.0) for name in names}
    total = sum(raw.values())
    if total <= 0:
        return {name: 1.0 / len(raw) for name in raw} if raw else {}
    return {name: value / total for name, value in raw.items()}
