"""The one clock the embedded AWS follows: scaled real time, or controlled time that moves only when advanced.

Scaled (the default, `LOCALCLOUD_TIME_SCALE`): `now()` is the host's UTC time and a service wait of N seconds
takes N x scale real seconds. Timed work (schedules, alarm periods) runs on a *timeline* that moves 1/scale
times faster than real time (0.01: an hour of schedule in 36 s), but only while `start_background()` runs it
(`up` does; tests fire schedules and evaluate alarms on demand).

Controlled (`take_control()`): `now()` is a virtual instant that moves only in `advance(...)`. Advancing walks
the due work in time order without sleeping: each step sets the clock to the next due instant (a service
wait's end, a schedule's firing, an alarm period's boundary), wakes the waits that are due, waits until each
woken thread has exited or is waiting on the clock again (the work it does meanwhile is real: a Lambda call,
a fleet start), runs the sources due at that instant, then lets asynchronous deliveries finish (`settle`).

Code that reads the host's clock does not follow a controlled clock: Lambda handlers in their worker processes,
training and serving containers, and moto's own timestamps other than CloudWatch's (S3 LastModified, Step
Functions execution dates). `host_offset()` moves a host timestamp (an EMF line's) onto the clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

LOG = logging.getLogger("mlloop.localcloud")
# How long `advance` waits for a woken thread to exit or wait on the clock again before it moves on.
SETTLE_SECONDS = 120.0
_POLL_SECONDS = 0.02
_TICK_SECONDS = 0.05


class TimedSource(Protocol):
    """Work due at instants of the timeline: EventBridge schedules, CloudWatch alarm periods."""

    name: str

    def next_due(self, after: datetime) -> datetime | None:
        """The first instant strictly after `after` at which this source has work, or None."""

    def run_due(self, due: datetime, now: datetime) -> None:
        """Do the work due at `due` (timeline instant); `now` is the moment to stamp it with."""


@dataclass
class _Wait:
    due: datetime
    thread: threading.Thread


def parse_duration(text: str) -> timedelta:
    """`90`, `90s`, `15m`, `6h`, `1d`, `2w` (seconds when no unit), as the `advance` verb takes them."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    raw = text.strip().lower()
    unit = raw[-1] if raw and raw[-1] in units else "s"
    number = raw[:-1] if raw and raw[-1] in units else raw
    try:
        value = float(number)
    except ValueError as exc:
        raise ValueError(f"not a duration: {text!r} (e.g. 90s, 15m, 6h, 1d)") from exc
    if value < 0:
        raise ValueError(f"the clock only moves forward: {text!r}")
    return timedelta(seconds=value * units[unit])


