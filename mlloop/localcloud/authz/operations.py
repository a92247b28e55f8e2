"""Which operation an HTTP request to the embedded AWS calls, and its parameters, from botocore's models.

JSON protocols name the operation in X-Amz-Target, query protocols in the Action parameter, RPC v2 CBOR in
the path; REST protocols are matched against each operation's `requestUri` template and method.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any
from urllib.parse import parse_qsl, unquote

import botocore.session
from botocore.model import OperationModel, ServiceModel
from botocore.parsers import RpcV2CBORParser

# Signing name -> botocore service names that sign with it.
_SERVICES_BY_SIGNING_NAME = {
    "s3": ("s3",),
    "sagemaker": ("sagemaker", "sagemaker-runtime"),
    "states": ("stepfunctions",),
    "sns": ("sns",),
    "sqs": ("sqs",),
    "events": ("events",),
    "lambda": ("lambda",),
    "monitoring": ("cloudwatch",),
    "logs": ("logs",),
    "kms": ("kms",),
    "dynamodb": ("dynamodb",),
    "ssm": ("ssm",),
    "glue": ("glue",),
    "sts": ("sts",),
    "iam": ("iam",),
    "apigateway": ("apigateway",),
    "ecr": ("ecr",),
    "xray": ("xray",),
    "sagemaker-featurestore-runtime": ("sagemaker-featurestore-runtime",),
}


@dataclass
class Operation:
    service: str  # botocore's service name
    name: str  # the operation's name in the model
    protocol: str
    params: dict[str, Any] = field(default_factory=dict)
    model: ServiceModel | None = None


@cache
def service_model(service: str) -> ServiceModel:
    return botocore.session.get_session().get_service_model(service)


def protocol_of(signing_name: str) -> str:
    names = _SERVICES_BY_SIGNING_NAME.get(signing_name)
    return service_model(names[0]).protocol if names else "json"


@lru_cache(maxsize=1)
def _signing_names_by_target_prefix() -> dict[str, str]:
    found = {}
    for signing_name, services in _SERVICES_BY_SIGNING_NAME.items():
        for service in services:
            prefix = service_model(service).metadata.get("targetPrefix")
            if prefix:
                found[prefix] = signing_name
    return found


def expected_signing_name(headers: dict[str, str], path: str) -> str | None:
    """The service a request is addressed to, where the request itself says so (X-Amz-Target, RPC v2 path)."""
    target = headers.get("x-amz-target", "")
    if target:
        return _signing_names_by_target_prefix().get(target.rsplit(".", 1)[0])
    if path.startswith("/service/") and "/operation/" in path:
        return _signing_names_by_target_prefix().get(path.split("/")[2])
    return None


def request_content(headers: dict[str, str], body: bytes) -> bytes:
    """The body as the service reads it: SDKs gzip large PutMetricData bodies (the operation's
    `requestcompression` trait) and say so in Content-Encoding; the signature covers the compressed bytes."""
    if "gzip" in headers.get("content-encoding", "").lower() and body[:2] == b"\x1f\x8b":
        return gzip.decompress(body)
    return body


def request_protocol(signing_name: str, *, headers: dict[str, str], path: str, query: str, body: bytes) -> str:
    """The protocol a request speaks (a service may accept several, e.g. CloudWatch: CBOR, JSON and query)."""
    body = request_content(headers, body)
    if headers.get("x-amz-target"):
        return "json"
    if headers.get("smithy-protocol") == "rpc-v2-cbor" or (path.startswith("/service/") and "/operation/" in path):
        return "smithy-rpc-v2-cbor"
    if "Action=" in query or body[:7] == b"Action=" or b"&Action=" in body[:2000]:
        return "query"
    return "rest"  # REST protocols (rest-json, rest-xml): the method and path name the operation


@cache
def _rest_routes(service: str) -> list[tuple[str, re.Pattern[str], tuple[str, ...], int, OperationModel]]:
    model = service_model(service)
    routes = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        http = operation.http
        path, _, query = http.get("requestUri", "/").partition("?")
        pattern = ""
        literal = 0
        for part in re.split(r"(\{[^}]+\})", path):
            if part.startswith("{"):
                greedy = part.endswith("+}")
                pattern += f"(?P<{_group(part)}>{'.+' if greedy else '[^/]+'})"
            else:
                pattern += re.escape(part)
                literal += len(part)
        keys = tuple(q.split("=")[0] for q in query.split("&") if q)
        routes.append((http.get("method", "POST"), re.compile(f"^{pattern}/?$"), keys, literal, operation))
    return routes


def _required_locations(operation: OperationModel) -> list[tuple[str, str]]:
    """Required members sent as a header or a query parameter: (location, wire name)."""
    shape = operation.input_shape
    if shape is None:
        return []
    found = []
    for member in shape.required_members:
        serialization = shape.members[member].serialization
        if serialization.get("location") in ("header", "querystring"):
            found.append((serialization["location"], serialization.get("name", member)))
    return found


def _group(placeholder: str) -> str:
    return re.sub(r"\W", "_", placeholder.strip("{}+"))


def identify(
    signing_name: str, *, method: str, path: str, query: str, headers: dict[str, str], body: bytes
) -> Operation | None:
    """The operation a request calls; None if no model of the signing service describes it."""
    body = request_content(headers, body)
    names = _SERVICES_BY_SIGNING_NAME.get(signing_name, ())
    target = headers.get("x-amz-target", "")
    form = dict(parse_qsl(query, keep_blank_values=True))
    protocol = request_protocol(signing_name, headers=headers, path=path, query=query, body=body)
    for service in names:
        model = service_model(service)
        if target and protocol == "json":
            name = target.rsplit(".", 1)[-1]
            if name in model.operation_names:
                return Operation(service, name, protocol, _json(body), model)
        if protocol == "smithy-rpc-v2-cbor" and "/operation/" in path:
            name = path.rsplit("/operation/", 1)[-1]
            if name in model.operation_names:
                return Operation(service, name, protocol, _cbor(body), model)
        if protocol == "query":
            params = form | (dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)) if body else {})
            if params.get("Action") in model.operation_names:
                return Operation(service, params["Action"], protocol, params, model)
        if protocol == "rest" and model.protocol in ("rest-json", "rest-xml"):
            found = _match_rest(service, method=method, path=path, form=form, body=body, headers=headers)
            if found is not None:
                return found
    return None


def _match_rest(
    service: str, *, method: str, path: str, form: dict[str, str], body: bytes, headers: dict[str, str]
) -> Operation | None:
    best: tuple[int, int, OperationModel, dict[str, str]] | None = None
    for route_method, pattern, keys, literal, operation in _rest_routes(service):
        if route_method != method:
            continue
        if not all(k in form for k in keys):
            continue
        if any(
            (name.lower() not in headers) if location == "header" else (name not in form)
            for location, name in _required_locations(operation)
        ):
            continue  # e.g. CopyObject is PutObject's route plus x-amz-copy-source, AbortMultipartUpload needs uploadId
        match = pattern.match(path)
        if match is None:
            continue
        rank = (len(keys), literal)
        if best is None or rank > best[:2]:
            best = (*rank, operation, {k: unquote(v) for k, v in match.groupdict().items()})
    if best is None:
        return None
    operation = best[2]
    params: dict[str, Any] = {}
    members = operation.input_shape.members if operation.input_shape is not None else {}
    by_location: dict[str, str] = {}
    for member, shape in members.items():
        location = shape.serialization.get("location")
        name = shape.serialization.get("name", member)
        if location == "uri":
            by_location[_group(name)] = member
        elif location == "querystring" and name in form:
            params[member] = form[name]
        elif location == "header" and name.lower() in headers:
            params[member] = headers[name.lower()]
    for group, value in best[3].items():
        params[by_location.get(group, group)] = value
    if service_model(service).protocol == "rest-json" and body[:1] == b"{":
        params |= _json(body)
    return Operation(service, operation.name, service_model(service).protocol, params, service_model(service))


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _cbor(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        value = RpcV2CBORParser().parse_data_item(io.BufferedReader(io.BytesIO(body)))
    except Exception:
        return {}
    return value if isinstance(value, dict) else {}
