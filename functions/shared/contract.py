"""The data contract: one model and one loader, used by ingestion, training, the front door and drift.

Plain dataclasses with no third-party imports, so the same module loads in a Lambda's cold start,
the SageMaker training and serving containers, and the operator CLI.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

FeatureType = Literal["integer", "float", "categorical", "boolean"]
FEATURE_TYPES: tuple[str, ...] = ("integer", "float", "categorical", "boolean")
NUMERIC_TYPES: tuple[str, ...] = ("integer", "float")

# Lambda assets and the training source bundle both carry contracts/ beside functions/.
DEFAULT_CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ContractError(ValueError):
    """A contract file is malformed; the message starts with the offending field's path."""


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType
    description: str
    nullable: bool = False
    unit: str | None = None
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()
    # False marks a column recorded after the prediction point: training refuses it as leakage.
    available_at_prediction: bool = True

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES


@dataclass(frozen=True)
class Label:
    name: str
    definition: str
    window_days: int
    positive_value: int = 1


@dataclass(frozen=True)
class Freshness:
    max_lag_hours: float
    max_event_age_days: float
    max_future_skew_minutes: float = 15.0


@dataclass(frozen=True)
class DataContract:
    """`entity_key` and `event_timestamp` identify a fact; the lake holds each once, the latest arrival of a
    fact winning when its values differ (docs/data-lake.md, "Each fact once")."""

    dataset: str
    version: str
    description: str
    entity_key: str
    event_timestamp: str
    label: Label
    freshness: Freshness
    features: tuple[Feature, ...] = field(default_factory=tuple)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[Feature]:
        return [f for f in self.features if f.is_numeric]

    @property
    def categorical_features(self) -> list[Feature]:
        return [f for f in self.features if f.type == "categorical"]

    @property
    def boolean_features(self) -> list[Feature]:
        return [f for f in self.features if f.type == "boolean"]

    @property
    def columns(self) -> list[str]:
        """Every column a curated row carries, in contract order."""
        return [self.entity_key, self.event_timestamp, *self.feature_names, self.label.name]

    @property
    def ref(self) -> str:
        """`dataset@version`, the stamp written on curated files and models."""
        return f"{self.dataset}@{self.version}"

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for f in out["features"]:
            f["categories"] = list(f["categories"])
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


def _require(obj: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...]) -> Any:
    if key not in obj:
        raise ContractError(f"{path}{key}: required field is missing")
    value = obj[key]
    if kind in (int, float, (int, float)) and isinstance(value, bool):
        raise ContractError(f"{path}{key}: expected a number, got {value!r}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ContractError(f"{path}{key}: expected {names}, got {value!r}")
    return value


def _optional(obj: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...], default: Any) -> Any:
    if key not in obj or obj[key] is None:
        return default
    return _require(obj, key, path, kind)