class Clock:
    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale
        self._cond = threading.Condition()
        self._controlled_now: datetime | None = None
        # The scaled timeline: at real monotonic `_origin_mono` it read `_origin`.
        self._origin = datetime.now(UTC)
        self._origin_mono = time.monotonic()
        self._waits: dict[int, _Wait] = {}
        self._busy: set[threading.Thread] = set()
        self._sources: list[TimedSource] = []
        self._advance_lock = threading.Lock()
        self._background: threading.Thread | None = None
        self._background_stop = threading.Event()
        self.settle: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ reading
    @property
    def controlled(self) -> bool:
        return self._controlled_now is not None

    def now(self) -> datetime:
        """The instant services stamp (UTC, aware): the virtual instant when controlled, else the host's."""
        current = self._controlled_now
        return current if current is not None else datetime.now(UTC)

    def timeline(self) -> datetime:
        """Service time: equal to `now()` when controlled; 1/scale times faster than real time when scaled."""
        current = self._controlled_now
        if current is not None:
            return current
        elapsed = time.monotonic() - self._origin_mono
        return self._origin + timedelta(seconds=elapsed / self.time_scale if self.time_scale > 0 else 0.0)

    def host_offset(self) -> float:
        """Seconds this clock is ahead of the host's (0 when scaled): what a host timestamp (a Lambda worker's
        EMF line) needs added to be on this clock."""
        return (self.now() - datetime.now(UTC)).total_seconds()

    def waiting(self) -> int:
        """How many threads wait on the clock now (a Wait state, a bake): work that advancing will resume."""
        with self._cond:
            return len(self._waits)

    def track(self) -> None:
        """Count the calling thread as the cloud's work (a Step Functions execution): `advance` lets it reach a
        clock wait, or finish, before it moves time on."""
        with self._cond:
            self._busy.add(threading.current_thread())

    def untrack(self) -> None:
        with self._cond:
            self._busy.discard(threading.current_thread())
            self._cond.notify_all()

    # ------------------------------------------------------------------ modes
    def take_control(self, start: datetime | None = None) -> datetime:
        """From now on time moves only in `advance`; it starts at `start` (default: the current instant)."""
        with self._cond:
            begin = (start or self.now()).astimezone(UTC)
            if self._controlled_now is not None and begin < self._controlled_now:
                raise ValueError("the clock only moves forward")
            self._controlled_now = begin
            self._cond.notify_all()
            return begin

    def release(self) -> None:
        """Back to scaled real time; waits still pending continue with their remaining service time."""
        with self._cond:
            if self._controlled_now is None:
                return
            self._origin, self._origin_mono = self._controlled_now, time.monotonic()
            self._controlled_now = None
            self._cond.notify_all()

    # ------------------------------------------------------------------ waiting
    def sleep(self, seconds: float, *, stop: Callable[[], bool] | None = None) -> bool:
        """Wait `seconds` of service time; False as soon as `stop()` is true (polled), True once the time passed."""
        left = max(0.0, float(seconds))
        me = threading.current_thread()
        with self._cond:
            while True:
                if stop is not None and stop():
                    return False
                current = self._controlled_now
                if current is not None:
                    due = current + timedelta(seconds=left)
                    self._waits[id(me)] = _Wait(due, me)
                    try:
                        while self._controlled_now is not None and self._controlled_now < due:
                            if stop is not None and stop():
                                return False
                            self._cond.wait(_POLL_SECONDS)
                    finally:
                        self._waits.pop(id(me), None)
                        self._cond.notify_all()
                    if self._controlled_now is not None:
                        return True
                    left = max(0.0, (due - self._origin).total_seconds())
                    continue
                deadline = time.monotonic() + left * self.time_scale
                while self._controlled_now is None and (remaining := deadline - time.monotonic()) > 0:
                    if stop is not None and stop():
                        return False
                    self._cond.wait(min(remaining, _POLL_SECONDS))
                if self._controlled_now is None:
                    return True
                left = max(0.0, (deadline - time.monotonic()) / self.time_scale) if self.time_scale > 0 else 0.0

    # ------------------------------------------------------------------ timed sources
    def add_source(self, source: TimedSource) -> None:
        with self._cond:
            if source not in self._sources:
                self._sources.append(source)

    def remove_source(self, source: TimedSource) -> None:
        with self._cond:
            if source in self._sources:
                self._sources.remove(source)

    def _next_due(self, after: datetime) -> datetime | None:
        with self._cond:
            candidates = [w.due for w in self._waits.values() if w.due > after]
            sources = list(self._sources)
        for source in sources:
            due = source.next_due(after)
            if due is not None:
                candidates.append(due)
        return min(candidates) if candidates else None

    def advance(self, by: timedelta | float) -> datetime:
        """Move a controlled clock forward by `by`, doing every due thing in time order; returns the new now."""
        span = by if isinstance(by, timedelta) else timedelta(seconds=float(by))
        if span < timedelta(0):
            raise ValueError("the clock only moves forward")
        with self._advance_lock:
            current = self._controlled_now
            if current is None:
                raise RuntimeError("the clock is not controlled: take_control() first")
            target = current + span
            self._settle_threads([], current)
            self.settle()
            while True:
                due = self._next_due(current)
                if due is None or due > target:
                    break
                self._step(current, due)
                current = due
            with self._cond:
                self._controlled_now = target
                self._cond.notify_all()
            return target

    def _step(self, previous: datetime, due: datetime) -> None:
        with self._cond:
            woken = [w.thread for w in self._waits.values() if w.due <= due]
            self._controlled_now = due
            self._cond.notify_all()
        self._settle_threads(woken, due)
        for source in list(self._sources):
            if source.next_due(previous) == due:
                source.run_due(due, due)
        self.settle()
        self._settle_threads([], due)

    def _settle_threads(self, woken: list[threading.Thread], now: datetime) -> None:
        deadline = time.monotonic() + SETTLE_SECONDS
        with self._cond:
            for thread in [*woken, *self._busy]:
                while thread.is_alive():
                    wait = self._waits.get(id(thread))
                    if wait is not None and wait.due > now:
                        break
                    if time.monotonic() > deadline:
                        LOG.warning("clock: %s still busy %s s after its wait ended", thread.name, SETTLE_SECONDS)
                        return
                    self._cond.wait(_POLL_SECONDS)

    # ------------------------------------------------------------------ scaled background
    def start_background(self, *, only: tuple[str, ...] | None = None) -> None:
        """Run the sources (or those named in `only`) on the scaled timeline in a thread, as a deployed cloud does."""
        self.stop_background()
        self._background_stop = threading.Event()
        stop = self._background_stop

        def run() -> None:
            cursor = self.timeline()
            while not stop.wait(_TICK_SECONDS):
                if self.controlled:
                    cursor = self.timeline()
                    continue
                reached = self.timeline()
                for source in list(self._sources):
                    if only is not None and source.name not in only:
                        continue
                    due = source.next_due(cursor)
                    while due is not None and due <= reached and not stop.is_set():
                        try:
                            source.run_due(due, self.now())
                        except Exception as exc:
                            LOG.warning("clock: %s failed at %s: %r", source.name, due.isoformat(), exc)
                        due = source.next_due(due)
                cursor = reached

        self._background = threading.Thread(target=run, name="localcloud-clock", daemon=True)
        self._background.start()

    def stop_background(self) -> None:
        if self._background is not None:
            self._background_stop.set()
            self._background.join(timeout=10)
            self._background = None
