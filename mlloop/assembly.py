"""The synthesized cloud assembly (cdk.out): what the local cloud deploys and the template tests read.

Synthesis runs `app.py` exactly as `cdk synth` does (CDK_OUTDIR set), so what is tested is what
`cdk deploy` ships. It is skipped when cdk.out is newer than every source file it depends on.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTDIR = REPO_ROOT / "cdk.out"
_SOURCES = ("app.py", "cdk.json", "infra", "functions", "contracts", "training")


def _newest_source_mtime() -> float:
    newest = 0.0
    for name in _SOURCES:
        path = REPO_ROOT / name
        files = [path] if path.is_file() else path.rglob("*.py") if path.is_dir() else []
        for f in files:
            newest = max(newest, f.stat().st_mtime)
        if path.is_dir():
            for f in path.rglob("*.json"):
                newest = max(newest, f.stat().st_mtime)
    return newest


CONTEXT_RECORD = "mlloop-context.json"


def _context() -> dict[str, Any]:
    from infra.context import effective_context

    return effective_context()


def is_fresh(outdir: Path = DEFAULT_OUTDIR) -> bool:
    """Newer than every source, and synthesized with this run's context (a `-c` override makes it stale)."""
    manifest = outdir / "manifest.json"
    record = outdir / CONTEXT_RECORD
    if not (manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime() and record.exists()):
        return False
    return bool(json.loads(record.read_text()) == _context())


def synthesize(outdir: Path = DEFAULT_OUTDIR, *, force: bool = False) -> Path:
    """Synthesize every stage into `outdir` unless it is already fresh; safe across parallel test workers."""
    outdir.parent.mkdir(parents=True, exist_ok=True)
    with open(outdir.parent / f".{outdir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if force or not is_fresh(outdir):
            # The CDK CLI hands cdk.json's context (with -c values) to the app through CDK_CONTEXT_JSON; do the same.
            context = _context()
            env = {
                **os.environ,
                "CDK_OUTDIR": str(outdir),
                "CDK_CONTEXT_JSON": json.dumps(context),
                "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            }
            proc = subprocess.run(
                [sys.executable, str(REPO_ROOT / "app.py")],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise RuntimeError(f"synth failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
            (outdir / CONTEXT_RECORD).write_text(json.dumps(context, sort_keys=True))
            (outdir / "manifest.json").touch()
    return outdir


def stack_names(outdir: Path = DEFAULT_OUTDIR) -> list[str]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    return [name for name, art in manifest["artifacts"].items() if art.get("type") == "aws:cloudformation:stack"]


def load_template(stack_name: str, outdir: Path = DEFAULT_OUTDIR) -> dict[str, Any]:
    return dict(json.loads((outdir / f"{stack_name}.template.json").read_text()))
