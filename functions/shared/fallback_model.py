"""The baseline logistic model exported by training (fallback_model.json), evaluated in pure Python.

It runs in the front-door Lambda when the endpoint fails, so it imports nothing beyond the standard library:
import cost is cold-start latency, and numpy alone would double it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FALLBACK_FORMAT = "mlloop-logistic-fallback/1"


class FallbackModelError(ValueError):
    """The fallback document is malformed; the message names the field."""


@dataclass(frozen=True)
class _NumericTerm:
    name: str
    fill: float
    mean: float
    scale: float
    coefficient: float


@dataclass(frozen=True)
class _CategoricalTerm:
    name: str
    coefficients: Mapping[str, float]


def _number(raw: Mapping[str, Any], key: str, where: str) -> float:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FallbackModelError(f"{where}{key}: expected a finite number, got {value!r}")
    return float(value)


class FallbackModel:
    """P(positive) = sigmoid(intercept + sum(coef * (x - mean) / scale) + sum(category coefficients))."""

    def __init__(
        self,
        *,
        intercept: float,
        numeric: tuple[_NumericTerm, ...],
        categorical: tuple[_CategoricalTerm, ...],
        threshold: float,
        model_version: str,
        contract_ref: str,
    ) -> None:
        self.intercept = intercept
        self.numeric = numeric
        self.categorical = categorical
        self.threshold = threshold
        self.model_version = model_version
        self.contract_ref = contract_ref
        # Flat per-feature tuples and plain dicts, built once: the request path then reads locals, not attributes.
        self._numeric = tuple((t.name, t.fill, t.mean, t.scale, t.coefficient) for t in numeric)
        self._categorical = tuple((c.name, dict(c.coefficients)) for c in categorical)

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> FallbackModel:
        if document.get("format") != FALLBACK_FORMAT:
            raise FallbackModelError(f"format: expected {FALLBACK_FORMAT!r}, got {document.get('format')!r}")
        numeric = []
        for i, raw in enumerate(document.get("numeric") or []):
            where = f"numeric[{i}]."
            scale = _number(raw, "scale", where)
            if scale == 0.0:
                raise FallbackModelError(f"{where}scale: must not be zero")
            numeric.append(
                _NumericTerm(
                    name=str(raw["name"]),
                    fill=_number(raw, "fill", where),
                    mean=_number(raw, "mean", where),
                    scale=scale,
                    coefficient=_number(raw, "coefficient", where),
                )
            )
        categorical = []
        for i, raw in enumerate(document.get("categorical") or []):
            coefficients = raw.get("coefficients")
            if not isinstance(coefficients, Mapping):
                raise FallbackModelError(f"categorical[{i}].coefficients: expected an object")
            categorical.append(
                _CategoricalTerm(
                    name=str(raw["name"]),
                    coefficients={
                        str(k): _number(coefficients, k, f"categorical[{i}].coefficients.") for k in coefficients
                    },
                )
            )
        return cls(
            intercept=_number(document, "intercept", ""),
            numeric=tuple(numeric),
            categorical=tuple(categorical),
            threshold=_number(document, "threshold", ""),
            model_version=str(document.get("model_version", "")),
            contract_ref=str(document.get("contract_ref", "")),
        )

    def decision(self, record: Mapping[str, Any]) -> float:
        """The log-odds for one validated record; None (or an absent key) means missing."""
        z = self.intercept
        get = record.get
        for name, fill, mean, scale, coefficient in self._numeric:
            value = get(name)
            z += coefficient * (((fill if value is None else float(value)) - mean) / scale)
        for name, coefficients in self._categorical:
            value = get(name)
            if value is not None:
                # An unseen category contributes nothing, as the pipeline's one-hot encoder treats it.
                z += coefficients.get(value, 0.0)
        return z

    def predict_proba(self, records: list[dict[str, Any]]) -> list[float]:
        """P(positive) per record."""
        decision = self.decision
        return [_sigmoid(decision(r)) for r in records]

    def predict_label(self, probability: float) -> int:
        return 1 if probability >= self.threshold else 0


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
