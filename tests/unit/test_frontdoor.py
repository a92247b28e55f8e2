"""Front door: validation messages, endpoint faults answered by the fallback, the circuit breaker, the routes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.frontdoor import handler as frontdoor_handler
from functions.frontdoor.logic import EndpointCallError
from functions.frontdoor.validation import RequestRejectedError, RequestValidator
from functions.shared.contract import parse_contract
from tests.unit.frontdoor_support import (
    SETTINGS,
    VALID_RECORD,
    LambdaContextStub,
    RecordingLog,
    RecordingTelemetry,
    ScriptedEndpoint,
    api_event,
    make_front_door,
    manifest,
)

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def _predict(body: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    door = make_front_door(**kwargs)
    text = body if isinstance(body, str) else json.dumps(body)
    answer = door.predict(text, request_id="r1", correlation_id="c1")
    return answer.status, answer.body


# --- validation ---------------------------------------------------------------------------------------------


def test_a_valid_record_is_answered_by_the_endpoint_with_version_variant_and_request_id() -> None:
    status, body = _predict(VALID_RECORD)
    assert status == 200
    assert body["fallback"] is False
    assert body["model_version"] == "v3" and body["variant"] == "v3" and body["request_id"] == "r1"
    assert body["predictions"] == [{"probability": 0.25, "label": 0}]


def test_a_batch_gets_one_prediction_per_record() -> None:
    status, body = _predict({"instances": [VALID_RECORD] * 4})
    assert status == 200
    assert len(body["predictions"]) == 4


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"tenure_months": None}, "tenure_months", "must not be null"),
        ({"tenure_months": "12"}, "tenure_months", "expected an integer"),
        ({"tenure_months": 12.5}, "tenure_months", "expected an integer"),
        ({"tenure_months": True}, "tenure_months", "expected an integer"),
        ({"tenure_months": 241}, "tenure_months", "out of range"),
        ({"monthly_charges": -1}, "monthly_charges", "out of range"),
        ({"plan": "gold"}, "plan", "unknown category"),
        ({"plan": 3}, "plan", "expected a string"),
        ({"auto_renew": 1}, "auto_renew", "expected true or false"),
        ({"favourite_colour": "blue"}, "favourite_colour", "unknown field"),
        ({"churned": 1}, "churned", "unknown field"),
    ],
)
def test_each_bad_field_gets_a_400_naming_it(change: dict[str, Any], field: str, words: str) -> None:
    status, body = _predict({**VALID_RECORD, **change})
    assert status == 400
    assert words in body["fields"][field]


def test_a_missing_required_field_is_named_but_an_omitted_nullable_one_is_accepted() -> None:
    record = {k: v for k, v in VALID_RECORD.items() if k not in ("plan", "total_charges")}
    status, body = _predict(record)
    assert status == 400
    assert body["fields"] == {"plan": "required field is missing"}


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected(token: str) -> None:
    text = json.dumps(VALID_RECORD).replace('"monthly_charges": 70.5', f'"monthly_charges": {token}')
    status, body = _predict(text)
    assert status == 400
    assert "finite" in body["fields"]["monthly_charges"]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected_for_a_feature_without_bounds_too(token: str) -> None:
    contract = manifest().contract
    unbounded = [
        {k: v for k, v in f.items() if k not in ("min", "max")} if f["name"] == "monthly_charges" else f
        for f in contract["features"]
    ]
    validator = RequestValidator(
        parse_contract({**contract, "features": unbounded}), max_records=10, max_body_bytes=100_000
    )
    text = json.dumps(VALID_RECORD).replace('"monthly_charges": 70.5', f'"monthly_charges": {token}')
    with pytest.raises(RequestRejectedError) as rejected:
        validator.parse(text)
    assert "finite" in rejected.value.errors.fields["monthly_charges"]


def test_batch_errors_name_the_record_and_the_field() -> None:
    status, body = _predict({"instances": [VALID_RECORD, {**VALID_RECORD, "region": "moon"}]})
    assert status == 400
    assert list(body["fields"]) == ["instances[1].region"]


def test_too_many_records_is_a_400_on_instances() -> None:
    status, body = _predict({"instances": [VALID_RECORD] * 11})
    assert status == 400
    assert "more than the 10 allowed" in body["fields"]["instances"]


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '"a string"', '{"instances": []}', '{"instances": 3}'])
def test_malformed_bodies_are_400_naming_body_or_instances(text: str) -> None:
    status, body = _predict(text)
    assert status == 400
    assert set(body["fields"]) <= {"body", "instances"}


def test_validation_errors_are_counted_by_contract_field_not_by_caller_chosen_name() -> None:
    door = make_front_door()
    door.predict(json.dumps({**VALID_RECORD, "plan": "gold", "x1": 1}), request_id="r", correlation_id="c")
    assert isinstance(door.telemetry, RecordingTelemetry)
    assert door.telemetry.rejected == [{"plan", "unknown_field"}]


# --- endpoint faults and the fallback ------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["model_error", "throttling", "timeout", "endpoint_missing"])
def test_each_endpoint_fault_is_answered_by_the_fallback_with_its_reason(reason: str) -> None:
    faults = [EndpointCallError(reason, "injected") for _ in range(3)]  # type: ignore[arg-type]
    status, body = _predict(VALID_RECORD, endpoint=ScriptedEndpoint(faults=faults))
    assert status == 200
    assert body["fallback"] is True and body["fallback_reason"] == reason
    assert body["variant"] == "fallback" and body["model_version"] == "v3" and body["request_id"] == "r1"
    probability = body["predictions"][0]["probability"]
    assert 0.0 < probability < 1.0
    assert body["predictions"][0]["label"] == int(probability >= 0.4)


def test_a_throttled_call_is_retried_once_and_then_succeeds() -> None:
    endpoint = ScriptedEndpoint(faults=[EndpointCallError("throttling", "slow down")])
    status, body = _predict(VALID_RECORD, endpoint=endpoint)
    assert status == 200 and body["fallback"] is False
    assert endpoint.calls == 2


def test_a_model_error_is_not_retried() -> None:
    endpoint = ScriptedEndpoint(faults=[EndpointCallError("model_error", "boom")])
    _predict(VALID_RECORD, endpoint=endpoint)
    assert endpoint.calls == 1


def test_a_reply_outside_the_wire_format_is_a_model_error() -> None:
    class Garbage(ScriptedEndpoint):
        def invoke(self, endpoint_name: str, body: bytes) -> Any:
            from functions.frontdoor.logic import EndpointAnswer

            return EndpointAnswer(body=b"body", variant="v3")

    _, body = _predict(VALID_RECORD, endpoint=Garbage())
    assert body["fallback_reason"] == "model_error"


def test_without_a_fallback_model_a_fault_is_a_clear_503() -> None:
    endpoint = ScriptedEndpoint(faults=[EndpointCallError("endpoint_missing", "gone")])
    status, body = _predict(VALID_RECORD, endpoint=endpoint, deployed=manifest(fallback=False))
    assert status == 503
    assert body["reason"] == "endpoint_missing" and "no fallback" in body["error"]


def test_before_any_deploy_predict_is_503_and_model_is_404() -> None:
    door = make_front_door()
    door.manifests.value = None  # type: ignore[attr-defined]
    assert door.predict(json.dumps(VALID_RECORD), request_id="r", correlation_id="c").status == 503
    assert door.model(request_id="r").status == 404
    assert door.health(request_id="r").body["status"] == "no_model"


def test_fallback_answers_are_counted_by_reason_and_logged_with_the_correlation_id() -> None:
    door = make_front_door(endpoint=ScriptedEndpoint(faults=[EndpointCallError("model_error", "x")]))
    door.predict(json.dumps(VALID_RECORD), request_id="r9", correlation_id="corr-9")
    assert isinstance(door.telemetry, RecordingTelemetry) and isinstance(door.prediction_log, RecordingLog)
    assert door.telemetry.answered[0]["fallback_reason"] == "model_error"
    entry = door.prediction_log.entries[0]
    assert entry["correlation_id"] == "corr-9" and entry["request_id"] == "r9" and entry["fallback"] is True
    assert entry["endpoint_name"] == door.settings.endpoint_name  # whose answer, in the stage's shared table


def test_an_answer_from_a_newer_model_asks_for_the_manifest_to_be_re_read() -> None:
    door = make_front_door(endpoint=ScriptedEndpoint(version="v4", variant="v4"))
    answer = door.predict(json.dumps(VALID_RECORD), request_id="r", correlation_id="c")
    assert answer.body["model_version"] == "v4"
    assert door.manifests.refreshes == 1  # type: ignore[attr-defined]


def test_a_new_manifest_swaps_the_contract_used_for_validation() -> None:
    door = make_front_door()
    assert (
        door.predict(json.dumps({**VALID_RECORD, "tenure_months": 300}), request_id="r", correlation_id="c").status
        == 400
    )
    wider = manifest("v4")
    features = [dict(f, max=1000) if f["name"] == "tenure_months" else f for f in wider.contract["features"]]
    door.manifests.value = type(wider)(**{**wider.__dict__, "contract": {**wider.contract, "features": features}})  # type: ignore[attr-defined]
    assert (
        door.predict(json.dumps({**VALID_RECORD, "tenure_months": 300}), request_id="r", correlation_id="c").status
        == 200
    )


# --- routes through the Lambda handler ----------------------------------------------------------------------


@pytest.fixture
def installed_front_door(monkeypatch: pytest.MonkeyPatch) -> Any:
    door = make_front_door()
    monkeypatch.setattr(frontdoor_handler, "_front_door", door)
    return door


def test_handler_routes_predict_health_and_model(installed_front_door: Any) -> None:
    ctx = LambdaContextStub()
    predicted = frontdoor_handler.handler(api_event("POST", "/predict", json.dumps(VALID_RECORD), "api-7"), ctx)
    assert predicted["statusCode"] == 200
    assert json.loads(predicted["body"])["request_id"] == "api-7"
    assert predicted["multiValueHeaders"]["X-Request-Id"] == ["api-7"]
    assert installed_front_door.prediction_log.entries[0]["correlation_id"] == "corr-1"
    health = frontdoor_handler.handler(api_event("GET", "/health"), ctx)
    assert json.loads(health["body"])["status"] == "ok"
    model = json.loads(frontdoor_handler.handler(api_event("GET", "/model"), ctx)["body"])
    assert model["model_version"] == "v3" and model["contract"]["dataset"] == "churn"


def test_log_lines_carry_the_callers_correlation_id_or_else_the_request_id(installed_front_door: Any) -> None:
    ctx = LambdaContextStub()
    frontdoor_handler.handler(api_event("POST", "/predict", json.dumps(VALID_RECORD), "api-8"), ctx)
    assert frontdoor_handler.logger.get_correlation_id() == "corr-1"
    anonymous = api_event("GET", "/health", request_id="api-9")
    anonymous["headers"] = {"content-type": "application/json"}
    frontdoor_handler.handler(anonymous, ctx)
    assert frontdoor_handler.logger.get_correlation_id() == "api-9"


def test_the_front_door_module_imports_no_pandas_numpy_or_sklearn() -> None:
    import subprocess
    import sys

    code = (
        "import sys, functions.frontdoor.handler;"
        "print(','.join(m for m in ('pandas','numpy','sklearn','scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_the_endpoint_gets_features_only_whether_or_not_the_body_is_forwarded_as_is() -> None:
    seen: list[dict[str, Any]] = []

    class Recording(ScriptedEndpoint):
        def invoke(self, endpoint_name: str, body: bytes) -> Any:
            seen.append(json.loads(body))
            return super().invoke(endpoint_name, body)

    door = make_front_door(endpoint=Recording())
    with_key = {**VALID_RECORD, "customer_id": "c-1"}
    without_nullable = {k: v for k, v in VALID_RECORD.items() if k != "payment_method"}
    for body in (VALID_RECORD, {"instances": [VALID_RECORD, VALID_RECORD]}, with_key, without_nullable):
        assert door.predict(json.dumps(body), request_id="r", correlation_id="c").status == 200
    assert [len(s["instances"]) for s in seen] == [1, 2, 1, 1]
    assert all(set(r) == set(VALID_RECORD) for s in seen for r in s["instances"])
    assert seen[3]["instances"][0]["payment_method"] is None


# --- strict JSON, canonical values, content type ------------------------------------------------------------


def _body_error(text: str | bytes, **kwargs: Any) -> str:
    door = make_front_door(**kwargs)
    answer = door.predict(text, request_id="r", correlation_id="c")
    assert answer.status == 400, answer
    return str(answer.body["fields"]["body"])


def test_a_duplicate_key_is_refused_even_when_the_last_copy_is_valid() -> None:
    fields = ", ".join(f'"{k}": {json.dumps(v)}' for k, v in VALID_RECORD.items())
    text = '{"tenure_months": 99999, "monthly_charges": NaN, ' + fields + "}"
    assert "duplicate key 'tenure_months'" in _body_error(text)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({**VALID_RECORD, "plan": "\ud800"}),  # an escaped lone surrogate
        json.dumps({**VALID_RECORD, "plan": "x"}).replace('"x"', '"\ud800"'),  # a raw one in the text
        json.dumps({**VALID_RECORD, "\udcff": 1}),
    ],
)
def test_a_lone_surrogate_is_a_400_not_an_exception(text: str) -> None:
    assert "not valid UTF-8" in _body_error(text)


def test_a_body_that_is_not_utf8_is_a_400_naming_the_byte() -> None:
    raw = json.dumps({**VALID_RECORD, "plan": "standard"}).encode().replace(b"standard", b"stand\xffard")
    assert "byte" in _body_error(raw) and "UTF-8" in _body_error(raw)


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("Application/JSON; charset=UTF-8", 200),
        (None, 200),
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        ("application/json; charset=latin-1", 415),
        ("application/jsonp", 415),
    ],
)
def test_only_json_is_accepted(content_type: str | None, status: int) -> None:
    door = make_front_door()
    answer = door.predict(json.dumps(VALID_RECORD), request_id="r", correlation_id="c", content_type=content_type)
    assert answer.status == status
    if status == 415:
        assert "application/json" in answer.body["error"]
        assert isinstance(door.telemetry, RecordingTelemetry) and door.telemetry.rejected == [{"content_type"}]


def test_a_non_json_content_type_is_a_415_through_the_handler(installed_front_door: Any) -> None:
    event = api_event("POST", "/predict", json.dumps(VALID_RECORD))
    event["headers"] = {"Content-Type": "text/plain"}
    response = frontdoor_handler.handler(event, LambdaContextStub())
    assert response["statusCode"] == 415


def test_a_base64_body_is_checked_as_bytes_through_the_handler(installed_front_door: Any) -> None:
    import base64

    event = api_event("POST", "/predict", base64.b64encode(b'{"plan": "\xff"}').decode())
    event["isBase64Encoded"] = True
    response = frontdoor_handler.handler(event, LambdaContextStub())
    assert response["statusCode"] == 400
    assert "UTF-8" in json.loads(response["body"])["fields"]["body"]


def test_echoed_names_and_values_are_truncated_and_their_number_bounded() -> None:
    door = make_front_door()
    huge = "k" * 100_000
    answer = door.predict(json.dumps({**VALID_RECORD, huge: 1}), request_id="r", correlation_id="c")
    assert answer.status == 400
    assert max(len(name) for name in answer.body["fields"]) < 100
    many = {**VALID_RECORD, **{f"extra{i}": i for i in range(200)}}
    wide = make_front_door(settings=type(SETTINGS)(**{**SETTINGS.__dict__, "max_record_bytes": 100_000}))
    answer = wide.predict(json.dumps(many), request_id="r", correlation_id="c")
    assert answer.status == 400 and len(answer.body["fields"]) <= 26 and "more" in answer.body["fields"]
    long_int = {**VALID_RECORD, "tenure_months": 10**200}
    answer = door.predict(json.dumps(long_int), request_id="r", correlation_id="c")
    assert len(answer.body["fields"]["tenure_months"]) < 120


@pytest.mark.parametrize("entity", [["a"], {"a": 1}, 1.5, True, "", "x" * 200, "line\nbreak"])
def test_the_entity_key_rides_along_only_as_an_identifier(entity: Any) -> None:
    status, body = _predict({**VALID_RECORD, "customer_id": entity})
    assert status == 400 and "customer_id" in body["fields"]


def test_the_endpoint_and_the_log_get_values_reserialised_from_the_validated_record() -> None:
    seen: list[bytes] = []

    class Recording(ScriptedEndpoint):
        def invoke(self, endpoint_name: str, body: bytes) -> Any:
            seen.append(body)
            return super().invoke(endpoint_name, body)

    door = make_front_door(endpoint=Recording())
    # The caller's spelling: whitespace, key order, an exponent, an escaped letter; with and without the entity key
    # (a record of exactly the contract's keys was once forwarded as the caller's text).
    for extra in ({}, {"customer_id": "c-1"}):
        reordered = dict(reversed(list({**VALID_RECORD, **extra}.items())))
        text = json.dumps(reordered, indent=3).replace('"standard"', '"st\\u0061ndard"').replace("846.0", "8.46e2")
        assert door.predict(text, request_id="r", correlation_id="c").status == 200
    canonical = json.dumps({"instances": [VALID_RECORD]}, separators=(",", ":")).encode()
    assert seen == [canonical, canonical]
    assert isinstance(door.prediction_log, RecordingLog)
    rows = door.prediction_log.entries
    assert [row["features"] for row in rows] == [json.dumps(VALID_RECORD, separators=(",", ":"))] * 2
    assert [row["customer_id"] for row in rows] == [None, "c-1"]
