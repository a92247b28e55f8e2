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
        self.metric_fields.add(metric_field)
        if len(self.fields) < MAX_FIELD_ERRORS:
            self.fields.setdefault(path, message)
        else:
            self.fields.setdefault("more", f"more fields are at fault; the first {MAX_FIELD_ERRORS} are named")

    def __bool__(self) -> bool:
        return bool(self.fields)


class ParsedRequest(NamedTuple):
    """The validated records, as Python values: nothing of the caller's text goes further than the parser."""

    records: list[dict[str, Any]]
    batch: bool


class RequestRejectedError(Exception):
    def __init__(self, message: str, errors: RequestErrors) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors


def _body_rejected(summary: str, message: str) -> RequestRejectedError:
    errors = RequestErrors()
    errors.add("body", message, "body")
    return RequestRejectedError(summary, errors)


# Longest caller-chosen text (a field name, a value) echoed back in a 400.
ECHO_CHARS = 40
# At most this many fields are named in one 400: a body of a thousand unknown keys gets a bounded answer.
MAX_FIELD_ERRORS = 25
# The entity key is logged with each prediction; a key longer than this is not an identifier.
MAX_ENTITY_KEY_CHARS = 128


def echo(text: str) -> str:
    """Caller-chosen text as a 400 may show it: truncated, and with anything unprintable escaped."""
    shown = text if len(text) <= ECHO_CHARS else text[:ECHO_CHARS] + "..."
    return shown if shown.isprintable() else shown.encode("unicode_escape", errors="backslashreplace").decode("ascii")


class StrictJsonError(ValueError):
    """JSON that Python's parser accepts but a strict reader must refuse (RFC 8259 sections 4 and 6)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                # Python keeps the last copy silently; which one the caller meant is unknowable.
                raise StrictJsonError(f"duplicate key {echo(key)!r} in one object")
            seen.add(key)
    return record


# NaN, Infinity and -Infinity are not JSON (RFC 8259 section 6) but Python reads them as floats: they are left to
# the per-field check, which refuses every non-finite number under the field's name; nowhere else can one hide
# (unknown fields and envelope keys are refused, the entity key must be a string or an integer).
_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _lone_surrogate(value: Any) -> str | None:
    """A string inside the decoded body that holds a lone surrogate (a \\uD800-\\uDFFF escape not in a pair)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate(key) or _lone_surrogate(item)
            if found is not None:
                return found
    if isinstance(value, list):
        for item in value:
            found = _lone_surrogate(item)
            if found is not None:
                return found
    return None


def decode_body(body: str | bytes) -> tuple[str, int]:
    """The body as text and its size in bytes, refusing what is not UTF-8 (bytes from a base64 body, or a str
    with lone surrogates)."""
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8"), len(body)
        except UnicodeDecodeError as exc:
            raise _body_rejected(
                "invalid request", f"the request body is not valid UTF-8 (byte {exc.start} cannot be decoded)"
            ) from None
    try:
        return body, len(body.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise _body_rejected(
            "invalid request", f"the request body is not valid UTF-8 (a lone surrogate at character {exc.start})"
        ) from None


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
            return f"unknown category {echo(value)!r} (allowed: {', '.join(feature.categories)})"
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an integer" if feature.type == "integer" else "a number"
        return f"expected {kind}, got {_describe(value)}"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number (NaN and infinity are not allowed)"
    if feature.type == "integer" and isinstance(value, float) and not value.is_integer():
        return f"expected an integer, got {echo(repr(value))}"
    lo, hi = feature.min, feature.max
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        low = _fmt(lo) if lo is not None else "-inf"
        high = _fmt(hi) if hi is not None else "inf"
        return f"{echo(repr(value))} is out of range (allowed: {low} to {high})"
    return None


def _check_passthrough(value: Any) -> str | None:
    """The entity key and event time ride along to the prediction log: an identifier, not arbitrary data."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value or len(value) > MAX_ENTITY_KEY_CHARS or not value.isprintable():
            return f"expected 1 to {MAX_ENTITY_KEY_CHARS} printable characters"
        return None
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return None
    return f"expected a string or an integer, got {_describe(value)}"


class RequestValidator:
    """Validates request bodies against one contract; build one per deployed contract and reuse it."""

    def __init__(self, contract: DataContract, *, max_records: int, max_body_bytes: int) -> None:
        self.contract = contract
        self.max_records = max_records
        self.max_body_bytes = max_body_bytes
        self._features = {f.name: f for f in contract.features}
        self._names = tuple(self._features)
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

    def parse(self, body: str | bytes | None) -> ParsedRequest:
        """Decode and validate a request body; raises RequestRejectedError naming every bad field."""
        if body is None or not body.strip():
            raise _body_rejected(
                "invalid request", 'the request body is empty: send one JSON record or {"instances": [...]}'
            )
        if len(body) > self.max_body_bytes:
            raise _body_rejected("request too large", f"the request body is larger than {self.max_body_bytes} bytes")
        text, size = decode_body(body)
        if size > self.max_body_bytes:
            raise _body_rejected("request too large", f"the request body is larger than {self.max_body_bytes} bytes")
        try:
            decoded = _STRICT_JSON.decode(text)
        except StrictJsonError as exc:
            raise _body_rejected("invalid request", f"the request body is not strict JSON: {exc}") from None
        except (ValueError, RecursionError) as exc:
            raise _body_rejected("invalid request", f"the request body is not valid JSON ({str(exc)[:120]})") from None
        # Only a \uD800-\uDFFF escape can put a lone surrogate into decoded text that encoded cleanly.
        if ("\\ud" in text or "\\uD" in text) and (bad := _lone_surrogate(decoded)) is not None:
            raise _body_rejected(
                "invalid request",
                f"the request body is not valid UTF-8: {echo(bad)!r} holds a lone surrogate escape",
            )
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
        return ParsedRequest(records, batch)

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
        if len(record) > len(self._fast) and any(
            name in record and _check_passthrough(record[name]) for name in self._passthrough
        ):
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
                    f"{prefix}{echo(name)}",
                    "unknown field: the model's contract has no such feature",
                    UNKNOWN_FIELD_METRIC,
                )
        for name in self._passthrough:
            if name in record and (problem := _check_passthrough(record[name])):
                errors.add(f"{prefix}{name}", problem, name)
        for name, feature in self._features.items():
            if name not in record:
                if not feature.nullable:
                    errors.add(f"{prefix}{name}", "required field is missing", name)
                continue
            problem = _check_value(feature, record[name])
            if problem:
                errors.add(f"{prefix}{name}", problem, name)

    def features_only(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record as the model takes it: every feature in contract order, omitted nullable ones as null."""
        if tuple(record) == self._names:
            # Validated, and already exactly the features in contract order: the same dict, not a copy.
            return record
        return {name: record.get(name) for name in self._names}
