"""Run the benchmarks: `python -m benchmarks.run [--size tiny|full] [--only NAME ...]`.

Prints the table of ratios against their targets. A full run of every benchmark writes
benchmarks/results/latest.json (ratios under the issue's keys, raw medians, versions, machine facts) and the
table in docs/benchmarks.md; a partial or tiny run writes only where --output points.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import (
    bench_drift,
    bench_frontdoor,
    bench_imports,
    bench_ingest,
    bench_platform,
    bench_predict,
    bench_recovery,
)
from benchmarks.common import ROOT, SIZES, BenchResult, Size
from infra.context import add_context_argument, use_context_arguments

BENCHMARKS: dict[str, Callable[[Size], BenchResult]] = {
    "drift": bench_drift.run,
    "predict": bench_predict.run,
    "frontdoor": bench_frontdoor.run,
    "imports": bench_imports.run,
    "ingest": bench_ingest.run,
    "platform": bench_platform.run,
    "recovery": bench_recovery.run,
}
LATEST = ROOT / "benchmarks" / "results" / "latest.json"
DOC = ROOT / "docs" / "benchmarks.md"
TABLE_START = "<!-- benchmarks:table:start -->"
TABLE_END = "<!-- benchmarks:table:end -->"
PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "aws-lambda-powertools", "boto3", "pydantic")


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in (*PACKAGES, "evidently"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    alibi = ROOT / ".venv-bench-alibi" / "lib"
    pins = ROOT / "benchmarks" / "peers" / "alibi-detect.txt"
    found["alibi-detect"] = (
        next((line.split("==")[1] for line in pins.read_text().splitlines() if line.startswith("alibi-detect==")), None)
        if alibi.exists()
        else None
    )
    return found


def machine() -> dict[str, Any]:
    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average_at_end": list(os.getloadavg()),
    }
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            facts["cpu_model"] = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), None)
        with open("/proc/meminfo") as meminfo:
            facts["memory_kib"] = int(meminfo.readline().split()[1])
    except OSError:
        pass
    facts["openblas_env"] = {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS")}
    return facts


def _format_value(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def table(results: Sequence[BenchResult]) -> str:
    lines = ["| key | value | target | met | numerator / denominator (medians) |", "|---|---|---|---|---|"]
    for result in results:
        for ratio in result.ratios:
            top, bottom = result.timings.get(ratio.numerator), result.timings.get(ratio.denominator)
            detail = f"{ratio.numerator} / {ratio.denominator}"
            if top is not None and bottom is not None:
                detail += f" ({_seconds(top.median)} / {_seconds(bottom.median)})"
            met = "yes" if ratio.met else "**no**"
            target = f"{ratio.comparison} {ratio.target:g}"
            lines.append(f"| `{ratio.key}` | {_format_value(ratio.value)} | {target} | {met} | {detail} |")
    notes = [f"- {r.name}: {note}" for r in results for note in r.notes]
    if notes:
        lines += ["", "Without targets:", *notes]
    skipped = [f"- {r.name}: {reason}" for r in results for reason in r.skipped]
    if skipped:
        lines += ["", "Skipped:", *skipped]
    return "\n".join(lines)


def _seconds(value: float) -> str:
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.2f} ms"
    return f"{value * 1e6:.1f} µs"


def document(results: Sequence[BenchResult], size: Size, started: datetime, elapsed: float) -> dict[str, Any]:
    return {
        "size": size,
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(elapsed, 1),
        "ratios": {r.key: r.to_dict() for result in results for r in result.ratios},
        "benchmarks": {result.name: result.to_dict() for result in results},
        "versions": versions(),
        "machine": machine(),
    }


def update_doc(markdown_table: str, doc: dict[str, Any]) -> None:
    """Replace the table between the markers in docs/benchmarks.md, leaving the prose as written."""
    text = DOC.read_text()
    if TABLE_START not in text or TABLE_END not in text:
        raise SystemExit(f"{DOC}: the markers {TABLE_START} / {TABLE_END} are missing")
    head, rest = text.split(TABLE_START, 1)
    _, tail = rest.split(TABLE_END, 1)
    host = doc["machine"]
    load = host["load_average_at_end"][0]
    stamp = (
        f"Run of {doc['started_at']} ({doc['duration_s']:.0f} s, size {doc['size']}, {host['cpus']} CPUs shared"
        f" with other work: load average {load:.1f} at the end)."
    )
    DOC.write_text(f"{head}{TABLE_START}\n{stamp}\n\n{markdown_table}\n{TABLE_END}{tail}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--size", choices=SIZES, default="full")
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS), help="run only this benchmark")
    parser.add_argument("--output", type=Path, help="write the JSON here (default: latest.json for a full run)")
    add_context_argument(parser)
    args = parser.parse_args(argv)
    use_context_arguments(args.context)
    names = args.only or list(BENCHMARKS)
    started = datetime.now(UTC)
    clock = time.perf_counter()
    results: list[BenchResult] = []
    failed: list[str] = []
    for name in names:
        print(f"== {name} ({args.size})", file=sys.stderr, flush=True)
        try:
            results.append(BENCHMARKS[name](args.size))
        except Exception as error:
            # One broken contender must not cost the figures of every other benchmark in a half-hour run.
            traceback.print_exc()
            failed.append(name)
            results.append(BenchResult(name, skipped=[f"failed: {type(error).__name__}: {error}"]))
        # Each benchmark's table as soon as it is done: a full run takes long enough to want progress.
        print(table(results[-1:]), file=sys.stderr, flush=True)
    doc = document(results, args.size, started, time.perf_counter() - clock)
    markdown = table(results)
    print(markdown)
    complete = args.size == "full" and args.only is None
    output = args.output or (LATEST if complete else None)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")
    if complete:
        update_doc(markdown, doc)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
