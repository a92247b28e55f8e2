"""A circuit breaker around the endpoint call, held per Lambda execution environment.

Per environment on purpose: each warm container learns within `failures` calls that the endpoint is down
and stops paying the timeout, with no shared store on the request path. Closed -> open after `failures`
failures inside `window_seconds`; open -> half-open once `cooldown_seconds` pass, letting one probe through;
the probe's outcome closes or re-opens it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Literal

CircuitState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        *,
        failures: int,
        window_seconds: float,
        cooldown_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.window_seconds = window_seconds
        self.cooldown_seconds = cooldown_seconds
        self._clock = clock
        self._failure_times: deque[float] = deque()
        self._state: CircuitState = "closed"
        self._opened_at = 0.0
        self._probe_in_flight = False
        self.transitions: list[tuple[CircuitState, CircuitState]] = []

    @property
    def state(self) -> CircuitState:
        if self._state == "open" and self._clock() - self._opened_at >= self.cooldown_seconds:
            self._move("half_open")
        return self._state

    def allow(self) -> bool:
        """Whether a call may go to the endpoint now; in half-open only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._probe_in_flight = False
        self._failure_times.clear()
        if self._state != "closed":
            self._move("closed")

    def record_failure(self) -> None:
        now = self._clock()
        self._probe_in_flight = False
        if self._state == "half_open":
            self._open(now)
            return
        self._failure_times.append(now)
        while self._failure_times and now - self._failure_times[0] > self.window_seconds:
            self._failure_times.popleft()
        if len(self._failure_times) >= self.failures:
            self._open(now)

    def _open(self, now: float) -> None:
        self._opened_at = now
        self._failure_times.clear()
        self._move("open")

    def _move(self, new: CircuitState) -> None:
        if new != self._state:
            self.transitions.append((self._state, new))
            self._state = new
