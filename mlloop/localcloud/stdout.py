"""Each Lambda invocation's stdout, captured per thread.

`contextlib.redirect_stdout` swaps `sys.stdout` for the whole process: while a handler ran in one of the local
cloud's threads, a print from any other thread (the demo's table, a script's result, a test's output) went into
that handler's log instead. Here `sys.stdout` becomes a router: the writes of a thread that is running a handler
go to that invocation's buffer, every other write to the stream that was in place before.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

_captures: dict[int, io.StringIO] = {}


class ThreadRoutedStdout(io.TextIOBase):
    """`sys.stdout` while the local cloud runs handlers: routes each write by the writing thread."""

    def __init__(self, fallback: TextIO) -> None:
        super().__init__()
        self.fallback = fallback

    def _target(self) -> TextIO:
        captured = _captures.get(threading.get_ident())
        if captured is not None:
            return captured
        # A test framework may close the stream it had installed; the process's own stdout is still there.
        return sys.__stdout__ if getattr(self.fallback, "closed", False) and sys.__stdout__ else self.fallback

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.fallback, "encoding", None) or "utf-8")

    def isatty(self) -> bool:
        return bool(getattr(self.fallback, "isatty", lambda: False)())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fallback, name)


@contextlib.contextmanager
def captured_stdout(buffer: io.StringIO) -> Iterator[None]:
    """Send what the current thread prints to `buffer`, and only what this thread prints."""
    if not isinstance(sys.stdout, ThreadRoutedStdout):
        sys.stdout = ThreadRoutedStdout(sys.stdout)
    ident = threading.get_ident()
    previous = _captures.get(ident)
    _captures[ident] = buffer
    try:
        yield
    finally:
        if previous is None:
            _captures.pop(ident, None)
        else:
            _captures[ident] = previous


def release_stdout() -> None:
    """Put back the stream the router wrapped, once no handler runs (the local cloud stopping)."""
    router = sys.stdout
    if isinstance(router, ThreadRoutedStdout) and not _captures:
        sys.stdout = router.fallback
