"""Asynchronous deliveries (EventBridge, SNS and S3 to Lambda, `InvocationType=Event`) on one worker thread.

AWS delivers these asynchronously; doing the same here means a handler that writes to S3 or publishes an event
returns without waiting for the functions its event triggers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

LOG = logging.getLogger("mlloop.localcloud")


@dataclass(frozen=True)
class DeliveryFailure:
    """An asynchronous delivery that raised: what it was for and why it failed."""

    description: str
    error: str
    at: float = field(default_factory=time.time)


class AsyncDispatcher:
    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[str, Callable[[], Any]] | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self.failures: list[DeliveryFailure] = []
        self._thread = threading.Thread(target=self._run, name="localcloud-dispatch", daemon=True)
        self._thread.start()

    def submit(self, description: str, work: Callable[[], Any]) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put((description, work))

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """True once every submitted delivery, including those submitted by deliveries, has finished."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            description, work = item
            try:
                work()
            except Exception as exc:
                LOG.warning("asynchronous delivery failed: %s: %r", description, exc)
                self.failures.append(DeliveryFailure(description, repr(exc)))
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()
