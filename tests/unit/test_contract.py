"""The contract loader: the shipped contract loads; a malformed contract fails with an error naming the field."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from functions.shared.contract import DEFAULT_CONTRACTS_DIR, ContractError, load_contract, parse_contract

RAW: dict[str, Any] = json.loads((DEFAULT_CONTRACTS_DIR / "churn" / "v1.json").read_text())
Mutation = Callable[[dict[str, Any]], None]


def test_shipped_churn_contract_loads_with_every_part() -> None:
    contract = load_contract("churn")

    assert contract.ref == "churn@1.0.0"
    assert contract.entity_key == "customer_id" and contract.event_timestamp == "event_time"
    assert contract.label.name == "churned" and contract.label.window_days == 30
    assert contract.freshness.max_lag_hours == 72
    assert contract.columns[0] == "customer_id" and contract.columns[-1] == "churned"
    assert contract.feature("plan").categories == ("basic", "standard", "premium")
    assert contract.feature("monthly_charges").unit == "USD"
    assert all(f.description for f in contract.features)


def test_contract_round_trips_through_json() -> None:
    contract = load_contract("churn")

    assert parse_contract(json.loads(contract.to_json())) == contract


def _drop(*path: str | int) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        target: Any = doc
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]

    return mutate


def _set(value: Any, *path: str | int) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        target: Any = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return mutate


MALFORMED: list[tuple[str, Mutation, str]] = [
    ("no version", _drop("version"), "version"),
    ("version not semver", _set("v1", "version"), "version"),
    ("no entity key", _drop("entity_key"), "entity_key"),
    ("no event timestamp", _drop("event_timestamp"), "event_timestamp"),
    ("no label", _drop("label"), "label"),
    ("label window not positive", _set(0, "label", "window_days"), "label.window_days"),
    ("label window a string", _set("30", "label", "window_days"), "label.window_days"),
    ("no freshness", _drop("freshness"), "freshness"),
    ("freshness lag a string", _set("soon", "freshness", "max_lag_hours"), "freshness.max_lag_hours"),
    ("no features", _set([], "features"), "features"),
    ("feature without type", _drop("features", 0, "type"), "features[0].type"),
    ("feature with unknown type", _set("text", "features", 1, "type"), "features[1].type"),
    ("min above max", _set(900, "features", 1, "min"), "features[1].min"),
    ("range on a categorical", _set(3, "features", 7, "min"), "features[7].min"),
    ("categorical without categories", _set([], "features", 8, "categories"), "features[8].categories"),
    ("repeated category", _set(["a", "a"], "features", 9, "categories"), "features[9].categories"),
    ("nullable not a boolean", _set("yes", "features", 2, "nullable"), "features[2].nullable"),
    ("unknown feature field", _set(1, "features", 3, "colour"), "features[3].colour"),
    ("feature without description", _drop("features", 4, "description"), "features[4].description"),
    ("name not snake_case", _set("Monthly Charges", "features", 1, "name"), "features[1].name"),
    ("column used twice", _set("customer_id", "features", 0, "name"), "customer_id"),
]


@pytest.mark.parametrize(("case", "mutate", "field"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_contract_fails_naming_the_field(case: str, mutate: Mutation, field: str) -> None:
    document = copy.deepcopy(RAW)
    mutate(document)

    with pytest.raises(ContractError) as error:
        parse_contract(document)

    assert field in str(error.value), case


def test_contract_file_that_is_not_json_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "v1.json").write_text("{ not json")

    with pytest.raises(ContractError, match="not valid JSON"):
        load_contract("broken", root=tmp_path)


def test_unknown_dataset_and_version_mismatch_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="no contract"):
        load_contract("weather", root=tmp_path)
    with pytest.raises(ContractError, match="version"):
        load_contract("churn", "1.2.0")


def test_highest_major_version_is_loaded_by_default(tmp_path: Path) -> None:
    folder = tmp_path / "churn"
    folder.mkdir()
    for major in (1, 2, 10):
        doc = copy.deepcopy(RAW)
        doc["version"] = f"{major}.0.0"
        (folder / f"v{major}.json").write_text(json.dumps(doc))

    assert load_contract("churn", root=tmp_path).version == "10.0.0"
    assert load_contract("churn", "2", root=tmp_path).version == "2.0.0"
