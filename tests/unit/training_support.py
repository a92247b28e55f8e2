"""One small trained model per kind, shared by the training, inference and fallback tests in a worker process.

Tests that use it carry `@pytest.mark.xdist_group("training")` so they land on the same worker and train once.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pandas as pd

from functions.shared.contract import DataContract, load_contract
from mlloop.datagen import generate_churn
from training.train import TrainingConfig, TrainingResult, run_training, write_artifacts

START = datetime(2025, 1, 1, tzinfo=UTC)
ROWS = 6000
SEED = 11


@dataclass(frozen=True)
class TrainedModel:
    result: TrainingResult
    model_dir: Path
    frame: pd.DataFrame
    contract: DataContract


@cache
def churn_frame(rows: int = ROWS, seed: int = SEED) -> pd.DataFrame:
    return generate_churn(rows, seed=seed, start=START, months=12)


def training_config(**overrides: object) -> TrainingConfig:
    settings: dict[str, object] = {"seed": 7, "min_slice_rows": 100, "latency_samples": 30, **overrides}
    return TrainingConfig(**settings)  # type: ignore[arg-type]


@cache
def trained(kind: str = "default") -> TrainedModel:
    """`default`: the configured policy (the baseline wins on this linear data); `candidate`: margin -1 forces
    the gradient-boosted candidate to ship, so serving is tested on both estimator families."""
    contract = load_contract("churn")
    frame = churn_frame()
    overrides: dict[str, object] = {"min_improvement": -1.0} if kind == "candidate" else {}
    result = run_training(frame, contract, training_config(**overrides))
    root = Path(tempfile.mkdtemp(prefix=f"mlloop-model-{kind}-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    model_dir = root / "model"
    write_artifacts(result, model_dir)
    return TrainedModel(result=result, model_dir=model_dir, frame=frame, contract=contract)
