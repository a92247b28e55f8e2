"""Figures without targets: synthesizing every stage, starting the local cloud and deploying to it, and the
demo's phases.

They take minutes of the shared machine, so they run at full size only; the tiny run says so.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, BenchResult, Size, missing_modules
from benchmarks.timing import Timing

LOCALCLOUD_SCRIPT = ROOT / "scripts" / "measure_localcloud.py"
DEMO_MODULE = "mlloop.demo"
TIMEOUT_S = 900
DEMO_TIMEOUT_S = 1500


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
    """The last JSON object of seconds (keys ending in `_s`) the script printed, on one line or indented; the
    local cloud's Lambdas log JSON lines to the same stream, before and after it. Else its `key=value` words."""
    decoder = json.JSONDecoder()
    offsets, position = [], 0
    for line in stdout.splitlines(keepends=True):
        if line.startswith("{"):
            offsets.append(position)
        position += len(line)
    for offset in reversed(offsets):
        try:
            parsed, _ = decoder.raw_decode(stdout, offset)
        except ValueError:
            continue
        if isinstance(parsed, dict) and any(str(key).endswith("_s") for key in parsed):
            return parsed
    figures: dict[str, Any] = {}
    for line in stdout.splitlines():
        for word in line.split():
            if "=" in word:
                key, _, value = word.partition("=")
                figures[key] = value
    return figures


def _run_python(arguments: list[str], timeout: float) -> tuple[int | str, float, str, str | None]:
    """The project's interpreter on `arguments`: exit code (or how it timed out), wall seconds, stdout, and the
    end of stderr when it failed."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), *arguments],
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s", time.perf_counter() - start, "", None
    error = done.stderr[-2000:] if done.returncode else None
    return done.returncode, time.perf_counter() - start, done.stdout, error


def _localcloud() -> dict[str, Any]:
    exit_code, wall, stdout, error = _run_python([str(LOCALCLOUD_SCRIPT)], TIMEOUT_S)
    return {"wall_seconds": wall, "exit_code": exit_code, "figures": _parse_figures(stdout), "error": error}


def _demo() -> dict[str, Any]:
    """The demo in a run folder of its own; its run.json records the wall time of every phase."""
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as out:
        exit_code, wall, _stdout, _error = _run_python(["-m", DEMO_MODULE, "--output-dir", out], DEMO_TIMEOUT_S)
        records = sorted(Path(out).glob("run-*/run.json"))
        record: dict[str, Any] = json.loads(records[-1].read_text()) if records else {}
    phases = [{"title": p.get("title"), "seconds": p.get("seconds")} for p in record.get("phases", [])]
    return {"exit_code": exit_code, "wall_seconds": wall, "failed": record.get("failed"), "phases": phases}


def run(size: Size) -> BenchResult:
    result = BenchResult("platform")
    if size != "full":
        result.skipped.append("synth, local cloud and demo: measured at full size only (minutes of the machine)")
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
    if missing_modules(DEMO_MODULE):
        result.skipped.append(f"demo: {DEMO_MODULE} not written yet")
        return result
    demo = _demo()
    result.facts["demo"] = demo
    phases = "; ".join(f"{p['title']} {float(p['seconds'] or 0):.1f} s" for p in demo["phases"])
    result.notes.append(
        f"demo (exit {demo['exit_code']}, {demo['wall_seconds']:.0f} s): {phases or 'no phase recorded'}"
    )
    if demo["failed"]:
        result.notes.append(f"demo stopped: {demo['failed']}")
    return result
