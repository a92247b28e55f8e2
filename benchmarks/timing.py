"""Timing shared by every benchmark: contenders of one benchmark run in the same process run, alternating.

Alternating rounds (with the order rotated each round) spread the noise of a shared 2-core machine evenly over
the contenders, so their ratio stays meaningful even when the absolute figures drift during the run.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Measured:
    """What a contender returns when it measured itself: a peer timed inside its own process, so interpreter
    start-up and data loading stay out of its figure. Any other return value is ignored and the harness times."""

    seconds: float


Contender = Callable[[], object]


@dataclass
class Timing:
    """Every sample of one contender, in seconds."""

    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def quantile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p90(self) -> float:
        return self.quantile(0.9)

    @property
    def p99(self) -> float:
        return self.quantile(0.99)

    @property
    def minimum(self) -> float:
        return min(self.samples)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "median_s": self.median,
            "p90_s": self.p90,
            "p99_s": self.p99,
            "min_s": self.minimum,
            "samples": len(self.samples),
        }


def peak_traced_bytes(fn: Callable[[], object]) -> int:
    """The most Python-allocated memory `fn` held above what was allocated before it (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base, _ = tracemalloc.get_traced_memory()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - base


def cycling(fn: Callable[[T], object], items: Sequence[T]) -> Contender:
    """Call ``fn`` on the next item at each call, so no contender profits from answering one input repeatedly."""
    iterator = itertools.cycle(items)
    return lambda: fn(next(iterator))


def _time_once(contender: Contender) -> float:
    start = time.perf_counter()
    outcome = contender()
    elapsed = time.perf_counter() - start
    return outcome.seconds if isinstance(outcome, Measured) else elapsed


def compare(contenders: Mapping[str, Contender], *, rounds: int, calls: int = 1, warmup: int = 1) -> dict[str, Timing]:
    """Run each contender ``calls`` times per round for ``rounds`` rounds, rotating the order; keep every call.

    ``calls`` > 1 suits latency benchmarks (p50 over many single calls); big batch benchmarks use calls=1.
    """
    names = list(contenders)
    for name in names:
        for _ in range(warmup):
            _time_once(contenders[name])
    timings = {name: Timing() for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            contender = contenders[name]
            timings[name].samples.extend(_time_once(contender) for _ in range(calls))
    return timings


Comparison = Literal["<=", ">="]


@dataclass(frozen=True)
class Ratio:
    """One figure of the issue's table: a ratio of two medians and the target it must reach."""

    key: str
    value: float
    target: float
    comparison: Comparison
    numerator: str
    denominator: str

    @property
    def met(self) -> bool:
        return self.value <= self.target if self.comparison == "<=" else self.value >= self.target

    def to_dict(self) -> dict[str, object]:
        return {
            "value": round(self.value, 4),
            "target": f"{self.comparison} {self.target:g}",
            "met": self.met,
            "numerator": self.numerator,
            "denominator": self.denominator,
        }


def ratio_over(key: str, timings: Mapping[str, Timing], numerator: str, denominator: str, target: float) -> Ratio:
    """numerator / denominator, which must stay at or below ``target`` (a cost over a floor)."""
    return Ratio(key, timings[numerator].median / timings[denominator].median, target, "<=", numerator, denominator)


def speedup(key: str, timings: Mapping[str, Timing], ours: str, peer: str, target: float) -> Ratio:
    """peer / ours, which must reach at least ``target``."""
    return Ratio(key, timings[peer].median / timings[ours].median, target, ">=", peer, ours)
