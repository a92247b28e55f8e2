"""Live quality on delayed labels: the join finds each label's prediction, the measures match scikit-learn's."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pandas as pd
import pytest
from moto import mock_aws
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from functions.label_quality.logic import (
    auc_drop,
    calibration,
    join_labels,
    measure_quality,
    precision_recall,
    quality_by_version,
    roc_auc,
)
from functions.label_quality.service import QualitySettings, auc_drop_metrics, quality_metrics, serving_evaluation
from functions.shared.contract import load_contract
from functions.shared.package_metadata import evaluated_metric, evaluated_metric_key
from functions.shared.serving_manifest import ServingManifest, manifest_key

LABELS = load_contract("churn_labels")


@pytest.mark.parametrize("seed", range(4))
def test_auc_precision_recall_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(500) < 0.3
    scores = np.round(np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1), 2)  # rounding makes ties
    decisions = scores >= 0.5

    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    precision, recall = precision_recall(y, decisions)
    assert precision == pytest.approx(precision_score(y, decisions))
    assert recall == pytest.approx(recall_score(y, decisions))


def test_calibration_is_zero_for_a_calibrated_model_and_large_for_an_overconfident_one():
    rng = np.random.default_rng(3)
    scores = rng.random(200_000)
    calibrated = rng.random(scores.size) < scores

    assert calibration(calibrated, scores)["expected_calibration_error"] < 0.01
    assert calibration(calibrated, np.where(scores > 0.5, 1.0, 0.0))["expected_calibration_error"] > 0.2


def _predictions(n: int, rng: np.random.Generator) -> pd.DataFrame:
    times = pd.Timestamp("2026-10-01T00:00:00Z") + pd.to_timedelta(rng.integers(0, 20 * 24, n), unit="h")
    probability = rng.random(n)
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "customer_id": [f"c{i}" for i in range(n)],
            "predicted_at": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "probability": probability,
            "label": (probability >= 0.5).astype(int),
            "model_version": "3",
        }
    )


def test_labels_join_by_entity_within_the_contracts_lag_and_by_request_id():
    rng = np.random.default_rng(0)
    predictions = _predictions(300, rng)
    snapshot = pd.to_datetime(predictions["predicted_at"], utc=True) - pd.Timedelta(hours=5)
    labels = pd.DataFrame(
        {
            "customer_id": predictions["customer_id"],
            "event_time": snapshot,
            "churned": (rng.random(300) < predictions["probability"]).astype(int),
            "label_source": "window_elapsed",
        }
    )
    # 50 labels refer to snapshots taken long after their customer's last prediction: no match.
    labels.loc[:49, "event_time"] = labels.loc[:49, "event_time"] + pd.Timedelta(days=30)

    joined = join_labels(predictions, labels, LABELS)

    assert len(joined) == 250
    assert set(joined["customer_id"]) == set(predictions["customer_id"][50:])
    by_request = join_labels(predictions, labels.assign(request_id=predictions["request_id"]), LABELS)
    assert len(by_request) == 300
    merged = by_request.merge(predictions, on="request_id", suffixes=("", "_p"))
    assert (merged["probability"] == merged["probability_p"]).all()


def test_quality_needs_enough_labels_and_both_classes():
    rng = np.random.default_rng(1)
    predictions = _predictions(400, rng)
    joined = predictions.assign(churned=(rng.random(400) < predictions["probability"]).astype(int))

    measured = measure_quality(joined, contract=LABELS, labels_received=400, min_labeled=200)
    too_few = measure_quality(joined.iloc[:150], contract=LABELS, labels_received=150, min_labeled=200)
    one_class = measure_quality(joined.assign(churned=0), contract=LABELS, labels_received=400, min_labeled=200)

    assert measured.verdict == "measured"
    assert measured.auc == pytest.approx(roc_auc_score(joined["churned"], joined["probability"]))
    assert measured.model_versions == {"3": 400}
    assert too_few.verdict == one_class.verdict == "insufficient_data"
    names = {m["MetricName"] for m in quality_metrics(too_few, "e")}
    assert names == {"LabeledPredictions", "LabelQualityInsufficientData"}
    assert {m["MetricName"] for m in quality_metrics(measured, "e")} >= {"LiveAUC", "LivePrecision", "LiveRecall"}


def test_settings_come_from_the_environment_at_call_time():
    env = {
        "ENDPOINT_NAME": "e",
        "CURATED_BUCKET": "c",
        "LABELS_DATASET": "churn_labels",
        "PREDICTIONS_BUCKET": "p",
        "PREDICTIONS_PREFIX": "predictions",
        "ARTIFACTS_BUCKET": "a",
        "POWERTOOLS_METRICS_NAMESPACE": "MLLoop/dev",
        "LOOKBACK_DAYS": "90",
        "MIN_LABELED": "200",
    }

    assert QualitySettings.from_env(env).lookback_days == 90


def test_the_labels_contract_describes_the_churn_label():
    churn = load_contract("churn")

    assert LABELS.entity_key == churn.entity_key
    assert LABELS.label.name == churn.label.name
    assert LABELS.label.window_days == churn.label.window_days


def test_each_model_version_is_measured_on_its_own_answers_overall_and_per_day():
    # Given v1 answering at random and v2 ranking well, both labelled
    rng = np.random.default_rng(2)
    predictions = _predictions(800, rng)
    labels = (rng.random(800) < predictions["probability"]).astype(int)
    predictions.loc[:399, "model_version"] = "v1"
    predictions.loc[400:, "model_version"] = "v2"
    predictions.loc[:399, "probability"] = rng.random(400)
    joined = predictions.assign(churned=labels, event_time=predictions["predicted_at"])

    # When quality is measured per version
    by_version = quality_by_version(joined, contract=LABELS, min_labeled=50)

    # Then each version has its own AUC, per day as well, and its own metrics
    v1, v2 = joined.iloc[:400], joined.iloc[400:]
    assert by_version["v1"]["auc"] == pytest.approx(roc_auc_score(v1["churned"], v1["probability"]))
    assert by_version["v2"]["auc"] == pytest.approx(roc_auc_score(v2["churned"], v2["probability"]))
    assert by_version["v2"]["auc"] > by_version["v1"]["auc"] + 0.2
    days = pd.to_datetime(v2["event_time"], utc=True).dt.strftime("%Y-%m-%d")
    assert set(by_version["v2"]["by_day"]) == set(days)
    assert sum(d["labeled_predictions"] for d in by_version["v2"]["by_day"].values()) == 400
    fields = {k: v for k, v in by_version["v2"].items() if k != "by_day"}
    metrics = quality_metrics(measure_quality(v2, contract=LABELS, labels_received=400, min_labeled=50), "e", "v2")
    assert {m["MetricName"] for m in metrics} >= {"LiveAUC", "LivePrecision", "LiveRecall", "LiveCalibrationError"}
    assert all(m["Dimensions"][1] == {"Name": "ModelVersion", "Value": "v2"} for m in metrics)
    assert fields["precision"] == pytest.approx(precision_score(v2["churned"], v2["label"]))


def _two_versions(min_labeled: int = 50) -> dict[str, dict]:
    rng = np.random.default_rng(5)
    predictions = _predictions(800, rng)
    labels = (rng.random(800) < predictions["probability"]).astype(int)
    predictions.loc[:399, "model_version"] = "v1"
    predictions.loc[400:, "model_version"] = "v2"
    joined = predictions.assign(churned=labels, event_time=predictions["predicted_at"])
    return quality_by_version(joined, contract=LABELS, min_labeled=min_labeled)


def test_the_drop_is_the_serving_versions_evaluated_auc_minus_its_own_live_auc():
    # Given two versions measured on their own answers, v2 serving and evaluated at 0.95 before release
    by_version = _two_versions()

    # When the drop of the serving version is computed
    drop = auc_drop(by_version, serving_version="v2", evaluated_auc=0.95)

    # Then it is v2's evaluated AUC minus v2's live AUC (never v1's), with the rows it rests on
    assert drop is not None
    assert drop.model_version == "v2"
    assert drop.live_auc == pytest.approx(by_version["v2"]["auc"])
    assert drop.drop == pytest.approx(0.95 - by_version["v2"]["auc"])
    assert drop.labeled_predictions == 400
    assert drop.to_dict()["drop"] == pytest.approx(drop.drop)


def test_no_drop_without_enough_labels_or_without_an_evaluated_auc():
    # A small sample gives no live AUC, so no drop: a quiet day must not flap the alarm
    assert auc_drop(_two_versions(min_labeled=401), serving_version="v2", evaluated_auc=0.95) is None
    assert auc_drop(_two_versions(), serving_version="v2", evaluated_auc=None) is None
    assert auc_drop(_two_versions(), serving_version="v3", evaluated_auc=0.95) is None


def test_the_drop_is_published_per_endpoint_and_per_version():
    drop = auc_drop(_two_versions(), serving_version="v2", evaluated_auc=0.95)
    assert drop is not None

    metrics = auc_drop_metrics(drop, "mlloop-dev-churn")

    assert {m["MetricName"] for m in metrics} == {"LiveAUCDrop"}
    assert [m["Dimensions"] for m in metrics] == [
        [{"Name": "EndpointName", "Value": "mlloop-dev-churn"}],
        [{"Name": "EndpointName", "Value": "mlloop-dev-churn"}, {"Name": "ModelVersion", "Value": "v2"}],
    ]
    assert all(m["Value"] == pytest.approx(drop.drop) for m in metrics)


def test_the_evaluated_auc_is_read_from_the_key_registration_writes():
    assert evaluated_metric_key("roc_auc") == "test_roc_auc"
    assert evaluated_metric({"test_roc_auc": "0.794195"}, "roc_auc") == pytest.approx(0.794195)
    assert evaluated_metric({}, "roc_auc") is None
    assert evaluated_metric({"test_roc_auc": "-"}, "roc_auc") is None


def test_the_serving_version_and_its_evaluated_auc_come_from_the_manifest_and_its_package(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    settings = QualitySettings.from_env(
        {
            "ENDPOINT_NAME": "mlloop-dev-churn",
            "CURATED_BUCKET": "curated",
            "LABELS_DATASET": "churn_labels",
            "PREDICTIONS_BUCKET": "capture",
            "PREDICTIONS_PREFIX": "predictions",
            "ARTIFACTS_BUCKET": "artifacts",
            "LOOKBACK_DAYS": "90",
            "MIN_LABELED": "200",
            "POWERTOOLS_METRICS_NAMESPACE": "MLLoop/dev",
        }
    )
    with mock_aws():
        s3, sm = boto3.client("s3"), boto3.client("sagemaker")
        s3.create_bucket(Bucket="artifacts")
        # Before the first deploy there is nothing to judge
        assert serving_evaluation(s3, sm, settings) is None

        sm.create_model_package_group(ModelPackageGroupName="mlloop-dev-churn")
        evaluated, unevaluated = (
            sm.create_model_package(
                ModelPackageGroupName="mlloop-dev-churn",
                ModelApprovalStatus="Approved",
                CustomerMetadataProperties=meta,
            )["ModelPackageArn"]
            for meta in ({evaluated_metric_key("roc_auc"): "0.821000"}, {"run_id": "by-hand"})
        )
        for arn, version, expected in ((evaluated, "4", 0.821), (unevaluated, "5", None)):
            manifest = ServingManifest(
                endpoint_name="mlloop-dev-churn",
                model_version=version,
                model_package_arn=arn,
                endpoint_config_name="c",
                variant_name=version,
                model_name="m",
                contract={},
                threshold=0.5,
                deployed_at="2026-11-20T00:00:00Z",
            )
            s3.put_object(Bucket="artifacts", Key=manifest_key("mlloop-dev-churn"), Body=manifest.to_json())
            assert serving_evaluation(s3, sm, settings) == (version, expected)


def test_a_model_measures_only_its_own_endpoints_predictions_in_the_shared_table():
    """Models of a stage log into one predictions table with version numbers of their own (both have a v1): a row
    that names another endpoint is not this model's answer. Rows that name none (older logs) are kept."""
    from functions.label_quality.service import read_predictions

    settings = QualitySettings(
        endpoint_name="mlloop-dev-churn",
        curated_bucket="c",
        labels_dataset="churn_labels",
        predictions_bucket="capture",
        predictions_prefix="predictions",
        artifacts_bucket="a",
        metrics_namespace="MLLoop/dev/churn",
        lookback_days=30,
        min_labeled=10,
    )
    lines = [
        {"request_id": "1", "model_version": "v1", "endpoint_name": "mlloop-dev-churn"},
        {"request_id": "2", "model_version": "v1", "endpoint_name": "mlloop-dev-upsell"},
        {"request_id": "3", "model_version": "v1"},
    ]
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="capture")
        body = "".join(json.dumps(line) + "\n" for line in lines)
        s3.put_object(
            Bucket="capture", Key="predictions/prediction_date=2026-01-02/frontdoor-x.json", Body=body.encode()
        )
        rows = read_predictions(s3, settings, "2026-01-01")
    assert sorted(rows["request_id"]) == ["1", "3"]
