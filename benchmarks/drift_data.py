"""The drift benchmark's data: 20 numeric + 5 categorical features, drift injected in exactly 3 of them.

Besides the 3 real drifts, 3 other features carry a tiny shift (a few hundredths of a standard deviation, a
half-point of category share): at a million rows a p-value test calls that drift, an effect size does not, and
a detector must not. Files are written once per size under benchmarks/data/<size>/ and reused; every contender
reads the same files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import Size, data_dir
from functions.shared.contract import DataContract, parse_contract

N_NUMERIC = 20
N_CATEGORICAL = 5
ROWS: dict[Size, tuple[int, int]] = {"tiny": (1_000, 5_000), "full": (100_000, 1_000_000)}
NUMERIC = tuple(f"num_{i:02d}" for i in range(N_NUMERIC))
CATEGORICAL = tuple(f"cat_{i}" for i in range(N_CATEGORICAL))
CATEGORY_COUNTS = (3, 4, 5, 6, 8)
SCORE_COLUMN = "prediction_score"
DRIFTED = ("num_03", "num_14", "cat_2")
NOISE = ("num_00", "num_09", "cat_4")
# Bump when the generator changes so stale files are rewritten.
DATA_VERSION = 3


def categories(index: int) -> list[str]:
    return [f"c{index}_{j}" for j in range(CATEGORY_COUNTS[index])]


def drift_contract() -> DataContract:
    features: list[dict[str, Any]] = []
    for i, name in enumerate(NUMERIC):
        kind = "integer" if i % 4 == 3 else "float"
        features.append({"name": name, "type": kind, "nullable": i % 4 == 1, "description": "synthetic"})
    for i, name in enumerate(CATEGORICAL):
        features.append(
            {"name": name, "type": "categorical", "categories": categories(i), "nullable": False, "description": "x"}
        )
    return parse_contract(
        {
            "dataset": "drift_bench",
            "version": "1.0.0",
            "description": "Synthetic wide table for the drift benchmark.",
            "entity_key": "row_id",
            "event_timestamp": "event_time",
            "label": {"name": "label", "definition": "unused", "window_days": 1},
            "freshness": {"max_lag_hours": 1, "max_event_age_days": 1},
            "features": features,
        }
    )


def _numeric(rng: np.random.Generator, i: int, n: int, mean_shift: float, scale: float) -> np.ndarray:
    """Four families (normal, lognormal, uniform, Poisson counts); shifts are in units of the column's sd."""
    family = i % 4
    if family == 0:
        sd = 1.0 + i / 10
        return rng.normal(10.0 * i + mean_shift * sd, sd * scale, n)
    if family == 1:
        values = np.exp(rng.normal(mean_shift * 0.5, 0.5 * scale, n)) * (i + 1)
        # Nullable columns miss a few percent of values, as live traffic does.
        values[rng.random(n) < 0.03] = np.nan
        return values
    if family == 2:
        width = 10.0 + i
        uniform: np.ndarray = rng.uniform(0.0, width, n) + mean_shift * width / np.sqrt(12.0)
        return uniform
    lam = 2.0 + i / 4
    counts: np.ndarray = rng.poisson(lam * scale + mean_shift * np.sqrt(lam), n).astype(np.float64)
    return counts


def _categorical(rng: np.random.Generator, i: int, n: int, moved_share: float) -> np.ndarray:
    names = np.array(categories(i), dtype=object)
    weights = np.linspace(2.0, 1.0, len(names))
    p = weights / weights.sum()
    if moved_share:
        p = p * (1.0 - moved_share)
        p[-1] += moved_share
    return names[rng.choice(len(names), size=n, p=p)]


