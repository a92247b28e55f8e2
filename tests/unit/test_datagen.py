"""The sample data generator: contract-shaped, seeded, learnable, with drift and corruption knobs."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from functions.shared.contract import load_contract
from mlloop.datagen import CORRUPTIONS, generate_churn

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_columns_follow_the_contract_and_values_respect_it() -> None:
    contract = load_contract("churn")
    frame = generate_churn(2000, seed=7, start=START, months=6)

    assert list(frame.columns) == contract.columns
    for feature in contract.numeric_features:
        values = frame[feature.name].dropna()
        assert values.min() >= feature.min and values.max() <= feature.max, feature.name
        if not feature.nullable:
            assert frame[feature.name].notna().all(), feature.name
    for feature in contract.categorical_features:
        assert set(frame[feature.name].dropna()) <= set(feature.categories), feature.name
    assert not frame.duplicated([contract.entity_key, contract.event_timestamp]).any()


def test_event_times_spread_over_the_requested_months() -> None:
    frame = generate_churn(3000, seed=1, start=START, months=6)

    months = frame["event_time"].dt.strftime("%Y-%m").nunique()
    assert frame["event_time"].min() >= START
    assert months >= 6
    assert frame["event_time"].is_monotonic_increasing


def test_same_seed_gives_the_same_rows_and_another_seed_differs() -> None:
    first = generate_churn(500, seed=3, start=START)
    again = generate_churn(500, seed=3, start=START)
    other = generate_churn(500, seed=4, start=START)

    assert first.equals(again)
    assert not first.equals(other)


def test_label_is_learnable_from_the_features() -> None:
    frame = generate_churn(4000, seed=11, start=START)

    month_to_month = frame[frame["contract_type"] == "month_to_month"]["churned"].mean()
    two_year = frame[frame["contract_type"] == "two_year"]["churned"].mean()
    assert 0.05 < frame["churned"].mean() < 0.4
    assert month_to_month > 2 * two_year


def test_numeric_drift_moves_the_mean_and_categorical_drift_moves_the_mix() -> None:
    base = generate_churn(4000, seed=5, start=START)
    drifted = generate_churn(4000, seed=5, start=START, drift={"monthly_charges": 1.0, "region": 0.5})

    assert drifted["monthly_charges"].mean() > base["monthly_charges"].mean() + 15
    assert (drifted["region"] == "west").mean() > (base["region"] == "west").mean() + 0.3
    assert np.allclose(drifted["tenure_months"], base["tenure_months"])


def test_label_drift_changes_the_churn_rate_with_unchanged_features() -> None:
    base = generate_churn(4000, seed=5, start=START)
    drifted = generate_churn(4000, seed=5, start=START, drift={"churned": 1.5})

    assert drifted["churned"].mean() > base["churned"].mean() + 0.1


def test_unknown_drift_column_is_refused() -> None:
    with pytest.raises(ValueError, match="not_a_column"):
        generate_churn(10, seed=1, drift={"not_a_column": 1.0})


def test_corrupt_fraction_breaks_that_share_of_rows_one_rule_each() -> None:
    frame = generate_churn(1000, seed=9, start=START, corrupt_fraction=0.05)

    rows, rules = frame.attrs["corrupt_rows"], frame.attrs["corruptions"]
    assert len(rows) == 50 and len(rules) == 50
    assert set(rules) <= set(CORRUPTIONS)
    clean = frame.drop(index=rows)
    assert clean["plan"].isin(["basic", "standard", "premium"]).all()
    assert clean["tenure_months"].notna().all()
    assert (clean["monthly_charges"] <= 500).all()


def test_zero_rows_gives_an_empty_frame_with_the_contract_columns() -> None:
    frame = generate_churn(0, seed=1)

    assert frame.empty
    assert list(frame.columns) == load_contract("churn").columns


def test_churn_label_drift_leaves_the_ranking_unchanged() -> None:
    # The intercept knob is no concept change: the same rows rank the same way (why concept_change exists).
    base = generate_churn(6000, seed=5, start=START)
    shifted = generate_churn(6000, seed=5, start=START, drift={"churned": 1.0})

    base_auc = roc_auc_score(base["churned"], base["monthly_charges"])
    shifted_auc = roc_auc_score(shifted["churned"], shifted["monthly_charges"])
    assert abs(shifted_auc - base_auc) < 0.03


def test_concept_change_keeps_every_feature_and_changes_which_customers_churn() -> None:
    contract = load_contract("churn")
    base = generate_churn(6000, seed=5, start=START)
    changed = generate_churn(6000, seed=5, start=START, concept_change=1.0)

    features = [contract.entity_key, contract.event_timestamp, *contract.feature_names]
    assert changed[features].equals(base[features])
    assert (changed["churned"] != base["churned"]).mean() > 0.1
    # Price now drives churn and the contract term barely does.
    assert roc_auc_score(changed["churned"], changed["monthly_charges"]) > (
        roc_auc_score(base["churned"], base["monthly_charges"]) + 0.1
    )
    month_to_month = (base["contract_type"] == "month_to_month").astype(int)
    assert roc_auc_score(changed["churned"], month_to_month) < roc_auc_score(base["churned"], month_to_month) - 0.05


def test_no_concept_change_is_the_base_generator() -> None:
    assert generate_churn(500, seed=3, start=START, concept_change=0.0).equals(generate_churn(500, seed=3, start=START))


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_concept_change_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="concept_change"):
        generate_churn(10, seed=1, concept_change=share)


def test_future_rows_of_one_customer_do_not_also_repeat_a_key() -> None:
    # Many corrupt rows among few customers: several future rows share a customer, each breaks one rule only.
    frame = generate_churn(400, seed=2, start=START, months=12, corrupt_fraction=0.3)

    future = [
        r
        for r, rule in zip(frame.attrs["corrupt_rows"], frame.attrs["corruptions"], strict=True)
        if rule == "future_timestamp"
    ]
    rows = frame.loc[future, ["customer_id", "event_time"]]
    assert rows["customer_id"].duplicated().any()
    assert not rows.duplicated().any()
