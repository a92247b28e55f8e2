"""One run of `python -m mlloop.demo`, shared by every e2e test.

The demo runs in its own process, exactly as `make demo` does, so its local cloud is fresh (no other test's
packages or alarms in it) and the tests check what it printed and what it recorded: run.json holds the facts
the demo read back from the cloud (packages, endpoint snapshots, alarm history and events, executions and
every request's answer), report.html is the run report.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlloop.assembly import REPO_ROOT

DEMO_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class DemoRun:
    returncode: int
    output: str
    run_dir: Path
    record: dict[str, Any]
    seconds: float

    def answers(self, phase: str | None = None) -> list[dict[str, Any]]:
        return [a for a in self.record.get("answers", []) if phase is None or a["phase"] == phase]

    def package(self, label: str) -> dict[str, Any]:
        (package,) = [p for p in self.record["packages"] if p["label"] == label]
        return package

    def registry_entry(self, label: str) -> dict[str, Any]:
        arn = self.package(label)["arn"]
        (entry,) = [p for p in self.record["registry"] if p["arn"] == arn]
        return entry

    def deploy(self, label: str) -> dict[str, Any]:
        (deploy,) = [d for d in self.record["deploys"] if d["label"] == label]
        return deploy

    def training(self, label: str) -> dict[str, Any]:
        (training,) = [t for t in self.record["trainings"] if t["label"] == label]
        return training


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    output_dir = tmp_path_factory.mktemp("demo-output")
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mlloop.demo", "--output-dir", str(output_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
        check=False,
    )
    (run_dir,) = sorted(output_dir.glob("run-*"))
    record = json.loads((run_dir / "run.json").read_text())
    return DemoRun(done.returncode, done.stdout + done.stderr, run_dir, record, time.monotonic() - began)