def generate(n_rows: int, *, seed: int, drifted: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i, name in enumerate(NUMERIC):
        shift, scale = 0.0, 1.0
        if drifted and name == "num_03":
            scale = 1.6
        elif drifted and name == "num_14":
            shift = 0.6
        elif drifted and name in NOISE:
            shift = 0.03
        columns[name] = _numeric(rng, i, n_rows, shift, scale)
    for i, name in enumerate(CATEGORICAL):
        moved = 0.0
        if drifted and name == "cat_2":
            moved = 0.3
        elif drifted and name in NOISE:
            moved = 0.005
        columns[name] = _categorical(rng, i, n_rows, moved)
    z = 0.3 * (columns["num_14"] - columns["num_14"].mean()) / columns["num_14"].std() + rng.normal(0, 1, n_rows)
    columns[SCORE_COLUMN] = 1.0 / (1.0 + np.exp(-z))
    return pd.DataFrame(columns)


@dataclass(frozen=True)
class DriftFiles:
    reference: Path
    current: Path
    # Numeric columns as one (features x rows) array, each column contiguous: the sort floor's input.
    current_numeric: Path

    @property
    def folder(self) -> Path:
        return self.reference.parent


def ensure_drift_files(size: Size) -> DriftFiles:
    """Write reference.parquet, current.parquet and current_numeric.npy once per size."""
    folder = data_dir(size) / f"drift-v{DATA_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    files = DriftFiles(folder / "reference.parquet", folder / "current.parquet", folder / "current_numeric.npy")
    if all(p.exists() for p in (files.reference, files.current, files.current_numeric)):
        return files
    n_reference, n_current = ROWS[size]
    reference = generate(n_reference, seed=1, drifted=False)
    current = generate(n_current, seed=2, drifted=True)
    for frame, path in ((reference, files.reference), (current, files.current)):
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
    np.save(files.current_numeric, np.ascontiguousarray(current[list(NUMERIC)].to_numpy(dtype=np.float64).T))
    return files


def read_frame(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


CAPTURE_LINES_PER_FILE = 100_000


def _capture_line(record: dict[str, Any], score: float, index: int) -> str:
    """One line as SageMaker data capture writes it for the front door's JSON request and the model's answer."""
    request = json.dumps({"instances": [record]}, separators=(",", ":"))
    predictions = f'[{{"probability":{score:.12f},"label":{int(score >= 0.5)}}}]'
    response = f'{{"predictions":{predictions},"model_version":"bench-1","threshold":0.5}}'
    return json.dumps(
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "application/json",
                    "mode": "INPUT",
                    "data": request,
                    "encoding": "JSON",
                },
                "endpointOutput": {
                    "observedContentType": "application/json",
                    "mode": "OUTPUT",
                    "data": response,
                    "encoding": "JSON",
                },
            },
            "eventMetadata": {
                "eventId": f"00000000-0000-4000-8000-{index:012d}",
                "inferenceTime": "2026-11-22T08:00:00Z",
            },
            "eventVersion": "0",
        },
        separators=(",", ":"),
    )


def ensure_capture_files(size: Size) -> list[Path]:
    """The current data as capture files (one request of one record per line, 100k lines per file), once."""
    files = ensure_drift_files(size)
    folder = files.folder / "capture"
    done = folder / ".complete"
    if not done.exists():
        folder.mkdir(exist_ok=True)
        current = read_frame(files.current)
        names = [*NUMERIC, *CATEGORICAL]
        numeric = set(NUMERIC)
        columns = {n: current[n].tolist() for n in names}
        scores = current[SCORE_COLUMN].tolist()
        for start in range(0, len(current), CAPTURE_LINES_PER_FILE):
            stop = min(start + CAPTURE_LINES_PER_FILE, len(current))
            lines = []
            for i in range(start, stop):
                record = {
                    n: (None if n in numeric and columns[n][i] != columns[n][i] else columns[n][i]) for n in names
                }
                lines.append(_capture_line(record, scores[i], i))
            (folder / f"capture-{start // CAPTURE_LINES_PER_FILE:04d}.jsonl").write_text("\n".join(lines) + "\n")
        done.touch()
    return sorted(folder.glob("capture-*.jsonl"))
