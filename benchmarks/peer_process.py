"""Peers that need their own venv run as long-lived worker processes, so the harness can alternate them with our
contenders round by round; each reply carries the seconds measured inside the peer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks.common import ROOT
from benchmarks.timing import Measured

PEER_VENVS: dict[str, Path] = {"alibi-detect": ROOT / ".venv-bench-alibi"}


def peers_enabled() -> bool:
    return os.environ.get("MLLOOP_BENCH_PEERS", "1") != "0"


def peer_python(peer: str) -> Path | None:
    """The peer venv's interpreter once `make bench` has installed it (its stamp exists), else None.

    MLLOOP_BENCH_PEERS=0 leaves every peer out, as the test suite's tiny run does.
    """
    if not peers_enabled():
        return None
    venv = PEER_VENVS[peer]
    python = venv / "bin" / "python"
    return python if (venv / ".installed").exists() and python.exists() else None


class PeerWorker:
    def __init__(self, python: Path, script: Path, spec: dict[str, Any]) -> None:
        self._process = subprocess.Popen(
            [str(python), str(script), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
            cwd=str(ROOT),
        )
        self.last: dict[str, Any] = {}
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"peer worker exited with {self._process.wait()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(self) -> Measured:
        assert self._process.stdin is not None
        self._process.stdin.write("run\n")
        self._process.stdin.flush()
        self.last = self._read()
        return Measured(float(self.last["seconds"]))

    def close(self) -> None:
        if self._process.stdin is not None and not self._process.stdin.closed:
            self._process.stdin.close()
        self._process.wait(timeout=60)

    def __enter__(self) -> PeerWorker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
