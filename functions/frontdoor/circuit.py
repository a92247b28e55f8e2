"""A circuit breaker around the endpoint call, held per Lambda execution environment.

Per environment on purpose: each warm container learns on its own that the endpoint is failing and stops paying
its timeout, with no shared store on the request path.

The semantics are resilience4j's time-based breaker (https://resilience4j.readme.io/docs/circuitbreaker:
failureRateThreshold, minimumNumberOfCalls, slidingWindowType TIME_BASED, waitDurationInOpenState,
permittedNumberOfCallsInHalfOpenState, maxWaitDurationInHalfOpenState), reduced to what one container needs:

- closed: every call goes through. Each finished call's outcome is counted in the bucket of its second; the
  window is the last `window_seconds` whole seconds. Once it holds at least `minimum_calls` outcomes and
  `failure_rate_percent` of them or more are failures, it opens.
  A success does not erase earlier failures: the rate decides.
- open: no call goes through; after `cooldown_seconds` it is half-open.
- half-open: at most `probes` calls go through (each holds a permit). The first probe that fails re-opens it;
  `probes` successes close it with an empty window. A probe that has not reported within `probe_timeout_seconds`
  counts as failed, so a probe that died without reporting can never leave the breaker half-open for good.

Outcomes are reported against the permit that allowed the call; an outcome from before the last transition
(a call that was already in flight) no longer moves the breaker.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

CircuitState = Literal["closed", "open", "half_open"]


# Leave to make one call, handed out by `acquire` and given back with the call's outcome: (generation, started).
# A plain tuple: it is built on every request.
Permit = tuple[int, float]


def _no_listener(old: CircuitState, new: CircuitState) -> None:
    return None


class CircuitBreaker:
    def __init__(
        self,
        *,
        failure_rate_percent: float,
        minimum_calls: int,
        window_seconds: float,
        cooldown_seconds: float,
        probes: int,
        probe_timeout_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Callable[[CircuitState, CircuitState], None] = _no_listener,
    ) -> None:
        if not 0 < failure_rate_percent <= 100 or minimum_calls < 1 or probes < 1:
            raise ValueError("failure_rate_percent must be in (0, 100], minimum_calls and probes at least 1")
        self.failure_rate_percent = failure_rate_percent
        self.minimum_calls = minimum_calls
        self.window_seconds = window_seconds
        self.cooldown_seconds = cooldown_seconds
        self.probes = probes
        self.probe_timeout_seconds = probe_timeout_seconds
        self._clock = clock
        self._on_transition = on_transition
        # The closed state's window as one bucket per second, [second, calls, failures], with running totals: the
        # partial aggregation resilience4j's time-based window uses, so a call costs an increment, not an entry.
        self._buckets: deque[list[int]] = deque()
        self._calls_in_window = 0
        self._failed_in_window = 0
        self._state: CircuitState = "closed"
        # Bumped on every transition: a permit from an earlier generation reports into nothing.
        self._generation = 0
        self._opened_at = 0.0
        self._probe_starts: list[float] = []
        self._probe_successes = 0
        self.transitions: list[tuple[CircuitState, CircuitState]] = []

    @property
    def state(self) -> CircuitState:
        self._advance(self._clock())
        return self._state

    def _advance(self, now: float) -> None:
        """Apply the transitions that time alone makes: cooldown over, a probe that never reported."""
        if self._state == "half_open" and self._probe_starts:
            expired_at = min(self._probe_starts) + self.probe_timeout_seconds
            if now >= expired_at:
                # Open from when the probe ran out of time, not from when someone next asked.
                self._open(expired_at)
        if self._state == "open" and now - self._opened_at >= self.cooldown_seconds:
            self._move("half_open")

    def acquire(self) -> Permit | None:
        """Leave to call the endpoint now, or None when the breaker is open (or half-open with every probe out)."""
        now = self._clock()
        if self._state == "closed":
            return (self._generation, now)
        self._advance(now)
        if self._state == "half_open" and len(self._probe_starts) + self._probe_successes < self.probes:
            self._probe_starts.append(now)
            return (self._generation, now)
        return None

    def record(self, permit: Permit, *, failed: bool) -> None:
        """The outcome of the call `permit` allowed: failed, or answered (a container 4xx is an answer)."""
        now = self._clock()
        if self._state != "closed":
            self._advance(now)
        generation, started = permit
        if generation != self._generation:
            return
        if self._state == "half_open":
            if started in self._probe_starts:
                self._probe_starts.remove(started)
            if failed:
                self._open(now)
                return
            self._probe_successes += 1
            if self._probe_successes >= self.probes:
                self._move("closed")
            return
        if self._state != "closed":
            return
        second = int(now)
        buckets = self._buckets
        if buckets and buckets[-1][0] == second:
            bucket = buckets[-1]
            bucket[1] += 1
            bucket[2] += failed
        else:
            buckets.append([second, 1, int(failed)])
            horizon = second - self.window_seconds
            while buckets[0][0] <= horizon:
                _, calls, failures = buckets.popleft()
                self._calls_in_window -= calls
                self._failed_in_window -= failures
        self._calls_in_window += 1
        self._failed_in_window += failed
        if (
            failed
            and self._calls_in_window >= self.minimum_calls
            and self._failed_in_window * 100 >= self.failure_rate_percent * self._calls_in_window
        ):
            self._open(now)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._move("open")

    def _move(self, new: CircuitState) -> None:
        old = self._state
        self._state = new
        self._generation += 1
        self._buckets.clear()
        self._calls_in_window = 0
        self._failed_in_window = 0
        self._probe_starts = []
        self._probe_successes = 0
        self.transitions.append((old, new))
        self._on_transition(old, new)
