"""Counters for the local cloud's fidelity report: how many requests were checked against AWS's own rules.

The request path records here; `snapshot()` is what `status --json` and the demo's report read.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

_lock = threading.Lock()
_validated: Counter[tuple[str, str]] = Counter()
_refused: Counter[tuple[str, str]] = Counter()


def record_validated(service: str, operation: str, *, refused: bool = False) -> None:
    """One request to `service`.`operation` was checked against the operation's botocore service model."""
    with _lock:
        _validated[(service, operation)] += 1
        if refused:
            _refused[(service, operation)] += 1


def snapshot() -> dict[str, Any]:
    """Validated and refused request counts, in total and per `service:Operation`."""
    with _lock:
        return {
            "validated_requests": sum(_validated.values()),
            "refused_by_validation": sum(_refused.values()),
            "validated_by_operation": {f"{s}:{o}": n for (s, o), n in sorted(_validated.items())},
            "refused_by_operation": {f"{s}:{o}": n for (s, o), n in sorted(_refused.items())},
        }


def reset() -> None:
    with _lock:
        _validated.clear()
        _refused.clear()
