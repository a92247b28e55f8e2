"""Figures without targets: synthesizing every stage, and starting the local cloud and deploying to it.

Both take minutes of the shared machine, so they run at full size only; the tiny run says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from typing import Any

from benchmarks.common import ROOT, BenchResult, Size
from benchmarks.timing import Timing

LOCALCLOUD_SCRIPT = ROOT / "scripts" / "measure_localcloud.py"
TIMEOUT_S = 900


def _synth() -> dict[str, Any]:
    env = {**os.environ, "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1"}
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as out:
        start = time.perf_counter()
        done = subprocess.run(
            ["npx", "cdk", "synth", "--quiet", "--output", out],
            cwd=str(ROOT),
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        elapsed = time.perf_counter() - start
        templates = sorted(p.name for p in os.scandir(out) if p.name.endswith(".template.json"))
    return {
        "seconds": elapsed,
        "exit_code": done.returncode,
        "templates": templates,
        "error": done.stderr[-2000:] if done.returncode else None,
    }


def _parse_figures(stdout: str) -> dict[str, Any]:
    """The last JSON object the script printed (on one line or indented over several), else its `key=value` words."""
    lines = stdout.splitlines()
    for start in reversed([i for i, line in enumerate(lines) if line.startswith("{")]):
        try:
            parsed: dict[str, Any] = json.loads("\n".join(lines[start:]))
            return parsed
        except ValueError:
            continue
    figures: dict[str, Any] = {}
    for line in lines:
        for word in line.split():
            if "=" in word:
                key, _, value = word.partition("=")
                figures[key] = value
    return figures


def _localcloud() -> dict[str, Any]:
    start = time.perf_counter()
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), str(LOCALCLOUD_SCRIPT)],
        cwd=str(ROOT),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    return {
        "wall_seconds": time.perf_counter() - start,
        "exit_code": done.returncode,
        "figures": _parse_figures(done.stdout),
        "error": done.stderr[-2000:] if done.returncode else None,
    }


def run(size: Size) -> BenchResult:
    result = BenchResult("platform")
    if size != "full":
        result.skipped.append("synth and local cloud: measured at full size only (minutes of the machine)")
        return result
    synth = _synth()
    result.facts["synth_all_stages"] = synth
    if synth["exit_code"] == 0:
        result.timings["synth_all_stages"] = Timing([synth["seconds"]])
        result.notes.append(
            f"npx cdk synth, every stage ({len(synth['templates'])} templates): {synth['seconds']:.1f} s"
        )
    else:
        result.notes.append(f"npx cdk synth failed (exit {synth['exit_code']})")
    if LOCALCLOUD_SCRIPT.exists():
        cloud = _localcloud()
        result.facts["localcloud"] = cloud
        seconds = {k: v for k, v in cloud["figures"].items() if k.endswith("_s") and isinstance(v, int | float)}
        shown = ", ".join(f"{k.removesuffix('_s')} {v:.1f} s" for k, v in seconds.items())
        result.notes.append(f"local cloud ({LOCALCLOUD_SCRIPT.name}, exit {cloud['exit_code']}): {shown}")
    else:
        result.skipped.append(f"local cloud: {LOCALCLOUD_SCRIPT.relative_to(ROOT)} not written yet")
    return result
