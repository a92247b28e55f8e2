"""Cold-start import cost of the front door's module against importing the libraries it stands on.

Each sample is a fresh interpreter (imports are cached per process). The floor imports exactly the boto3 and
Powertools modules that importing the front door loaded, read from that child's sys.modules, so it follows
the front door's real dependencies instead of a hand-kept list. The front door must load no pandas, numpy
or scikit-learn.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from benchmarks.common import ROOT, WARMUP, BenchResult, Size, missing_modules
from benchmarks.timing import Measured, compare, ratio_over

FRONT_DOOR = "functions.frontdoor.handler"
LIBRARIES = ("boto3", "botocore", "aws_lambda_powertools")
FORBIDDEN = ("pandas", "numpy", "sklearn", "scipy", "pyarrow")
ROUNDS: dict[Size, int] = {"tiny": 1, "full": 15}

_CHILD = """
import json, sys, time, importlib
modules = json.loads(sys.argv[1])
start = time.perf_counter()
for name in modules:
    importlib.import_module(name)
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "loaded": list(sys.modules)}))
"""


def _import_in_child(modules: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(modules)],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(ROOT),
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "AWS_DEFAULT_REGION": "us-east-1"},
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def library_modules(loaded: list[str]) -> list[str]:
    """The boto3/botocore/Powertools modules in the order the front door's import loaded them."""
    return [name for name in loaded if name.split(".")[0] in LIBRARIES]


def run(size: Size) -> BenchResult:
    result = BenchResult("imports")
    if missing_modules(FRONT_DOOR):
        result.skipped.append(f"front door import: {FRONT_DOOR} not written yet")
        return result
    probe = _import_in_child([FRONT_DOOR])
    floor_modules = library_modules(probe["loaded"])
    heavy = sorted({name.split(".")[0] for name in probe["loaded"]} & set(FORBIDDEN))
    result.facts["front_door_loads_forbidden"] = heavy
    result.facts["floor_module_count"] = len(floor_modules)
    timings = compare(
        {
            "import_frontdoor": lambda: Measured(_import_in_child([FRONT_DOOR])["seconds"]),
            "import_boto3_powertools": lambda: Measured(_import_in_child(floor_modules)["seconds"]),
        },
        rounds=ROUNDS[size],
        warmup=WARMUP[size],
    )
    result.timings.update(timings)
    result.ratios.append(
        ratio_over("frontdoor_import_over_floor", timings, "import_frontdoor", "import_boto3_powertools", 1.2)
    )
    return result
