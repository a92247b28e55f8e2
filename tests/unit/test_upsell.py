"""The second generated dataset (upsell): a different problem shape that the platform ingests, drafts a contract
for and trains unchanged, with the same knobs as the churn generator."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from functions.shared.contract import labels_dataset, load_contract
from infra.config import load_stage_config, read_cdk_json_context
from mlloop.contract_draft import draft_contract
from mlloop.datagen import CORRUPTIONS, generate_upsell
from tests.unit.ingest_support import DATA_START, Lake, csv_bytes, lake
from training.gate import evaluate_gate
from training.train import TrainingConfig, run_training

__all__ = ["lake"]

START = datetime(2025, 1, 1, tzinfo=UTC)


def test_columns_follow_the_contract_and_values_respect_it() -> None:
    contract = load_contract("upsell")
    frame = generate_upsell(3000, seed=7, start=START, months=6)

    assert list(frame.columns) == contract.columns
    for feature in contract.numeric_features:
        values = frame[feature.name].dropna()
        assert values.min() >= feature.min and values.max() <= feature.max, feature.name
        assert frame[feature.name].isna().any() == feature.nullable, feature.name
    for feature in contract.categorical_features:
        assert set(frame[feature.name].dropna()) == set(feature.categories), feature.name
        assert frame[feature.name].isna().any() == feature.nullable, feature.name
    for feature in contract.boolean_features:
        assert frame[feature.name].dtype == bool, feature.name
    assert not frame.duplicated([contract.entity_key, contract.event_timestamp]).any()
    assert frame[contract.event_timestamp].is_monotonic_increasing
    assert frame[contract.event_timestamp].min() >= START


def test_its_shape_differs_from_churn_a_skewed_spend_counts_and_a_rarer_label() -> None:
    frame = generate_upsell(6000, seed=3, start=START)

    spend = frame["spend_90d"].dropna()
    assert spend.mean() > 2 * spend.median()  # a long right tail
    assert (frame["active_users_30d"] <= frame["seats"]).all()
    assert 0.08 < frame["upgraded"].mean() < 0.25
    assert len(load_contract("upsell").categorical_features) == 5


def test_same_seed_gives_the_same_rows_and_another_seed_differs() -> None:
    first = generate_upsell(500, seed=3, start=START)

    assert first.equals(generate_upsell(500, seed=3, start=START))
    assert not first.equals(generate_upsell(500, seed=4, start=START))


def test_drift_knobs_move_a_numeric_a_categorical_a_boolean_and_the_label() -> None:
    base = generate_upsell(6000, seed=5, start=START)
    drifted = generate_upsell(
        6000,
        seed=5,
        start=START,
        drift={"feature_adoption_pct": 1.0, "industry": 0.5, "has_integration": 0.8, "upgraded": 1.0},
    )

    assert drifted["feature_adoption_pct"].mean() > base["feature_adoption_pct"].mean() + 15
    assert (drifted["industry"] == "other").mean() > (base["industry"] == "other").mean() + 0.3
    assert drifted["has_integration"].mean() < 0.3 * base["has_integration"].mean()
    assert drifted["upgraded"].mean() > base["upgraded"].mean()
    assert np.array_equal(drifted["seats"], base["seats"])


def test_an_unknown_drift_column_is_refused() -> None:
    with pytest.raises(ValueError, match="monthly_charges"):
        generate_upsell(10, seed=1, drift={"monthly_charges": 1.0})


def test_the_label_is_learnable() -> None:
    frame = generate_upsell(6000, seed=11, start=START)

    # Usage intensity drives upgrades; no single column gives the label away (training's leakage check).
    adoption_auc = roc_auc_score(frame["upgraded"], frame["feature_adoption_pct"])
    assert 0.6 < adoption_auc < 0.9


def test_the_label_dataset_has_a_contract_with_the_same_key_time_and_label() -> None:
    contract = load_contract("upsell")
    labels = load_contract(labels_dataset("upsell"))

    assert (labels.entity_key, labels.event_timestamp) == (contract.entity_key, contract.event_timestamp)
    assert (labels.label.name, labels.label.window_days) == (contract.label.name, contract.label.window_days)


def test_generated_rows_pass_ingestion_with_none_quarantined(lake: Lake) -> None:
    frame = generate_upsell(2000, seed=1, start=DATA_START, months=2)
    source = lake.put_raw("upsell/clean.csv", csv_bytes(frame))

    report = lake.ingest(source)

    assert (report.dataset, report.contract_version) == ("upsell", "1.0.0")
    assert (report.rows_in, report.rows_curated, report.rows_quarantined) == (2000, 2000, 0)
    curated = lake.curated(report)
    assert len(curated) == 2000
    assert curated["acquisition_channel"].isna().sum() == frame["acquisition_channel"].isna().sum()


def test_broken_rows_are_quarantined_with_their_rules(lake: Lake) -> None:
    frame = generate_upsell(400, seed=2, start=DATA_START, months=2, corrupt_fraction=0.05)
    rows, rules = frame.attrs["corrupt_rows"], frame.attrs["corruptions"]
    source = lake.put_raw("upsell/broken.csv", csv_bytes(frame))

    report = lake.ingest(source)

    quarantined = lake.quarantined_rows(report).sort_values("source_row")
    assert len(rows) == 20 and set(rules) == set(CORRUPTIONS)
    assert report.rows_quarantined == 20 and report.rows_curated == 380
    assert quarantined["source_row"].tolist() == rows
    assert quarantined["rules"].tolist() == rules
    by_rule = dict(zip(quarantined["rules"], quarantined["reason"], strict=False))
    assert "feature_adoption_pct" in by_rule["out_of_range"] and "180" in by_rule["out_of_range"]
    assert "platinum" in by_rule["unknown_category"]
    assert "seats" in by_rule["null_not_allowed"]


def test_a_draft_of_a_sample_agrees_with_the_hand_written_contract() -> None:
    contract = load_contract("upsell")
    frame = generate_upsell(3000, seed=7, start=START)
    sample = pd.read_csv(pd.io.common.StringIO(frame.to_csv(index=False)))

    draft = draft_contract(sample, dataset="upsell_draft", now=datetime(2026, 1, 1, tzinfo=UTC))

    assert draft.contract["entity_key"] == contract.entity_key
    assert draft.contract["event_timestamp"] == contract.event_timestamp
    assert draft.contract["label"]["name"] == contract.label.name
    drafted = {f["name"]: f for f in draft.contract["features"]}
    assert list(drafted) == contract.feature_names
    for feature in contract.features:
        assert drafted[feature.name]["type"] == feature.type, feature.name
        assert drafted[feature.name]["nullable"] == feature.nullable, feature.name
        if feature.type == "categorical":
            assert set(drafted[feature.name]["categories"]) == set(feature.categories), feature.name
        if feature.is_numeric:
            # Both cover what the sample shows; the reviewed contract's bounds are the domain's, the draft's the
            # sample's widened by a margin (a person narrows a percentage's 110 to 100).
            sample_values = frame[feature.name].dropna()
            assert drafted[feature.name]["min"] <= sample_values.min(), feature.name
            assert sample_values.max() <= drafted[feature.name]["max"], feature.name


def test_the_platform_trains_it_unchanged_and_the_model_passes_the_dev_promotion_gate() -> None:
    stage = load_stage_config(read_cdk_json_context(), "dev")
    contract = load_contract("upsell")
    frame = generate_upsell(6000, seed=11, start=START)
    decision = {k: v for k, v in stage.training.decision.to_dict().items() if v is not None}
    config = TrainingConfig(
        dataset="upsell", seed=7, candidate=stage.training.candidate, min_slice_rows=100, latency_samples=30, **decision
    )

    result = run_training(frame, contract, config)

    gate = evaluate_gate(result.evaluation, None, stage.gates.promotion)
    assert gate.approved, gate.reasons
    assert result.metadata["test_metrics"]["roc_auc"] >= 0.75
