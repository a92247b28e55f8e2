"""The run report: one HTML file with pictures, written beside run.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_report(record: dict[str, Any], run_dir: Path) -> Path:
    path = run_dir / "report.html"
    path.write_text("<html><body><pre>placeholder</pre></body></html>")
    return path
