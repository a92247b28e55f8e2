"""CPU seconds of each stage of one ingestion of the ingest benchmark's 1M-row CSV, on whichever thread runs it.

    PYTHONPATH=. .venv/bin/python scripts/measure_ingest_stages.py [--repeat 3]

Prints the wall and process CPU seconds of a run (every thread), then each stage's CPU seconds per run,
measured with the thread's own CPU clock: what is left above the Arrow floor (docs/benchmarks.md). The checks
are split between `validate` (the calling thread) and `_check_feature` (the two feature threads). The CSV is the
benchmark's (`benchmarks.bench_ingest.ensure_csv`), generated on first use.
"""

from __future__ import annotations

import argparse
import collections
import functools
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_ingest import _ingest_once, ensure_csv
from functions.ingest import logic, readers, validation

spent: collections.defaultdict[str, float] = collections.defaultdict(float)
_lock = threading.Lock()


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            with _lock:
                spent[name] += time.thread_time() - started

    return timed


def _instrument() -> None:
    """Wrap each stage where the ingestion looks it up (module globals and class attributes)."""
    logic.parquet_bytes = _timed("parquet encoding (writer threads)", logic.parquet_bytes)
    logic.rows_by_event_date = _timed("partitioning by event date", logic.rows_by_event_date)
    readers._block_is_utf8 = _timed("UTF-8 scan (scan threads)", readers._block_is_utf8)
    readers._parse_block = _timed("CSV parsing to text (parser threads)", readers._parse_block)
    readers._rechunk = _timed_generator("chunk assembly", readers._rechunk)
    checks = validation.ChunkValidator
    checks.validate = _timed("checks: validate (calling thread)", checks.validate)  # type: ignore[method-assign]
    checks._check_feature = staticmethod(  # type: ignore[method-assign]
        _timed("checks: features (feature threads)", checks._check_feature)
    )
    result = validation.ChunkResult
    result.rows = _timed("partition rows (writer threads)", result.rows)  # type: ignore[method-assign]


def _timed_generator(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """A generator's own CPU time between the items it yields (what its consumer waits for)."""

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        items = fn(*args, **kwargs)
        while True:
            started = time.thread_time()
            try:
                item = next(items)
            except StopIteration:
                return
            finally:
                with _lock:
                    spent[name] += time.thread_time() - started
            yield item

    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = ensure_csv("full").resolve()
    _instrument()
    _ingest_once(path)  # warm-up: imports, first allocations
    spent.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(args.repeat):
        _ingest_once(path)
    runs = args.repeat
    print(
        f"per run: wall {(time.perf_counter() - wall) / runs:.3f} s,"
        f" CPU {(time.process_time() - cpu) / runs:.3f} s (every thread)"
    )
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {name:42s} {seconds / runs:.3f} s CPU")


if __name__ == "__main__":
    main()
