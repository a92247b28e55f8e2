"""Every request the local cloud serves is checked against botocore's service model, as AWS's front end does.

botocore validates types and required members client-side, but not `max`, `pattern` or `enum`, and callers that
are not botocore (raw HTTP, other SDKs) validate nothing, so AWS's own request validation is reproduced here:
required members, types, length and size (`min`/`max` on strings, blobs, lists and maps), numeric ranges,
`enum` and `pattern`. A request that breaks a constraint is answered as AWS answers it, before the operation
runs: HTTP 400, `ValidationException` on JSON protocols (`ValidationError` on query protocols) with the
Coral text, e.g.

    1 validation error detected: Value 'a,b' at 'customerMetadataProperties' failed to satisfy constraint:
    Map value must satisfy constraint: [Member must satisfy regular expression pattern: ...]

(the wording: AWS error texts quoted in aws/aws-cli#790, awslabs/aws-transit-vpc#32, aws/aws-cdk#31241:
"N validation error(s) detected: Value 'v' at 'member.path' failed to satisfy constraint: Member must ...",
list items as `list.1.member.field`, several errors joined by "; "). A value of the wrong JSON type is
`SerializationException`, as AWS's JSON protocols answer it.

botocore's patterns are Java regular expressions (`\\p{L}`, possessive quantifiers, quantified anchors); the
`regex` package reads that syntax, and Java's `matches()` is a full match. All 1,112 patterns of the services the
stacks use compile (the surrogate-pair escapes translated below); one that did not would be logged and skipped.
S3 (rest-xml) is not checked: S3 does not answer with this validation layer.

install() wraps moto's `BaseResponse.call_action`, the one place where every moto-served or emulated operation
(the SageMaker emulation's UpdateEndpoint among them) is dispatched with its service and operation known.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import regex
from botocore.model import OperationModel, Shape

from mlloop.localcloud import cloudwatch_rules, fidelity

LOG = logging.getLogger("mlloop.localcloud")
_UNCHECKED_SERVICES = frozenset({"s3", "s3control"})
_installed: dict[str, Any] = {}
_refused: Counter[str] = Counter()
_refused_lock = threading.Lock()


class _WrongTypeError(Exception):
    pass


@functools.cache
def _refusal_class() -> type:
    from moto.core.exceptions import ServiceException

    class RequestValidationError(ServiceException):
        """AWS's answer to a request that breaks its operation's service model (defined outside moto's packages,
        so moto's serializer renders the code as given in every protocol)."""

    return RequestValidationError


# Java patterns write a supplementary character as its UTF-16 surrogate pair (`\uD800\uDC00` is U+10000).
_SURROGATE_PAIR = regex.compile(r"\\u(D[89AB][0-9A-F]{2})\\u(D[C-F][0-9A-F]{2})", regex.IGNORECASE)


def _code_point(match: Any) -> str:
    high, low = int(match.group(1), 16), int(match.group(2), 16)
    return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"


# Java's `.` matches anything but a line terminator (java.util.regex.Pattern: \n, \r, \u0085, \u2028, \u2029);
# Python's only excludes \n.
_JAVA_DOT = "[^\\n\\r\\u0085\\u2028\\u2029]"


def _java_dots(pattern: str) -> str:
    """`pattern` with each `.` outside a character class replaced by Java's meaning of it."""
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if char == "[":
            depth += 1
        elif char == "]" and depth:
            depth -= 1
        out.append(_JAVA_DOT if char == "." and depth == 0 else char)
        i += 1
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def _compiled(pattern: str) -> Any:
    try:
        return regex.compile(_java_dots(_SURROGATE_PAIR.sub(_code_point, pattern)))
    except regex.error as exc:
        LOG.warning("local cloud: service-model pattern %r cannot be compiled (%s); not applied", pattern, exc)
        return None


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


def _render(value: Any) -> str:
    """A value as AWS's (Java) messages print it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_render(k)}={_render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    if isinstance(value, bytes):
        return "java.nio.HeapByteBuffer"
    return str(value)


def _scalar_constraints(shape: Shape, value: Any) -> list[str]:
    """The constraints a string, blob, number, list or map value breaks, in AWS's words."""
    meta = shape.metadata
    broken: list[str] = []
    kind = shape.type_name
    if kind in ("string", "blob", "list", "map"):
        size = len(value)
        if "max" in meta and size > meta["max"]:
            broken.append(f"Member must have length less than or equal to {meta['max']}")
        if "min" in meta and size < meta["min"]:
            broken.append(f"Member must have length greater than or equal to {meta['min']}")
    elif kind in ("integer", "long", "float", "double"):
        if "max" in meta and value > meta["max"]:
            broken.append(f"Member must have value less than or equal to {meta['max']}")
        if "min" in meta and value < meta["min"]:
            broken.append(f"Member must have value greater than or equal to {meta['min']}")
    if kind == "string":
        if shape.enum and value not in shape.enum:
            broken.append(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
        pattern = meta.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and compiled.fullmatch(value) is None:
            broken.append(f"Member must satisfy regular expression pattern: {pattern}")
    return broken


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "structure": (Mapping,),
    "map": (Mapping,),
    "list": (list, tuple),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "blob": (bytes, bytearray, str),
    "timestamp": (datetime, str, int, float),
}


def _check(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    expected = _PYTHON_TYPES.get(kind)
    if expected is not None and (not isinstance(value, expected) or (kind != "boolean" and isinstance(value, bool))):
        raise _WrongTypeError(path)
    if kind not in ("structure", "boolean", "timestamp"):
        errors.extend(
            f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: {c}"
            for c in _scalar_constraints(shape, value)
        )
    if kind == "structure":
        for name in shape.required_members:
            if value.get(name) is None:
                errors.append(
                    f"Value null at '{_join(path, name)}' failed to satisfy constraint: Member must not be null"
                )
        for name, member in shape.members.items():
            if value.get(name) is not None:
                _check(member, value[name], _join(path, name), errors)
    elif kind == "list":
        for index, item in enumerate(value, start=1):
            if item is not None:
                _check(shape.member, item, f"{path}.{index}.member", errors)
    elif kind == "map":
        _check_map(shape, value, path, errors)


def _check_map(shape: Shape, value: Mapping[str, Any], path: str, errors: list[str]) -> None:
    key_broken: list[str] = []
    value_broken: list[str] = []
    for key, item in value.items():
        key_broken.extend(c for c in _scalar_constraints(shape.key, key) if c not in key_broken)
        if item is None:
            continue
        if shape.value.type_name in ("structure", "list", "map"):
            _check(shape.value, item, f"{path}.{key}", errors)
        else:
            if not isinstance(item, _PYTHON_TYPES.get(shape.value.type_name, (object,))):
                raise _WrongTypeError(path)
            value_broken.extend(c for c in _scalar_constraints(shape.value, item) if c not in value_broken)
    shown = _render(value)
    if key_broken:
        errors.append(
            f"Value '{shown}' at '{path}' failed to satisfy constraint: "
            f"Map keys must satisfy constraint: [{', '.join(key_broken)}]"
        )
    if value_broken:
        errors.append(
            f"Value '{shown}' at '{path}' failed to satisfy constraint: "
            f"Map value must satisfy constraint: [{', '.join(value_broken)}]"
        )


def _join(path: str, member: str) -> str:
    return f"{path}.{_lower_first(member)}" if path else _lower_first(member)


def validation_errors(operation: OperationModel, params: Mapping[str, Any]) -> list[str]:
    """AWS's validation messages for `params` of `operation`, in member order; empty when the request is valid.

    Raises TypeError (naming the member) when a value has the wrong type for its shape.
    """
    shape = operation.input_shape
    if shape is None:
        return []
    errors: list[str] = []
    try:
        _check(shape, dict(params), "", errors)
    except _WrongTypeError as wrong:
        raise TypeError(f"{operation.name}: the value at '{wrong}' has the wrong type") from None
    return errors


def validation_message(errors: list[str]) -> str:
    noun = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} validation {noun} detected: " + "; ".join(errors)


def _parsed_request(response: Any, operation: OperationModel) -> dict[str, Any] | None:
    """The request's parameters as the service model names them (moto's own protocol parsers), or None."""
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.request import determine_request_protocol

    request = response.normalized_request
    protocol = determine_request_protocol(operation.service_model, request.content_type)
    parser_cls = PROTOCOL_PARSERS.get(protocol)
    if parser_cls is None:
        return None
    parsed = parser_cls(operation, map_type=dict).parse(
        {
            "method": request.method,
            "values": request.values,
            "headers": request.headers,
            "body": request.data,
            "url_path": request.path,
            "url_params": response.uri_match,
        }
    )
    return dict(parsed)


def _refusal(response: Any) -> Any:
    """The ServiceException AWS would answer this request with, or None (also when it cannot be checked)."""
    from moto.core.utils import get_service_model

    service = response.boto3_service_name
    if not service or service in _UNCHECKED_SERVICES:
        return None
    try:
        action = response._get_action()
        if not action:
            return None
        operation = get_service_model(service).operation_model(action)
        params = _parsed_request(response, operation)
    except Exception as exc:  # an operation outside the model, or a body moto's parsers cannot read
        LOG.debug("local cloud: request to %s not validated: %r", service, exc)
        return None
    if params is None:
        return None
    json_protocol = operation.service_model.protocol in ("json", "rest-json")
    refusal = _refusal_class()
    fidelity.record_validated(service, operation.name)
    try:
        errors = validation_errors(operation, params)
    except TypeError as exc:
        _count_refusal(service, operation.name)
        return refusal("SerializationException" if json_protocol else "ValidationError", str(exc))
    if errors:
        _count_refusal(service, operation.name)
        return refusal("ValidationException" if json_protocol else "ValidationError", validation_message(errors))
    rule = _SERVICE_RULES.get((service, operation.name))
    message = rule(params) if rule is not None else None
    if message is None:
        return None
    _count_refusal(service, operation.name)
    code, text = message
    return refusal(code, text)


def _put_metric_data(params: Mapping[str, Any]) -> tuple[str, str] | None:
    message = cloudwatch_rules.put_metric_data_refusal(params)
    return None if message is None else ("InvalidParameterValue", message)


# Rules a service applies beyond its model (documented bounds the model's shapes cannot say), by operation.
_SERVICE_RULES: dict[tuple[str, str], Callable[[Mapping[str, Any]], tuple[str, str] | None]] = {
    ("cloudwatch", "PutMetricData"): _put_metric_data,
}


def _count_refusal(service: str, operation: str) -> None:
    with _refused_lock:
        _refused[f"{service}:{operation}"] += 1


def refused_requests() -> dict[str, int]:
    """Requests refused by validation in this process, per `service:Operation`."""
    with _refused_lock:
        return dict(sorted(_refused.items()))


def _call_action(self: Any) -> Any:
    from moto.core.responses import ActionResult

    refusal = _refusal(self)
    if refusal is None:
        return _installed["call_action"](self)
    status, headers, body = self.serialized(ActionResult(refusal))
    headers["status"] = str(status)
    return status, headers, body


def install() -> None:
    """Validate every request moto dispatches in this process; each install() is matched by an uninstall()."""
    from moto.core.responses import BaseResponse

    if "call_action" not in _installed:
        _installed["call_action"] = BaseResponse.call_action
        BaseResponse.call_action = _call_action  # type: ignore[method-assign]
    _installed["users"] = _installed.get("users", 0) + 1


def uninstall() -> None:
    from moto.core.responses import BaseResponse

    _installed["users"] = max(_installed.get("users", 0) - 1, 0)
    if _installed["users"] == 0 and "call_action" in _installed:
        BaseResponse.call_action = _installed.pop("call_action")  # type: ignore[method-assign]
