"""Builders for the training workflow's tests: curated Parquet partitions and a model.tar.gz as training writes it."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from mlloop.datagen import generate_churn

DATA_START = datetime(2026, 10, 1, tzinfo=UTC)


def curated_frame(rows: int = 3000, seed: int = 5, **drift: float) -> pd.DataFrame:
    return generate_churn(rows, seed=seed, start=DATA_START, months=1, drift=drift or None)


def put_curated(
    s3: Any, bucket: str, frame: pd.DataFrame, dataset: str = "churn", file_stem: str = "part-0000"
) -> list[str]:
    """One Parquet file per event date, as ingestion lays out the curated bucket; `file_stem` names the files."""
    keys = []
    dates = pd.to_datetime(frame["event_time"], utc=True).dt.strftime("%Y-%m-%d")
    for day, part in frame.groupby(dates):
        buffer = io.BytesIO()
        part.to_parquet(buffer, index=False)
        key = f"{dataset}/event_date={day}/{file_stem}.parquet"
        s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
        keys.append(key)
    return keys


def evaluation_report(
    roc_auc: float = 0.82, ece: float = 0.02, model_version: str = "churn-candidate"
) -> dict[str, Any]:
    """The parts of training's evaluation.json the gate and the registry read."""
    test = {
        "roc_auc": roc_auc,
        "pr_auc": 0.6,
        "log_loss": 0.4,
        "ece": ece,
        "brier": 0.12,
        "predicted_positive_rate": 0.2,
    }
    return {
        "binary_classification_metrics": {"auc": {"value": roc_auc, "standard_deviation": 0.01}},
        "model_version": model_version,
        "contract_ref": "churn@1.0.0",
        "primary_metric": "roc_auc",
        "metrics": {"validation": test, "test": test},
        "slices": {"plan": {"basic": {"roc_auc": roc_auc - 0.01, "ece": ece}}},
    }


def model_archive(evaluation: dict[str, Any], *, omit: tuple[str, ...] = ()) -> bytes:
    version = evaluation.get("model_version", "churn-candidate")
    documents = {
        "evaluation.json": evaluation,
        "drift_baseline.json": {"features": {}, "model_version": version},
        "fallback_model.json": {"kind": "logistic", "model_version": version},
        "model_card.json": {"model_version": version},
        "model_metadata.json": {"model_version": version, "contract_ref": "churn@1.0.0"},
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        payloads = {"model.joblib": b"\x80\x04binary-model"}
        payloads.update({k: json.dumps(v).encode() for k, v in documents.items() if k not in omit})
        for name, data in payloads.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
