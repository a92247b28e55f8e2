"""The circuit breaker as a table of call sequences, and the front door's use of it.

Each sequence is read left to right: S / F = a call allowed and answered / failed; x = a call refused;
p = a call allowed and still out; hS / hF = the oldest call still out reports success / failure; +N = N seconds.
Parameters for every row: open at >= 50 % failures once the 30 s window holds 4 calls, 20 s cooldown, 2 probes,
a probe that has not reported after 5 s counts as failed.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.frontdoor.circuit import CircuitBreaker, Permit
from functions.frontdoor.logic import EndpointCallError
from tests.unit.frontdoor_support import SETTINGS, VALID_RECORD, RecordingTelemetry, ScriptedEndpoint, make_front_door

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(sequence: str) -> CircuitBreaker:
    clock = Clock()
    breaker = CircuitBreaker(
        failure_rate_percent=50,
        minimum_calls=4,
        window_seconds=30,
        cooldown_seconds=20,
        probes=2,
        probe_timeout_seconds=5,
        clock=clock,
    )
    held: list[Permit] = []
    for step in sequence.split():
        if step.startswith("+"):
            clock.now += float(step[1:])
            continue
        if step in ("hS", "hF"):
            breaker.record(held.pop(0), failed=step == "hF")
            continue
        permit = breaker.acquire()
        if step == "x":
            assert permit is None, f"{step} in {sequence!r}: the call should have been refused"
            continue
        assert permit is not None, f"{step} in {sequence!r}: the call should have been allowed"
        if step == "p":
            held.append(permit)
        else:
            breaker.record(permit, failed=step == "F")
    return breaker


C, O, H = "closed", "open", "half_open"  # noqa: E741 - the table reads better in one letter each

SEQUENCES = [
    # closed: the rate decides, and only once the window holds the minimum number of calls
    ("F F F", C, []),
    ("F F F F x", O, [(C, O)]),
    ("S F S F x", O, [(C, O)]),
    ("S S S F", C, []),
    ("S S S F S F S F", C, []),
    # a success does not wipe the failures before it (a breaker that reset on success never opened at 67 %)
    ("F F S F x", O, [(C, O)]),
    ("S S S S S S F F F F F F", O, [(C, O)]),
    # failures spread wider than the window never add up
    ("F +16 F +16 F +16 F +16 F", C, []),
    ("S S S S +31 F F F F", O, [(C, O)]),
    # open -> half-open after the cooldown, not before
    ("F F F F +19 x", O, [(C, O)]),
    ("F F F F +20 S", H, [(C, O), (O, H)]),
    # half-open: bounded probes; all succeed -> closed with a clean window; any fails -> open again
    ("F F F F +20 S S", C, [(C, O), (O, H), (H, C)]),
    ("F F F F +20 S S F F F", C, [(C, O), (O, H), (H, C)]),
    ("F F F F +20 F x", O, [(C, O), (O, H), (H, O)]),
    ("F F F F +20 S F x", O, [(C, O), (O, H), (H, O)]),
    ("F F F F +20 p p x", H, [(C, O), (O, H)]),
    ("F F F F +20 p p hS hS", C, [(C, O), (O, H), (H, C)]),
    ("F F F F +20 p p hS hF x", O, [(C, O), (O, H), (H, O)]),
    # a probe that never reports cannot jam the breaker: after the probe timeout it counts as failed
    ("F F F F +20 p p +5 x", O, [(C, O), (O, H), (H, O)]),
    ("F F F F +20 p +5 +20 S S", C, [(C, O), (O, H), (H, O), (O, H), (H, C)]),
    # an outcome from before the last transition moves nothing
    ("p F F F F hS x", O, [(C, O)]),
    ("p F F F F +20 hS S", H, [(C, O), (O, H)]),
    ("F F F F +20 p +5 +20 hS S", H, [(C, O), (O, H), (H, O), (O, H)]),
]


@pytest.mark.parametrize(("sequence", "state", "transitions"), SEQUENCES, ids=[s[0] for s in SEQUENCES])
def test_breaker_sequences(sequence: str, state: str, transitions: list[tuple[str, str]]) -> None:
    breaker = run(sequence)
    assert breaker.state == state
    assert breaker.transitions == transitions


def test_transitions_are_reported_to_the_listener_as_they_happen() -> None:
    seen: list[tuple[str, str]] = []
    clock = Clock()
    breaker = CircuitBreaker(
        failure_rate_percent=100,
        minimum_calls=1,
        window_seconds=10,
        cooldown_seconds=1,
        probes=1,
        probe_timeout_seconds=1,
        clock=clock,
        on_transition=lambda old, new: seen.append((old, new)),
    )
    permit = breaker.acquire()
    assert permit is not None
    breaker.record(permit, failed=True)
    clock.now += 1
    assert breaker.state == "half_open"
    assert seen == [("closed", "open"), ("open", "half_open")]


@pytest.mark.parametrize(
    "kwargs", [{"failure_rate_percent": 0}, {"failure_rate_percent": 101}, {"minimum_calls": 0}, {"probes": 0}]
)
def test_parameters_outside_their_meaning_are_refused(kwargs: dict[str, Any]) -> None:
    base = {
        "failure_rate_percent": 50,
        "minimum_calls": 4,
        "window_seconds": 30,
        "cooldown_seconds": 20,
        "probes": 2,
        "probe_timeout_seconds": 5,
    }
    with pytest.raises(ValueError, match="at least 1"):
        CircuitBreaker(**{**base, **kwargs})


# --- the front door and its breaker ------------------------------------------------------------------------


def _ask(door: Any, n: int) -> list[str | None]:
    return [
        door.predict(json.dumps(VALID_RECORD), request_id=f"r{i}", correlation_id="c").body.get("fallback_reason")
        for i in range(n)
    ]


def test_a_container_4xx_is_an_answer_and_never_opens_the_circuit() -> None:
    refusals = [EndpointCallError("model_error", "400 from the container", answered=True) for _ in range(10)]
    endpoint = ScriptedEndpoint(faults=refusals)
    door = make_front_door(endpoint=endpoint)
    assert _ask(door, 10) == ["model_error"] * 10
    assert endpoint.calls == 10, "each refusal was a real call: the circuit stayed closed"
    assert door.breaker.state == "closed"


def test_an_open_circuit_answers_from_the_fallback_without_calling_the_endpoint() -> None:
    endpoint = ScriptedEndpoint(faults=[EndpointCallError("timeout", "slow") for _ in range(6)])
    door = make_front_door(endpoint=endpoint)
    assert _ask(door, 4) == ["timeout", "timeout", "timeout", "circuit_open"]
    assert endpoint.calls == 6, "each failing call is tried twice (one retry); the fourth never reaches it"
    assert door.health(request_id="h").body == {
        "status": "degraded",
        "endpoint_name": "mlloop-dev-churn",
        "model_version": "v3",
        "circuit": "open",
        "fallback_available": True,
        "request_id": "h",
    }
    assert isinstance(door.telemetry, RecordingTelemetry)
    assert door.telemetry.transitions == [("closed", "open")]


class Exploding(ScriptedEndpoint):
    """An invoker whose call dies with an exception it does not classify."""

    def invoke(self, endpoint_name: str, body: bytes) -> Any:
        self.calls += 1
        if self.calls <= 3:
            raise RuntimeError("connection closed mid-response")
        return super().invoke(endpoint_name, body)


def test_a_probe_that_dies_of_an_unclassified_error_does_not_jam_the_circuit() -> None:
    door = make_front_door(endpoint=Exploding())
    clock = {"now": 0.0}
    door.breaker._clock = lambda: clock["now"]
    assert _ask(door, 3) == ["unknown", "unknown", "unknown"]
    assert door.breaker.state == "open"
    clock["now"] += SETTINGS.circuit_cooldown_seconds
    assert _ask(door, 1) == [None], "the probe went through and the healthy endpoint answered"
    assert door.breaker.state == "closed"
