"""Training data: curated Parquet in, a point-in-time split out, leakage refused before any model is fitted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from functions.shared.contract import DataContract


class TrainingDataError(ValueError):
    """The training data cannot produce a trustworthy model; the message says why."""


class LeakageError(TrainingDataError):
    """A feature would leak the label; the message names it."""


@dataclass(frozen=True)
class LoadedData:
    frame: pd.DataFrame
    data_version: str
    files: int


def load_curated(channel_dir: str | Path, contract: DataContract) -> LoadedData:
    """Every Parquet file under the channel (curated/<dataset>/event_date=.../*.parquet), contract columns only,
    in a deterministic row order so the same files give the same model whatever order the filesystem lists."""
    root = Path(channel_dir)
    files = sorted(p for p in root.rglob("*.parquet") if p.is_file())
    if not files:
        raise TrainingDataError(f"no Parquet files under {root}")
    digest = hashlib.sha256()
    frames = []
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
        part = pd.read_parquet(path)
        missing = [c for c in contract.columns if c not in part.columns]
        if missing:
            raise TrainingDataError(f"{path.relative_to(root)}: missing contract columns {missing}")
        frames.append(part[contract.columns])
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.sort_values([contract.event_timestamp, contract.entity_key], kind="stable").reset_index(drop=True)
    return LoadedData(frame=frame, data_version=f"sha256:{digest.hexdigest()[:16]}", files=len(files))


def frame_data_version(frame: pd.DataFrame) -> str:
    """A content hash for in-memory data (tests, notebooks) in the same form as load_curated's."""
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return f"sha256:{hashlib.sha256(hashed.tobytes()).hexdigest()[:16]}"


def labels(frame: pd.DataFrame, contract: DataContract) -> np.ndarray:
    return np.asarray(frame[contract.label.name].to_numpy() == contract.label.positive_value, dtype=np.int64)


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    boundaries: dict[str, str]
    dropped: dict[str, int]

    def summary(self) -> dict[str, Any]:
        return {
            "rows": {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)},
            "boundaries": self.boundaries,
            "dropped": self.dropped,
        }


def point_in_time_split(
    frame: pd.DataFrame,
    contract: DataContract,
    *,
    validation_fraction: float,
    test_fraction: float,
    label_as_of: pd.Timestamp | None = None,
) -> TimeSplit:
    """train < validation < test by event time.

    A label is only known `window_days` after its event, so: rows whose window has not closed by `label_as_of`
    (default: the latest event time) are dropped, and a window-long gap separates train from validation and
    validation from test, so no training label is decided by events inside a later split's period.
    """
    if not (0 < validation_fraction < 1 and 0 < test_fraction < 1 and validation_fraction + test_fraction < 1):
        raise TrainingDataError("validation_fraction and test_fraction must be in (0, 1) and sum below 1")
    times = pd.to_datetime(frame[contract.event_timestamp], utc=True)
    window = pd.Timedelta(days=contract.label.window_days)
    as_of = times.max() if label_as_of is None else pd.Timestamp(label_as_of)
    if as_of.tzinfo is None:
        as_of = as_of.tz_localize("UTC")
    mature = (times + window) <= as_of
    mature_times = times[mature]
    if mature_times.empty:
        raise TrainingDataError(f"no row has a closed {contract.label.window_days}-day label window by {as_of}")
    ordered = mature_times.sort_values(kind="stable").reset_index(drop=True)
    validation_start = pd.Timestamp(ordered.iloc[int(len(ordered) * (1 - validation_fraction - test_fraction))])
    test_start = pd.Timestamp(ordered.iloc[int(len(ordered) * (1 - test_fraction))])
    in_train = mature & (times < validation_start - window)
    in_validation = mature & (times >= validation_start) & (times < test_start - window)
    in_test = mature & (times >= test_start)
    split = TimeSplit(
        train=frame[in_train.to_numpy()].reset_index(drop=True),
        validation=frame[in_validation.to_numpy()].reset_index(drop=True),
        test=frame[in_test.to_numpy()].reset_index(drop=True),
        boundaries={
            "validation_start": validation_start.isoformat(),
            "test_start": test_start.isoformat(),
            "label_as_of": as_of.isoformat(),
            "train_end_exclusive": (validation_start - window).isoformat(),
            "validation_end_exclusive": (test_start - window).isoformat(),
        },
        dropped={
            "label_window_open": int((~mature).sum()),
            "purge_gap": int((mature & ~in_train & ~in_validation & ~in_test).sum()),
        },
    )
    for name, part in (("train", split.train), ("validation", split.validation), ("test", split.test)):
        classes = np.unique(labels(part, contract))
        if len(classes) < 2:
            raise TrainingDataError(
                f"the {name} split has {len(part)} rows and {len(classes)} label class(es); "
                f"the data must span more than {contract.label.window_days * 3} days with both outcomes"
            )
    return split


def single_feature_auc(values: pd.Series, y: np.ndarray, *, categorical: bool) -> float:
    """How well one feature alone ranks the label, direction-free (0.5 = no signal, 1.0 = a perfect leak)."""
    if categorical:
        keys = values.astype(object).where(values.notna(), "<missing>")
        score = keys.map(pd.Series(y, index=keys.index).groupby(keys).mean()).to_numpy(dtype=np.float64)
    else:
        numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
        score = numbers.fillna(numbers.median() if numbers.notna().any() else 0.0).to_numpy()
    if np.all(score == score[0]):
        return 0.5
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def check_leakage(train: pd.DataFrame, contract: DataContract, *, max_single_feature_auc: float) -> dict[str, float]:
    """Refuse features recorded after the prediction point and features that alone predict the label too well;
    return each feature's single-feature AUC for the evaluation report."""
    late = [f.name for f in contract.features if not f.available_at_prediction]
    if late:
        raise LeakageError(
            f"leakage: feature(s) {', '.join(late)} are recorded after the prediction point "
            "(available_at_prediction=false in the contract); remove them from the model's features"
        )
    y = labels(train, contract)
    scores = {
        f.name: round(single_feature_auc(train[f.name], y, categorical=f.type == "categorical"), 6)
        for f in contract.features
    }
    leaking = {name: auc for name, auc in scores.items() if auc > max_single_feature_auc}
    if leaking:
        named = ", ".join(f"{name} (AUC {auc:.3f})" for name, auc in sorted(leaking.items()))
        raise LeakageError(
            f"leakage: feature(s) {named} predict the label alone above the allowed single-feature AUC "
            f"{max_single_feature_auc}; a feature that strong is almost always recorded after the outcome"
        )
    return scores
