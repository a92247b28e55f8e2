"""Data capture as SageMaker writes it parses into the same columns the endpoint received, whatever the encoding."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from functions.drift_detector.capture import CaptureBatch, FeatureSpec, parse_capture
from functions.drift_detector.logic import DriftDetector, DriftThresholds, detect_drift
from functions.shared.contract import load_contract
from functions.shared.drift_schema import normalize_category
from mlloop.capture_files import capture_lines, capture_record
from mlloop.datagen import generate_churn
from training.drift_profile import build_drift_baseline

CONTRACT = load_contract("churn")
THRESHOLDS = DriftThresholds(min_samples=100)


@pytest.fixture(scope="module")
def churn():
    reference = generate_churn(4_000, seed=1)
    scores = np.random.default_rng(0).beta(2, 5, len(reference))
    baseline = build_drift_baseline(reference, CONTRACT, scores)
    current = generate_churn(600, seed=2, drift={"monthly_charges": 0.8})
    current_scores = np.random.default_rng(1).beta(2, 5, len(current))
    return baseline, current, current_scores


def _from_capture(baseline, payload: bytes) -> tuple[dict, CaptureBatch]:
    batch = parse_capture(payload, FeatureSpec.from_baseline(baseline))
    detector = DriftDetector(baseline)
    batch.feed(detector)
    return detector.evaluate(THRESHOLDS), batch


def _same_verdicts(got: dict, want: dict) -> None:
    assert got["sample_count"] == want["sample_count"]
    assert got["drifted_features"] == want["drifted_features"]
    for g, w in zip(got["features"], want["features"], strict=True):
        assert (g["name"], g["count"]) == (w["name"], w["count"])
        assert g["psi"] == pytest.approx(w["psi"], abs=1e-9)
        assert g["missing_rate"] == pytest.approx(w["missing_rate"])
    assert got["prediction"]["psi"] == pytest.approx(want["prediction"]["psi"], abs=1e-9)


@pytest.mark.parametrize(
    ("content_type", "wrap"), [("application/json", False), ("application/json", True), ("text/csv", False)]
)
def test_capture_gives_the_same_report_as_the_requests_themselves(churn, content_type, wrap):
    baseline, current, scores = churn
    payload = capture_lines(
        current, scores, feature_order=CONTRACT.feature_names, content_type=content_type, wrap_instances=wrap
    )

    got, batch = _from_capture(baseline, payload)

    assert batch.records_skipped == 0
    _same_verdicts(got, detect_drift(baseline, current, scores, THRESHOLDS))
    assert "monthly_charges" in got["drifted_features"]


def test_batches_base64_and_odd_lines_are_all_read(churn):
    baseline, current, scores = churn
    records = current[CONTRACT.feature_names].astype(object).where(current[CONTRACT.feature_names].notna(), None)
    rows = records.to_dict(orient="records")
    response = json.dumps({"predictions": [{"probability": float(s), "label": 0} for s in scores[:300]]})
    batched = capture_record(json.dumps({"instances": rows[:300]}), response)
    lines = [json.dumps(batched)]
    for i in range(300, 400):
        # Pretty-printed bodies are not one line and take the per-line path; compact ones the wrapped fast path.
        body = json.dumps(rows[i], indent=2) if i % 2 else json.dumps({"instances": [rows[i]]}, separators=(",", ":"))
        lines.append(json.dumps(capture_record(body, json.dumps({"predictions": [{"probability": scores[i]}]}))))
    for i in range(400, 600):
        record = capture_record("", json.dumps({"predictions": [{"probability": scores[i]}]}))
        record["captureData"]["endpointInput"].update(
            encoding="BASE64",
            observedContentType="application/octet-stream",
            data=base64.b64encode(json.dumps(rows[i]).encode()).decode(),
        )
        lines.append(json.dumps(record))
    lines.append("{not json")

    got, batch = _from_capture(baseline, ("\n".join(lines) + "\n").encode())

    assert batch.records_skipped == 1
    _same_verdicts(got, detect_drift(baseline, current, scores, THRESHOLDS))


def test_a_value_of_the_wrong_json_type_falls_back_without_losing_rows(churn):
    baseline, current, scores = churn
    payload = capture_lines(current, scores, feature_order=CONTRACT.feature_names)
    odd = json.loads(payload.splitlines()[0])
    body = json.loads(odd["captureData"]["endpointInput"]["data"])
    body["plan"] = 7  # a number where the contract has a category
    odd["captureData"]["endpointInput"]["data"] = json.dumps(body)

    got, batch = _from_capture(baseline, payload + json.dumps(odd).encode() + b"\n")

    assert got["sample_count"] == len(current) + 1
    assert batch.records_skipped == 0


def test_empty_capture_gives_no_rows(churn):
    baseline, _, _ = churn

    got, _ = _from_capture(baseline, b"\n  \n")

    assert got["sample_count"] == 0
    assert got["verdict"] == "insufficient_data"


def test_boolean_values_count_the_same_whatever_their_spelling():
    spellings = [True, np.True_, "True", "true", "1", 1]

    assert {normalize_category(v, boolean=True) for v in spellings} == {"true"}
    assert {normalize_category(v, boolean=True) for v in (False, np.False_, "False", "0", 0)} == {"false"}
    assert normalize_category(float("nan")) is None
    assert normalize_category("") is None
