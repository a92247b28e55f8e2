"""Request validation against the data contract of the deployed model: one message per offending field.

Hand-written rather than a generated pydantic model: the contract changes with each deploy, the checks
(bool is not an integer, NaN is not a number, a category must be known) are exact, and a request pays
microseconds, not a model build.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, cast

from aws_lambda_powertools.utilities.parser import BaseModel, Field, ValidationError, parse
from pydantic import ConfigDict

from functions.shared.contract import DataContract, Feature

# Reported as the field dimension of the validation metric for names the contract does not know: the
# caller chooses those names, and a metric dimension per caller-chosen name would be unbounded.
UNKNOWN_FIELD_METRIC = "unknown_field"


class _Envelope(Protocol):
    instances: list[Any]


@functools.cache
def batch_envelope() -> type[BaseModel]:
    """The batch envelope model, built on first use: a pydantic model's schema build costs tens of milliseconds,
    which would otherwise land on every cold start's import."""

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        instances: list[Any] = Field(min_length=1)

    return PredictRequest


@dataclass
class RequestErrors:
    fields: dict[str, str] = field(default_factory=dict)
    # Contract feature names (or UNKNOWN_FIELD_METRIC) behind the errors, for the per-field metric.
    metric_fields: set[str] = field(default_factory=set)

    def add(self, path: str, message: str, metric_field: str) -> None:
        self.fields.setdefault(path, message)
        self.metric_fields.add(metric_field)

    def __bool__(self) -> bool:
        return bool(self.fields)


class ParsedRequest(NamedTuple):
    records: list[dict[str, Any]]
    batch: bool
    # Every record holds exactly the contract's features (nothing omitted, nothing passed through).
    exact: bool = False
    # The endpoint payload, when the body already is exactly that (features only): saves re-encoding it.
    endpoint_payload: bytes | None = None
    # Each record's features as JSON text, when the body is one record of exactly the contract's features.
    features_json: list[str] | None = None


class RequestRejectedError(Exception):
    def __init__(self, message: str, errors: RequestErrors) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


def _body_rejected(summary: str, message: str) -> RequestRejectedError:
    errors = RequestErrors()
    errors.add("body", message, "body")
    return RequestRejectedError(summary, errors)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _check_value(feature: Feature, value: Any) -> str | None:
    """The problem with one value, or None when it is acceptable."""
    if value is None:
        return None if feature.nullable else "must not be null"
    if feature.type == "boolean":
        return None if isinstance(value, bool) else f"expected true or false, got {_describe(value)}"
    if feature.type == "categorical":
        if not isinstance(value, str):
            return f"expected a string, got {_describe(value)}"
        if value not in feature.categories:
            shown = value if len(value) <= 40 else value[:40] + "..."
            return f"unknown category {shown!r} (allowed: {', '.join(feature.categories)})"
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if feature.type == "integer" else "a number"
        return f"expected {kind}, got {_describe(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number (NaN and infinity are not allowed)"
    if feature.type == "integer" and isinstance(value, float) and not value.is_integer():
        return f"expected an integer, got {value!r}"
    lo, hi = feature.min, feature.max
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        low = _fmt(lo) if lo is not None else "-inf"
        high = _fmt(hi) if hi is not None else "inf"
        return f"{value!r} is out of range (allowed: {low} to {high})"
    return None


