"""alibi-detect's TabularDrift as a worker process inside .venv-bench-alibi (numpy < 2).

It reads the harness's parquet files, prepares the arrays alibi needs (category codes, NaN imputed with the
reference median, as a user must), builds the detector on the reference, then answers one line per request on
stdin with the seconds `predict` took on the current data, measured here, and the features it flagged.
Imports nothing from the project: the project needs numpy 2.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pyarrow.parquet as pq
from alibi_detect.cd import TabularDrift


def _arrays(path: str, numeric: list[str], categorical: dict[str, list[str]], fill: np.ndarray | None) -> np.ndarray:
    table = pq.read_table(path, columns=[*numeric, *categorical])
    values = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in numeric]).astype(np.float64)
    if fill is not None:
        rows, cols = np.nonzero(np.isnan(values))
        values[rows, cols] = fill[cols]
    codes = []
    for name, names in categorical.items():
        lookup = {v: i for i, v in enumerate(names)}
        codes.append(np.array([lookup.get(v, -1) for v in table.column(name).to_pylist()], dtype=np.float64))
    return np.column_stack([values, *codes]).astype(np.float32)


def main() -> None:
    spec = json.loads(sys.argv[1])
    numeric, categorical = spec["numeric"], spec["categorical"]
    raw_reference = pq.read_table(spec["reference"], columns=numeric)
    reference_numeric = np.column_stack(
        [raw_reference.column(n).to_numpy(zero_copy_only=False) for n in numeric]
    ).astype(np.float64)
    fill = np.nanmedian(reference_numeric, axis=0)
    reference = _arrays(spec["reference"], numeric, categorical, fill)
    current = _arrays(spec["current"], numeric, categorical, fill)
    names = [*numeric, *categorical]
    per_feature = {len(numeric) + i: None for i in range(len(categorical))}
    detector = TabularDrift(reference, p_val=0.05, categories_per_feature=per_feature)
    print(json.dumps({"ready": True, "rows": int(current.shape[0])}), flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start = time.perf_counter()
        verdict = detector.predict(current, drift_type="feature")
        elapsed = time.perf_counter() - start
        flagged = [names[i] for i, d in enumerate(np.ravel(verdict["data"]["is_drift"])) if d]
        print(json.dumps({"seconds": elapsed, "flagged": flagged}), flush=True)


if __name__ == "__main__":
    main()