def _parse_feature(raw: Any, path: str) -> Feature:
    if not isinstance(raw, dict):
        raise ContractError(f"{path}: expected an object, got {raw!r}")
    known = {"name", "type", "description", "nullable", "unit", "min", "max", "categories", "available_at_prediction"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ContractError(f"{path}.{unknown[0]}: unknown field (allowed: {', '.join(sorted(known))})")
    p = f"{path}."
    name = _require(raw, "name", p, str)
    if not _NAME.match(name):
        raise ContractError(f"{p}name: {name!r} must be snake_case")
    ftype = _require(raw, "type", p, str)
    if ftype not in FEATURE_TYPES:
        raise ContractError(f"{p}type: {ftype!r} is not one of {', '.join(FEATURE_TYPES)}")
    lo = _optional(raw, "min", p, (int, float), None)
    hi = _optional(raw, "max", p, (int, float), None)
    categories = tuple(_optional(raw, "categories", p, list, []))
    if ftype in NUMERIC_TYPES:
        if categories:
            raise ContractError(f"{p}categories: only categorical features take categories")
        if lo is not None and hi is not None and lo > hi:
            raise ContractError(f"{p}min: {lo} is greater than max {hi}")
        for bound in (lo, hi):
            if bound is not None and not math.isfinite(bound):
                raise ContractError(f"{p}min/max: bounds must be finite")
    elif lo is not None or hi is not None:
        raise ContractError(f"{p}min: only numeric features take min/max")
    if ftype == "categorical":
        if not categories:
            raise ContractError(f"{p}categories: a categorical feature needs at least one category")
        if not all(isinstance(c, str) and c for c in categories):
            raise ContractError(f"{p}categories: every category must be a non-empty string")
        if len(set(categories)) != len(categories):
            raise ContractError(f"{p}categories: categories must be unique")
    return Feature(
        name=name,
        type=cast(FeatureType, ftype),
        description=_require(raw, "description", p, str),
        nullable=_optional(raw, "nullable", p, bool, False),
        unit=_optional(raw, "unit", p, str, None),
        min=None if lo is None else float(lo),
        max=None if hi is None else float(hi),
        categories=categories,
        available_at_prediction=_optional(raw, "available_at_prediction", p, bool, True),
    )


def parse_contract(raw: Any) -> DataContract:
    """Validate a decoded contract document; a ContractError names the first bad field."""
    if not isinstance(raw, dict):
        raise ContractError(f"<root>: expected an object, got {type(raw).__name__}")
    dataset = _require(raw, "dataset", "", str)
    if not _NAME.match(dataset):
        raise ContractError(f"dataset: {dataset!r} must be snake_case")
    version = _require(raw, "version", "", str)
    if not _SEMVER.match(version):
        raise ContractError(f"version: {version!r} is not MAJOR.MINOR.PATCH")
    label_raw = _require(raw, "label", "", dict)
    window = _require(label_raw, "window_days", "label.", int)
    if window <= 0:
        raise ContractError(f"label.window_days: {window} must be positive")
    label = Label(
        name=_require(label_raw, "name", "label.", str),
        definition=_require(label_raw, "definition", "label.", str),
        window_days=window,
        positive_value=_optional(label_raw, "positive_value", "label.", int, 1),
    )
    fresh_raw = _require(raw, "freshness", "", dict)
    freshness = Freshness(
        max_lag_hours=float(_require(fresh_raw, "max_lag_hours", "freshness.", (int, float))),
        max_event_age_days=float(_require(fresh_raw, "max_event_age_days", "freshness.", (int, float))),
        max_future_skew_minutes=float(
            _optional(fresh_raw, "max_future_skew_minutes", "freshness.", (int, float), 15.0)
        ),
    )
    features_raw = _require(raw, "features", "", list)
    if not features_raw:
        raise ContractError("features: a contract needs at least one feature")
    features = tuple(_parse_feature(f, f"features[{i}]") for i, f in enumerate(features_raw))
    entity_key = _require(raw, "entity_key", "", str)
    event_ts = _require(raw, "event_timestamp", "", str)
    names = [entity_key, event_ts, label.name, *(f.name for f in features)]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ContractError(f"features: column name {name!r} is used twice")
    return DataContract(
        dataset=dataset,
        version=version,
        description=_require(raw, "description", "", str),
        entity_key=entity_key,
        event_timestamp=event_ts,
        label=label,
        freshness=freshness,
        features=features,
    )


def load_contract_file(path: str | Path) -> DataContract:
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ContractError(f"<root>: {p} is not valid JSON ({exc})") from exc
    return parse_contract(raw)


def contracts_dir() -> Path:
    return Path(os.environ.get("CONTRACTS_DIR", str(DEFAULT_CONTRACTS_DIR)))


def labels_dataset(dataset: str) -> str:
    """The dataset that carries `dataset`'s delayed outcomes (contracts/<dataset>_labels/)."""
    return f"{dataset}_labels"


def load_contract(dataset: str, version: str | None = None, *, root: str | Path | None = None) -> DataContract:
    """Load `contracts/<dataset>/v<major>.json`; with no version, the highest major on disk."""
    base = Path(root) if root is not None else contracts_dir()
    folder = base / dataset
    if version is None:
        candidates = sorted(folder.glob("v*.json"), key=lambda q: int(q.stem[1:]) if q.stem[1:].isdigit() else -1)
        if not candidates:
            raise ContractError(f"dataset: no contract for {dataset!r} under {base}")
        return load_contract_file(candidates[-1])
    major = version.split(".")[0].lstrip("v")
    contract = load_contract_file(folder / f"v{major}.json")
    if version.count(".") == 2 and contract.version != version:
        raise ContractError(f"version: {dataset} contract on disk is {contract.version}, asked for {version}")
    return contract