class RequestValidator:
    """Validates request bodies against one contract; build one per deployed contract and reuse it."""

    def __init__(self, contract: DataContract, *, max_records: int, max_body_bytes: int) -> None:
        self.contract = contract
        self.max_records = max_records
        self.max_body_bytes = max_body_bytes
        self._features = {f.name: f for f in contract.features}
        # The entity key and event time may ride along (they are logged with the prediction), the label may not.
        self._passthrough = {contract.entity_key, contract.event_timestamp}
        self._allowed = frozenset(self._features) | self._passthrough
        # Per feature, what a valid value looks like, checked inline on the request path; anything that fails
        # the fast check goes through _check_value, which finds the message.
        self._fast = [
            (
                f.name,
                f.type,
                # Finite open bounds: an infinite value must fail the inline check and reach the finiteness rule.
                -sys.float_info.max if f.min is None else f.min,
                sys.float_info.max if f.max is None else f.max,
                frozenset(f.categories),
            )
            for f in contract.features
        ]

    def parse(self, body: str | None) -> ParsedRequest:
        """Decode and validate a request body; raises RequestRejectedError naming every bad field."""
        if body is None or not body.strip():
            raise _body_rejected(
                "invalid request", 'the request body is empty: send one JSON record or {"instances": [...]}'
            )
        if len(body.encode("utf-8", errors="surrogatepass")) > self.max_body_bytes:
            raise _body_rejected("request too large", f"the request body is larger than {self.max_body_bytes} bytes")
        try:
            decoded = json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise _body_rejected("invalid request", f"the request body is not valid JSON ({str(exc)[:120]})") from None
        if isinstance(decoded, dict) and "instances" in decoded:
            records = self._parse_batch(decoded)
            batch = True
        elif isinstance(decoded, dict):
            records, batch = [decoded], False
        else:
            raise _body_rejected("invalid request", f"expected a JSON object, got {_describe(decoded)}")
        # The inline check passes almost every record; only a failing one pays for finding the messages.
        errors: RequestErrors | None = None
        for index, record in enumerate(records):
            if type(record) is not dict or not self._valid_fast(record):
                errors = errors or RequestErrors()
                self._check_record(record, f"instances[{index}]." if batch else "", errors)
        if errors:
            raise RequestRejectedError("invalid request", errors)
        features = self._features
        if not all(len(record) == len(features) and record.keys() <= features.keys() for record in records):
            return ParsedRequest(records, batch)
        if batch:
            return ParsedRequest(records, batch, True, body.encode() if len(decoded) == 1 else None)
        text = body.strip()
        return ParsedRequest(records, batch, True, b'{"instances":[' + text.encode() + b"]}", [text])

    def _parse_batch(self, decoded: dict[str, Any]) -> list[Any]:
        errors = RequestErrors()
        try:
            envelope = cast(_Envelope, parse(event=decoded, model=batch_envelope()))
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                loc = ".".join(str(p) for p in err["loc"]) or "body"
                errors.add(loc, str(err["msg"]), "instances" if loc == "instances" else UNKNOWN_FIELD_METRIC)
            raise RequestRejectedError("invalid request", errors) from None
        if len(envelope.instances) > self.max_records:
            errors.add(
                "instances",
                f"{len(envelope.instances)} records is more than the {self.max_records} allowed in one request",
                "instances",
            )
            raise RequestRejectedError("too many records", errors)
        return envelope.instances

    def _valid_fast(self, record: dict[str, Any]) -> bool:
        if not record.keys() <= self._allowed:
            return False
        for name, kind, lo, hi, categories in self._fast:
            value = record.get(name)
            kind_of = type(value)
            if value is None:
                # Null or omitted: acceptable only for nullable features, decided on the slow path.
                return False
            if kind == "float":
                if not ((kind_of is float or kind_of is int) and lo <= value <= hi):
                    return False
            elif kind == "integer":
                if not (kind_of is int and lo <= value <= hi):
                    return False
            elif kind == "categorical":
                if kind_of is not str or value not in categories:
                    return False
            elif kind_of is not bool:
                return False
        return True

    def _check_record(self, record: Any, prefix: str, errors: RequestErrors) -> None:
        if not isinstance(record, dict):
            errors.add(prefix.rstrip(".") or "body", f"expected a JSON object, got {_describe(record)}", "body")
            return
        for name in record:
            if name not in self._features and name not in self._passthrough:
                errors.add(
                    f"{prefix}{name}", "unknown field: the model's contract has no such feature", UNKNOWN_FIELD_METRIC
                )
        for name, feature in self._features.items():
            if name not in record:
                if not feature.nullable:
                    errors.add(f"{prefix}{name}", "required field is missing", name)
                continue
            problem = _check_value(feature, record[name])
            if problem:
                errors.add(f"{prefix}{name}", problem, name)

    def features_only(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record as the model takes it: every feature, omitted nullable ones as null."""
        return {name: record.get(name) for name in self._features}
