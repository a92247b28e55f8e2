"""The fidelity report: per principal, the calls it made and how each was decided; requests validated.

`status --json` and the demo's run.json carry `fidelity.report()`. The request path (authz) records every
authorisation decision; the request validation records each request it checked against a service model
with `record_validated(service, operation)`.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any

_lock = threading.Lock()
_principals: dict[str, Counter[str]] = defaultdict(Counter)
_not_evaluable: dict[str, set[str]] = defaultdict(set)
_denials: list[dict[str, str]] = []
_validated: Counter[str] = Counter()
_MAX_DENIALS = 50


def record_decision(principal: str, outcome: str, *, action: str = "", resource: str = "", detail: str = "") -> None:
    """One authorised call ('authorised'), refused one ('denied') or one whose policy held something the
    evaluator does not understand ('not evaluable': it counts as denied, and `detail` says what)."""
    with _lock:
        counts = _principals[principal]
        counts["calls"] += 1
        counts[outcome] += 1
        if outcome == "not evaluable" and detail:
            _not_evaluable[principal].add(detail)
        if outcome != "authorised" and len(_denials) < _MAX_DENIALS:
            _denials.append({"principal": principal, "action": action, "resource": resource, "outcome": outcome})


def record_validated(service: str, operation: str) -> None:
    """A request checked against botocore's model of `service`'s `operation`."""
    with _lock:
        _validated[f"{service}:{operation}"] += 1


def report() -> dict[str, Any]:
    with _lock:
        principals = {
            name: {
                "calls": counts["calls"],
                "authorised": counts["authorised"],
                "denied": counts["denied"],
                "not_evaluable": counts["not evaluable"],
                **({"not_evaluable_reasons": sorted(_not_evaluable[name])} if _not_evaluable.get(name) else {}),
            }
            for name, counts in sorted(_principals.items())
        }
        return {
            "principals": principals,
            "totals": {
                "calls": sum(p["calls"] for p in principals.values()),
                "authorised": sum(p["authorised"] for p in principals.values()),
                "denied": sum(p["denied"] for p in principals.values()),
                "not_evaluable": sum(p["not_evaluable"] for p in principals.values()),
                "validated_requests": sum(_validated.values()),
            },
            "validated": dict(sorted(_validated.items())),
            "refusals": list(_denials),
        }


def reset() -> None:
    with _lock:
        _principals.clear()
        _not_evaluable.clear()
        _denials.clear()
        _validated.clear()
