"""Models trained once per benchmark process by the real training code: the logistic baseline and the candidate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pandas as pd

from benchmarks.common import Size
from functions.shared.contract import DataContract, load_contract

TRAIN_ROWS: dict[Size, int] = {"tiny": 2_000, "full": 20_000}


@dataclass(frozen=True)
class TrainedModels:
    contract: DataContract
    frame: pd.DataFrame
    # result.pipeline is the candidate (forced to win), result.baseline_pipeline the logistic baseline.
    result: Any

    @property
    def pipelines(self) -> dict[str, Any]:
        return {"baseline": self.result.baseline_pipeline, "candidate": self.result.pipeline}


@cache
def trained(size: Size) -> TrainedModels:
    from mlloop.datagen import generate_churn
    from training.train import TrainingConfig, run_training

    contract = load_contract("churn")
    frame = generate_churn(TRAIN_ROWS[size], seed=5, start=datetime(2025, 1, 1, tzinfo=UTC), months=12)
    # A negative margin makes the candidate ship, so both estimator families are measured on one training run.
    config = TrainingConfig(seed=7, min_improvement=-1.0, latency_samples=5, min_slice_rows=50)
    return TrainedModels(contract, frame, run_training(frame, contract, config))


def json_record(row: dict[str, Any]) -> dict[str, Any]:
    """A record as a client sends it: plain JSON types, missing values as null."""
    out: dict[str, Any] = {}
    for key, raw in row.items():
        value = raw.item() if hasattr(raw, "item") else raw
        out[key] = None if value is None or value != value else value
    return out
