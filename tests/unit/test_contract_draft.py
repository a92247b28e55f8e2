"""`mlloop contract draft`: a new dataset's starting point, checked against the contract we wrote by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from functions.shared.contract import load_contract, load_contract_file
from mlloop.cli.main import main
from mlloop.contract_draft import DraftError, draft_contract
from mlloop.datagen import generate_churn, generate_upsell


def test_a_draft_of_generated_churn_data_finds_the_hand_written_contracts_choices() -> None:
    contract = load_contract("churn")
    frame = generate_churn(3000, seed=7)

    draft = draft_contract(frame, dataset="churn_draft")

    assert draft.contract["entity_key"] == contract.entity_key
    assert draft.contract["event_timestamp"] == contract.event_timestamp
    assert draft.contract["label"]["name"] == contract.label.name
    drafted = {f["name"]: f for f in draft.contract["features"]}
    assert set(drafted) == set(contract.feature_names)
    for feature in contract.features:
        assert drafted[feature.name]["type"] == feature.type, feature.name
        if feature.type == "categorical":
            assert set(drafted[feature.name]["categories"]) <= set(feature.categories)
        if feature.is_numeric:
            sample = frame[feature.name].dropna()
            assert drafted[feature.name]["min"] <= sample.min()
            assert drafted[feature.name]["max"] >= sample.max()
    assert drafted["total_charges"]["nullable"] is True
    assert drafted["tenure_months"]["nullable"] is False


def test_the_cli_writes_a_contract_the_platform_loads_and_explains_each_choice(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    n = 400
    sample = pd.DataFrame(
        {
            "LoanId": [f"L{i:05d}" for i in range(n)],
            "applied_at": pd.date_range("2015-01-01", periods=n, freq="D", tz="UTC").astype(str),
            "Amount": rng.uniform(1000, 20000, n).round(2),
            "term months": rng.choice([12, 24, 36], n),
            "purpose": rng.choice(["car", "home", "education"], n),
            "notes": [f"free text {i}" for i in range(n)],
            "defaulted": rng.integers(0, 2, n),
        }
    )
    sample.loc[::10, "Amount"] = np.nan
    source = tmp_path / "loans.csv"
    sample.to_csv(source, index=False)
    out = tmp_path / "contracts" / "loans" / "v1.json"

    assert main(["contract", "draft", str(source), "--out", str(out), "--json"]) == 0

    contract = load_contract_file(out)
    assert (contract.dataset, contract.entity_key, contract.event_timestamp) == ("loans", "loan_id", "applied_at")
    assert contract.label.name == "defaulted"
    assert {f.name: f.type for f in contract.features} == {
        "amount": "float",
        "term_months": "integer",
        "purpose": "categorical",
    }
    assert contract.feature("amount").nullable
    # Events from 2015 must not be quarantined as too old when the history is backfilled.
    assert contract.freshness.max_event_age_days > (datetime.now(UTC) - datetime(2015, 1, 1, tzinfo=UTC)).days
    notes = out.with_suffix(".review.md").read_text()
    assert "`notes` skipped: free text" in notes
    assert "`LoanId` must be snake_case" in notes
    assert "REVIEW" in notes
    assert main(["contract", "draft", str(source), "--out", str(out)]) == 2  # never overwrites a reviewed file


def test_a_sample_without_a_binary_outcome_asks_for_the_label() -> None:
    frame = pd.DataFrame({"id": ["a", "b", "c"], "ts": ["2024-01-01", "2024-01-02", "2024-01-03"], "x": [1.5, 2, 3]})
    with pytest.raises(DraftError, match="--label"):
        draft_contract(frame, dataset="x")
    with pytest.raises(DraftError, match="not 0/1"):
        draft_contract(frame, dataset="x", label="x")


def test_the_draft_round_trips_as_json() -> None:
    draft = draft_contract(generate_churn(500, seed=1), dataset="churn_copy")
    assert json.loads(json.dumps(draft.contract)) == draft.contract


def test_a_label_chosen_by_position_says_so_rather_than_claiming_an_outcome_name() -> None:
    # `upgraded` names no outcome the draft knows; it is chosen as the last binary column, and the note says that.
    frame = generate_upsell(500, seed=1)

    draft = draft_contract(frame, dataset="upsell_draft")

    (note,) = [reason for reason in draft.reasons if reason.startswith("label `")]
    assert draft.contract["label"]["name"] == "upgraded"
    assert "a binary 0/1 column named like an outcome" not in note
    assert "the last binary 0/1 column" in note


def test_a_label_named_like_an_outcome_says_so() -> None:
    draft = draft_contract(generate_churn(500, seed=1), dataset="churn_draft")

    (note,) = [reason for reason in draft.reasons if reason.startswith("label `")]
    assert "a binary 0/1 column named like an outcome" in note
