"""Point-in-time split and leakage checks: training cannot see the future."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from functions.shared.contract import Feature, load_contract
from tests.unit.training_support import churn_frame, training_config
from training.data import LeakageError, TrainingDataError, check_leakage, point_in_time_split
from training.train import run_training

CONTRACT = load_contract("churn")
WINDOW = pd.Timedelta(days=CONTRACT.label.window_days)


def _split(frame: pd.DataFrame) -> object:
    return point_in_time_split(frame, CONTRACT, validation_fraction=0.2, test_fraction=0.2)


def test_given_snapshots_when_split_then_train_precedes_validation_precedes_test_with_label_window_gaps() -> None:
    frame = churn_frame(3000, 3)
    split = point_in_time_split(frame, CONTRACT, validation_fraction=0.2, test_fraction=0.2)
    times = {
        name: pd.to_datetime(getattr(split, name)["event_time"], utc=True) for name in ("train", "validation", "test")
    }
    # A training label is settled within WINDOW of its event: it must not reach into the validation period.
    assert times["train"].max() + WINDOW < times["validation"].min()
    assert times["validation"].max() + WINDOW < times["test"].min()
    assert split.dropped["label_window_open"] > 0
    latest = pd.to_datetime(frame["event_time"], utc=True).max()
    assert times["test"].max() + WINDOW <= latest


def test_given_an_as_of_time_when_split_then_rows_with_open_label_windows_are_dropped() -> None:
    frame = churn_frame(3000, 3)
    as_of = pd.to_datetime(frame["event_time"], utc=True).max() - pd.Timedelta(days=60)
    split = point_in_time_split(frame, CONTRACT, validation_fraction=0.2, test_fraction=0.2, label_as_of=as_of)
    assert pd.to_datetime(split.test["event_time"], utc=True).max() + WINDOW <= as_of


def test_given_too_short_a_history_when_split_then_training_refuses_with_the_reason() -> None:
    frame = churn_frame(3000, 3)
    times = pd.to_datetime(frame["event_time"], utc=True)
    short = frame[times < times.min() + pd.Timedelta(days=45)]
    with pytest.raises(TrainingDataError, match="split"):
        _split(short)


def test_given_a_feature_recorded_after_the_prediction_point_then_training_fails_naming_it() -> None:
    late = Feature(
        name="cancellation_reason_code",
        type="integer",
        description="set when the customer cancels",
        min=0,
        max=9,
        available_at_prediction=False,
    )
    contract = dataclasses.replace(CONTRACT, features=(*CONTRACT.features, late))
    frame = churn_frame(3000, 3).assign(cancellation_reason_code=0)
    with pytest.raises(LeakageError, match="cancellation_reason_code"):
        run_training(frame, contract, training_config())


def test_given_a_feature_that_alone_predicts_the_label_then_training_fails_naming_it() -> None:
    leaky = Feature(name="retention_offer_sent", type="float", description="leaks the outcome", min=0, max=2)
    contract = dataclasses.replace(CONTRACT, features=(*CONTRACT.features, leaky))
    frame = churn_frame(3000, 3)
    noise = np.random.default_rng(0).uniform(0, 0.5, size=len(frame))
    frame = frame.assign(retention_offer_sent=frame["churned"] + noise)
    with pytest.raises(LeakageError, match=r"retention_offer_sent \(AUC 1\.000\)"):
        run_training(frame, contract, training_config())


def test_given_honest_features_when_checked_then_each_single_feature_auc_is_reported_below_the_limit() -> None:
    split = _split(churn_frame(3000, 3))
    scores = check_leakage(split.train, CONTRACT, max_single_feature_auc=0.9)
    assert set(scores) == set(CONTRACT.feature_names)
    assert all(0.5 <= auc < 0.9 for auc in scores.values())
    assert scores["contract_type"] > 0.6
