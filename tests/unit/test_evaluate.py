"""Evaluation for the decision: cost-policy thresholds, calibration, slices, and the ModelMetrics document."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from functions.shared.contract import load_contract
from training.calibration import expected_calibration_error
from training.decision import ThresholdPolicy
from training.evaluate import (
    auc_standard_error,
    choose_threshold,
    evaluate_scores,
    metrics_at_threshold,
    model_metrics_document,
    slice_report,
)

Y = np.array([0, 0, 0, 0, 1, 0, 1, 1])
P = np.array([0.05, 0.10, 0.20, 0.30, 0.40, 0.60, 0.70, 0.90])


def test_given_costly_misses_when_choosing_then_the_threshold_calls_more_rows_positive() -> None:
    cautious = choose_threshold(Y, P, ThresholdPolicy(cost_false_positive=1.0, cost_false_negative=10.0))
    strict = choose_threshold(Y, P, ThresholdPolicy(cost_false_positive=10.0, cost_false_negative=1.0))
    assert cautious == 0.40
    assert strict == 0.70


def test_given_a_positive_budget_when_choosing_then_no_more_than_that_share_is_called_positive() -> None:
    threshold = choose_threshold(
        Y, P, ThresholdPolicy(cost_false_positive=0.0, cost_false_negative=1.0, positive_budget=0.25)
    )
    assert threshold == 0.70
    assert metrics_at_threshold(Y, P, threshold, ThresholdPolicy())["predicted_positive_rate"] <= 0.25


def test_given_costs_where_no_positive_call_pays_then_the_threshold_is_above_every_score() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.1, 0.9, 0.2, 0.8])
    threshold = choose_threshold(y, p, ThresholdPolicy(cost_false_positive=100.0, cost_false_negative=1.0))
    assert threshold > p.max()


def test_given_tied_scores_when_choosing_then_the_threshold_never_splits_a_tie() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.5, 0.5, 0.5, 0.9])
    assert choose_threshold(y, p, ThresholdPolicy(cost_false_positive=1.0, cost_false_negative=1.0)) in (0.5, 0.9)


def test_given_the_threshold_then_precision_recall_f1_and_cost_follow_the_confusion_counts() -> None:
    policy = ThresholdPolicy(cost_false_positive=1.0, cost_false_negative=5.0)
    metrics = metrics_at_threshold(Y, P, 0.40, policy)
    assert (metrics["true_positives"], metrics["false_positives"], metrics["false_negatives"]) == (3, 1, 0)
    assert metrics["precision"] == 0.75
    assert metrics["recall"] == 1.0
    assert metrics["f1"] == pytest.approx(2 * 0.75 / 1.75)
    assert metrics["expected_cost_per_row"] == pytest.approx(1 / 8)


def test_given_perfectly_calibrated_scores_then_ece_is_zero_and_overconfidence_is_measured() -> None:
    y = np.array([0, 1] * 50)
    assert expected_calibration_error(y, np.full(100, 0.5)) == 0.0
    assert expected_calibration_error(y, np.full(100, 0.9)) == pytest.approx(0.4)


def test_given_a_policy_with_nothing_to_optimise_then_it_is_refused() -> None:
    with pytest.raises(ValueError, match="cost"):
        ThresholdPolicy(cost_false_positive=0.0, cost_false_negative=0.0)
    with pytest.raises(ValueError, match="positive_budget"):
        ThresholdPolicy(positive_budget=1.5)


def test_given_categorical_features_then_slices_cover_values_with_enough_rows_and_skip_the_rest() -> None:
    contract = load_contract("churn")
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "plan": ["basic"] * 300 + ["premium"] * 90 + ["standard"] * 10,
            "contract_type": ["one_year"] * n,
            "region": ["north"] * n,
            "payment_method": [None] * 50 + ["card"] * 350,
        }
    )
    y = (rng.random(n) < 0.3).astype(np.int64)
    p = np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1)
    report = slice_report(frame, y, p, contract, threshold=0.5, policy=ThresholdPolicy(), min_rows=80)
    assert report["plan"]["basic"]["rows"] == 300 and "roc_auc" in report["plan"]["basic"]
    assert "skipped" in report["plan"]["standard"]
    assert "skipped" in report["payment_method"]["<missing>"]
    assert "bank_transfer" not in report["payment_method"]


def test_given_test_metrics_then_the_document_has_the_sagemaker_model_quality_shape() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.3).astype(np.int64)
    p = np.clip(0.3 * y + 0.7 * rng.random(500), 0, 1)
    metrics = evaluate_scores(y, p, 0.5, ThresholdPolicy())
    document = model_metrics_document(metrics)["binary_classification_metrics"]
    assert document["auc"]["value"] == metrics["roc_auc"]
    assert 0 < document["auc"]["standard_deviation"] < 0.05
    matrix = document["confusion_matrix"]
    assert matrix["1"]["1"] + matrix["1"]["0"] == int(y.sum())
    for key in ("precision", "recall", "f1", "accuracy", "true_positive_rate", "false_positive_rate"):
        assert set(document[key]) == {"value", "standard_deviation"}


def test_given_a_perfect_ranker_then_the_auc_standard_error_is_zero() -> None:
    assert auc_standard_error(1.0, 50, 50) == 0.0
    assert auc_standard_error(0.8, 50, 50) > auc_standard_error(0.8, 500, 500)


def test_a_target_precision_keeps_the_most_recall_at_that_precision() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 4000)
    p = np.clip(y * 0.3 + rng.uniform(0, 0.7, 4000), 0, 1)

    threshold = choose_threshold(y, p, ThresholdPolicy(target_precision=0.8))
    at = metrics_at_threshold(y, p, threshold, ThresholdPolicy())
    lower = metrics_at_threshold(y, p, float(np.max(p[p < threshold])), ThresholdPolicy())

    assert at["precision"] >= 0.8
    assert lower["precision"] < 0.8  # one cut lower would break the target: no recall was given away


def test_a_target_recall_keeps_the_most_precision_at_that_recall() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 4000)
    p = np.clip(y * 0.3 + rng.uniform(0, 0.7, 4000), 0, 1)

    threshold = choose_threshold(y, p, ThresholdPolicy(target_recall=0.9))
    at = metrics_at_threshold(y, p, threshold, ThresholdPolicy())
    higher = metrics_at_threshold(y, p, float(np.min(p[p > threshold])), ThresholdPolicy())

    assert at["recall"] >= 0.9
    assert higher["recall"] < 0.9


def test_an_unreachable_target_calls_nothing_positive_and_the_report_prices_every_decision() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.9, 0.8, 0.7, 0.1])
    policy = ThresholdPolicy(cost_false_positive=2.0, cost_false_negative=10.0, target_precision=1.0)

    threshold = choose_threshold(y, p, policy)
    metrics = metrics_at_threshold(y, p, threshold, policy)

    assert metrics["predicted_positive_rate"] == 0.0
    assert metrics["expected_cost_per_1000"] == 1000 * (2 * 10.0) / 4


def test_a_policy_names_one_target_at_most() -> None:
    with pytest.raises(ValueError, match="exclude each other"):
        ThresholdPolicy(target_precision=0.8, target_recall=0.8)
