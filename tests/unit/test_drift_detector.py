"""The detector: quiet on unchanged traffic, exactly the drifted features flagged, no verdict on too little."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from functions.drift_detector.logic import BaselineError, DriftDetector, DriftThresholds, detect_drift
from tests.unit.drift_support import CATEGORICAL, NUMERIC, wide_baseline, wide_frame

THRESHOLDS = DriftThresholds(min_samples=500)
DRIFTED = {"num_05": 0.6, "num_14": 0.7, "cat_2": 0.3}


@pytest.fixture(scope="module")
def baseline():
    return wide_baseline()


def test_unchanged_traffic_raises_at_most_one_alarm_in_100_windows(baseline):
    alarms = 0
    flagged_features = 0
    for seed in range(100):
        frame, scores = wide_frame(2_000, seed=1000 + seed)
        report = detect_drift(baseline, frame, scores, THRESHOLDS)
        alarms += report["verdict"] != "no_drift"
        flagged_features += len(report["drifted_features"])

    assert alarms <= 1
    assert flagged_features <= 5


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_drift_in_3_of_25_features_flags_exactly_those(baseline, seed):
    frame, scores = wide_frame(5_000, seed=seed, drift=DRIFTED)

    report = detect_drift(baseline, frame, scores, THRESHOLDS)

    assert sorted(report["drifted_features"]) == sorted(DRIFTED)
    assert report["drift_detected"] is True
    assert report["verdict"] == "drift"
    assert report["drifted_share"] == pytest.approx(3 / 25)
    assert report["max_psi_feature"] in DRIFTED


def test_too_little_traffic_gives_no_verdict_even_when_everything_moved(baseline):
    frame, scores = wide_frame(499, seed=5, drift=dict.fromkeys([*NUMERIC, *CATEGORICAL], 1.0))

    report = detect_drift(baseline, frame, scores, THRESHOLDS)

    assert report["verdict"] == "insufficient_data"
    assert report["drift_detected"] is False
    assert report["prediction_drift_detected"] is False
    assert report["sample_count"] == 499
    assert report["features"] == []


def test_missing_values_and_unseen_categories_are_flagged(baseline):
    frame, scores = wide_frame(3_000, seed=21)
    frame.loc[: len(frame) // 5, "num_02"] = np.nan
    frame.loc[: len(frame) // 20, "cat_0"] = "brand_new"

    report = detect_drift(baseline, frame, scores, THRESHOLDS)
    by_name = {f["name"]: f for f in report["features"]}

    assert "missing_rate" in by_name["num_02"]["reasons"]
    assert by_name["num_02"]["missing_rate_delta"] == pytest.approx(0.2, abs=0.01)
    assert "new_categories" in by_name["cat_0"]["reasons"]
    assert by_name["cat_0"]["new_categories"] == ["brand_new"]
    assert sorted(report["drifted_features"]) == ["cat_0", "num_02"]


def test_prediction_drift_is_reported_on_its_own(baseline):
    frame, scores = wide_frame(3_000, seed=22)

    report = detect_drift(baseline, frame, np.clip(scores + 0.25, 0, 1), THRESHOLDS)

    assert report["prediction_drift_detected"] is True
    assert report["drift_detected"] is False
    assert report["verdict"] == "drift"
    assert report["prediction"]["psi"] >= THRESHOLDS.prediction_psi


def test_column_forms_and_chunking_give_the_same_report(baseline):
    frame, scores = wide_frame(4_000, seed=23, drift=DRIFTED)
    expected = detect_drift(baseline, frame, scores, THRESHOLDS)

    as_category = frame.astype({name: "category" for name in CATEGORICAL})
    as_arrow = {name: pa.chunked_array([pa.array(frame[name][:1500]), pa.array(frame[name][1500:])]) for name in frame}
    as_numpy = {name: frame[name].to_numpy() for name in frame}
    streamed = DriftDetector(baseline)
    for start in range(0, len(frame), 1000):
        streamed.add_columns(frame.iloc[start : start + 1000])
        streamed.add_scores(scores[start : start + 1000])

    for report in (
        detect_drift(baseline, as_category, scores, THRESHOLDS),
        detect_drift(baseline, as_arrow, pa.array(scores), THRESHOLDS),
        detect_drift(baseline, as_numpy, scores, THRESHOLDS),
        streamed.evaluate(THRESHOLDS),
    ):
        for got, want in zip(report["features"], expected["features"], strict=True):
            assert (got["name"], got["reasons"], got["count"]) == (want["name"], want["reasons"], want["count"])
            for key in ("psi", "ks", "js", "wasserstein", "missing_rate", "mean"):
                assert got[key] == (None if want[key] is None else pytest.approx(want[key], rel=1e-9, abs=1e-12))


def test_report_is_plain_json(baseline):
    frame, scores = wide_frame(1_000, seed=24)

    report = detect_drift(baseline, frame, scores, THRESHOLDS, endpoint="e", window_end="2026-01-01T00:00:00Z")

    assert json.loads(json.dumps(report, allow_nan=False))["endpoint"] == "e"


def test_a_feature_missing_from_traffic_counts_as_missing(baseline):
    frame, scores = wide_frame(1_000, seed=25)

    report = detect_drift(baseline, frame.drop(columns=["num_00"]), scores, THRESHOLDS)

    assert {f["name"]: f for f in report["features"]}["num_00"]["missing_rate"] == 1.0
    assert "num_00" in report["drifted_features"]


def test_a_baseline_of_another_kind_is_refused():
    with pytest.raises(BaselineError, match="kind"):
        DriftDetector({"kind": "something_else", "schema_version": 1})


def test_baseline_frame_must_hold_the_contract_features():
    from tests.unit.drift_support import wide_contract
    from training.drift_profile import build_drift_baseline

    with pytest.raises(ValueError, match="num_00"):
        build_drift_baseline(pd.DataFrame({"x": [1]}), wide_contract(), [0.5])
