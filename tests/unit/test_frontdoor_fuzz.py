"""Property-based fuzzing of POST /predict through the Lambda handler: malformed requests never crash it,
never get a 5xx, every 400 names the field at fault, and nothing invalid reaches the endpoint or the log."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.frontdoor import handler as frontdoor_handler
from functions.frontdoor.validation import MAX_ENTITY_KEY_CHARS, _check_value
from tests.unit.frontdoor_support import CONTRACT, SETTINGS, VALID_RECORD, LambdaContextStub, api_event, make_front_door

FEATURES = {f.name: f for f in CONTRACT.features}
REQUIRED = [f.name for f in CONTRACT.features if not f.nullable]
KNOWN = set(FEATURES) | {CONTRACT.entity_key, CONTRACT.event_timestamp}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def wrong_values(name: str) -> st.SearchStrategy[Any]:
    """Values that break the contract for this feature, and only such values."""
    f = FEATURES[name]
    nested = st.lists(json_scalars, max_size=2) | st.dictionaries(st.text(max_size=5), json_scalars, max_size=2)
    if f.type == "boolean":
        return st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=10), nested)
    if f.type == "categorical":
        unknown = st.text(max_size=20).filter(lambda s: s not in f.categories)
        return st.one_of(unknown, st.integers(), st.booleans(), st.floats(allow_nan=False), nested)
    assert f.min is not None and f.max is not None
    too_low = st.floats(max_value=f.min - 0.5, allow_nan=False, allow_infinity=False)
    too_high = st.floats(min_value=f.max + 0.5, allow_nan=False, allow_infinity=False)
    wrong = [too_low, too_high, st.text(max_size=10), st.booleans(), nested]
    if f.type == "integer":
        wrong.append(st.floats(min_value=f.min, max_value=f.max).filter(lambda x: not float(x).is_integer()))
    return st.one_of(*wrong)


@st.composite
def bad_record(draw: st.DrawFn) -> tuple[dict[str, Any], set[str]]:
    """A record with one to three faults, and the field names those faults must be reported under."""
    record = dict(VALID_RECORD)
    expected: set[str] = set()
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["drop", "unknown", "wrong", "null", "nonfinite"]))
        if kind == "drop":
            name = draw(st.sampled_from(REQUIRED))
            record.pop(name, None)
        elif kind == "unknown":
            # Printable names: unprintable ones are escaped in the 400 (a caller's name is echoed only as text).
            name = draw(st.text(min_size=1, max_size=12).filter(lambda s: s not in KNOWN and s.isprintable()))
            record[name] = draw(json_values)
        elif kind == "wrong":
            name = draw(st.sampled_from(list(FEATURES)))
            record[name] = draw(wrong_values(name))
        elif kind == "null":
            name = draw(st.sampled_from(REQUIRED))
            record[name] = None
        else:
            name = draw(st.sampled_from([n for n, f in FEATURES.items() if f.is_numeric]))
            record[name] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        expected.add(name)
    return record, expected


@st.composite
def malformed_request(draw: st.DrawFn) -> tuple[str, set[str]]:
    """A request body that must be rejected, and the field paths the 400 must name (any one of them)."""
    shape = draw(st.sampled_from(["single", "batch", "too_many", "not_object", "not_json", "bad_envelope"]))
    if shape == "single":
        record, expected = draw(bad_record())
        return json.dumps(record), expected
    if shape == "batch":
        size = draw(st.integers(1, SETTINGS.max_batch_records))
        bad_at = draw(st.integers(0, size - 1))
        record, expected = draw(bad_record())
        records = [dict(VALID_RECORD) for _ in range(size)]
        records[bad_at] = record
        return json.dumps({"instances": records}), {f"instances[{bad_at}].{name}" for name in expected}
    if shape == "too_many":
        size = draw(st.integers(SETTINGS.max_batch_records + 1, SETTINGS.max_batch_records + 20))
        return json.dumps({"instances": [VALID_RECORD] * size}), {"instances"}
    if shape == "not_object":
        value = draw(json_values.filter(lambda v: not isinstance(v, dict)))
        return json.dumps(value), {"body"}
    if shape == "not_json":
        text = draw(st.text(max_size=40).filter(lambda s: not _is_json(s)))
        return text, {"body"}
    envelope = draw(
        st.one_of(
            st.just({"instances": []}),
            json_scalars.map(lambda v: {"instances": v}),
            st.dictionaries(
                st.text(min_size=1, max_size=8).filter(lambda k: k != "instances"), json_values, min_size=1
            ).map(lambda d: {"instances": [VALID_RECORD], **d}),
        )
    )
    return json.dumps(envelope), set()


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def door() -> Any:
    front_door = make_front_door()
    previous = frontdoor_handler._front_door
    frontdoor_handler._front_door = front_door
    yield front_door
    frontdoor_handler._front_door = previous


@settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(case=malformed_request())
def test_malformed_requests_get_a_400_that_names_the_field(door: Any, case: tuple[str, set[str]]) -> None:
    body, expected = case
    response = frontdoor_handler.handler(api_event("POST", "/predict", body), LambdaContextStub())
    assert response["statusCode"] == 400, response["body"]
    answer = json.loads(response["body"])
    fields = answer["fields"]
    assert fields and all(isinstance(k, str) and k and v for k, v in fields.items())
    if expected:
        assert expected & set(fields), (expected, fields)


def valid_value(name: str) -> st.SearchStrategy[Any]:
    f = FEATURES[name]
    if f.type == "boolean":
        values: st.SearchStrategy[Any] = st.booleans()
    elif f.type == "categorical":
        values = st.sampled_from(list(f.categories))
    elif f.type == "integer":
        values = st.integers(int(f.min or 0), int(f.max or 10**6))
    else:
        values = st.floats(f.min, f.max, allow_nan=False)
    return st.none() | values if f.nullable else values


valid_records = st.fixed_dictionaries({name: valid_value(name) for name in FEATURES})


@st.composite
def any_body(draw: st.DrawFn) -> str | bytes:
    """Valid records, malformed ones, duplicate keys, stray tokens, raw text and raw bytes."""
    kind = draw(st.sampled_from(["valid", "batch", "malformed", "duplicate", "token", "text", "bytes", "mutated"]))
    if kind == "valid":
        record = draw(valid_records)
        if draw(st.booleans()):
            record[CONTRACT.entity_key] = draw(st.text(max_size=20) | st.integers())
        return json.dumps(record)
    if kind == "batch":
        return json.dumps({"instances": draw(st.lists(valid_records, min_size=1, max_size=SETTINGS.max_batch_records))})
    if kind == "malformed":
        return draw(malformed_request())[0]
    if kind == "duplicate":
        record = draw(valid_records)
        name = draw(st.sampled_from(list(FEATURES)))
        first = json.dumps(draw(json_values | wrong_values(name)))
        return "{" + json.dumps(name) + ": " + first + ", " + json.dumps(record)[1:]
    if kind == "token":
        text = json.dumps(draw(valid_records))
        name = draw(st.sampled_from([n for n, f in FEATURES.items() if f.is_numeric]))
        token = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-0", "0x10", "1_000"]))
        return text.replace(f'"{name}": ', f'"{name}": {token}, "_": ', 1)
    if kind == "text":
        return draw(st.text(max_size=200))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    text = json.dumps(draw(valid_records))
    at = draw(st.integers(0, len(text)))
    return text[:at] + draw(st.text(max_size=4)) + text[at + draw(st.integers(0, 4)) :]


def _assert_valid_record(record: dict[str, Any]) -> None:
    assert list(record) == list(FEATURES), "every feature, in contract order, nothing else"
    for name, value in record.items():
        assert _check_value(FEATURES[name], value) is None, (name, value)


@settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    body=any_body(),
    content_type=st.sampled_from([None, "application/json", "application/json; charset=utf-8", "text/plain"]),
)
def test_no_request_raises_or_sends_an_invalid_value_to_the_endpoint_or_the_log(
    door: Any, body: str | bytes, content_type: str | None
) -> None:
    import base64

    sent: list[bytes] = []
    endpoint = door.invoker
    original = type(endpoint).invoke

    def recording(endpoint_name: str, payload: bytes) -> Any:
        sent.append(payload)
        return original(endpoint, endpoint_name, payload)

    door.invoker = type("Recording", (), {"invoke": staticmethod(recording)})()
    logged_before = len(door.prediction_log.entries)
    try:
        event = api_event("POST", "/predict", body if isinstance(body, str) else base64.b64encode(body).decode())
        event["isBase64Encoded"] = isinstance(body, bytes)
        event["headers"] = {} if content_type is None else {"Content-Type": content_type}
        response = frontdoor_handler.handler(event, LambdaContextStub())
    finally:
        door.invoker = endpoint
    assert response["statusCode"] in (200, 400, 413, 415), response
    json.loads(response["body"])
    for payload in sent:
        for record in json.loads(payload)["instances"]:
            _assert_valid_record(record)
    for row in door.prediction_log.entries[logged_before:]:
        _assert_valid_record(json.loads(row["features"]))
        entity = row[CONTRACT.entity_key]
        assert entity is None or (isinstance(entity, str) and len(entity) <= MAX_ENTITY_KEY_CHARS)
    if response["statusCode"] != 200:
        assert not sent and len(door.prediction_log.entries) == logged_before
