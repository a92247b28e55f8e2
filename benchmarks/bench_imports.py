"""Cold-start import cost of the front door's module against importing the libraries it stands on.

Each sample is a fresh interpreter (imports are cached per process). The floor imports exactly the library
modules that importing the front door loaded (boto3, botocore, Powertools, and what Powertools loads for the
utilities in use, such as aws_xray_sdk behind Tracer), read from that child's sys.modules, so it follows the
front door's real dependencies instead of a hand-kept list; only the project's own modules are left out. The
front door must load no pandas, numpy, scikit-learn, scipy or pyarrow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from benchmarks.common import ROOT, WARMUP, BenchResult, Size, missing_modules
from benchmarks.timing import Measured, compare, ratio_over

FRONT_DOOR = "functions.frontdoor.handler"
PROJECT_PACKAGES = ("functions", "training", "mlloop", "infra", "benchmarks", "contracts")
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


def library_modules(loaded: list[str], at_start: list[str]) -> list[str]:
    """The modules the front door's import added, in load order, less the project's own."""
    already = set(at_start)
    # `__mp_main__` and the like are aliases of modules already listed, not importable names.
    return [
        name
        for name in loaded
        if name not in already and not name.startswith("__") and name.split(".")[0] not in PROJECT_PACKAGES
    ]


def run(size: Size) -> BenchResult:
    result = BenchResult("imports")
    if missing_modules(FRONT_DOOR):
        result.skipped.append(f"front door import: {FRONT_DOOR} not written yet")
        return result
    probe = _import_in_child([FRONT_DOOR])
    floor_modules = library_modules(probe["loaded"], _import_in_child([])["loaded"])
    heavy = sorted({name.split(".")[0] for name in probe["loaded"]} & set(FORBIDDEN))
    result.facts["front_door_loads_forbidden"] = heavy
    result.facts["floor_module_count"] = len(floor_modules)
    third_party = {name.split(".")[0] for name in floor_modules} - set(sys.stdlib_module_names)
    result.facts["floor_packages"] = sorted(p for p in third_party if not p.startswith("_"))
    result.notes.append(
        f"floor: {len(floor_modules)} modules of {', '.join(result.facts['floor_packages'])} and stdlib"
    )
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
