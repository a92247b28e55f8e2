"""What every benchmark module returns, and where the shared data files live."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from benchmarks.timing import Ratio, Timing

Size = Literal["tiny", "full"]
SIZES: tuple[Size, ...] = ("tiny", "full")
ROOT = Path(__file__).resolve().parents[1]
# Generated once per size and reused across runs; gitignored.
DATA_DIR = Path(os.environ.get("MLLOOP_BENCH_DATA", str(ROOT / "benchmarks" / "data")))


# The tiny size only proves that every benchmark still runs (it is part of the test suite): one pass, no warm-up.
ROUNDS: dict[Size, int] = {"tiny": 1, "full": 3}
WARMUP: dict[Size, int] = {"tiny": 0, "full": 1}


def data_dir(size: Size) -> Path:
    path = DATA_DIR / size
    path.mkdir(parents=True, exist_ok=True)
    return path


def missing_modules(*names: str) -> list[str]:
    """The contender modules that do not exist yet, so a benchmark reports them as skipped instead of failing."""
    absent = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            absent.append(name)
    return absent


@dataclass
class BenchResult:
    name: str
    ratios: list[Ratio] = field(default_factory=list)
    timings: dict[str, Timing] = field(default_factory=dict)
    # Figures reported without a target (peer verdicts, sizes, memory, one-off durations).
    facts: dict[str, Any] = field(default_factory=dict)
    # Why a contender or a ratio is absent: a missing module, a peer environment not installed.
    skipped: list[str] = field(default_factory=list)
    # One line each for the printed table: the facts a reader of the ratios needs (verdicts, untargeted times).
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ratios": {r.key: r.to_dict() for r in self.ratios},
            "medians": {name: t.to_dict() for name, t in self.timings.items()},
            "facts": self.facts,
            "skipped": self.skipped,
            "notes": self.notes,
        }
