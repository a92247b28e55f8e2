"""The serving stack as synthesized: deploy on approval with the stage's guardrails and rollback alarms, an
IAM-authenticated throttled API in front of the front door, and scheduled batch scoring."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import StageConfig, load_stage_config, read_cdk_json_context
from mlloop.assembly import load_template, synthesize

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("synth")]
STAGES = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    synthesize()
    return {stage: load_template(f"mlloop-{stage}-serving") for stage in STAGES}


@pytest.fixture(scope="module")
def configs() -> dict[str, StageConfig]:
    context = read_cdk_json_context()
    return {stage: load_stage_config(context, stage) for stage in STAGES}


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def function(template: dict[str, Any], name: str) -> dict[str, Any]:
    for res in resources(template, "AWS::Lambda::Function").values():
        if res["Properties"].get("Handler") == f"functions.{name}.handler.handler":
            return dict(res["Properties"])
    raise AssertionError(f"no {name} function")


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["AlarmName"]: r["Properties"] for r in resources(template, "AWS::CloudWatch::Alarm").values()
    }


@pytest.mark.parametrize("stage", STAGES)
def test_the_deploy_function_gets_the_stages_guardrails_and_the_rollback_alarm_names(
    templates: dict[str, dict[str, Any]], configs: dict[str, StageConfig], stage: str
) -> None:
    config = configs[stage]
    env = function(templates[stage], "deploy_model")["Environment"]["Variables"]
    d = config.deployment
    assert env["DEPLOYMENT_MODE"] == d.mode
    assert env["CANARY_PERCENT"] == str(d.canary_percent)
    assert env["WAIT_SECONDS"] == str(d.wait_seconds)
    assert env["TERMINATION_WAIT_SECONDS"] == str(d.termination_wait_seconds)
    assert env["MAX_EXECUTION_SECONDS"] == str(d.max_execution_seconds)
    assert env["DATA_CAPTURE_PERCENT"] == str(config.endpoint.data_capture_percent)
    assert env["ENDPOINT_NAME"] == config.endpoint_name
    assert env["MODEL_PACKAGE_GROUP"] == config.model_package_group
    assert env["ROLLBACK_ALARM_NAMES"].split(",") == [
        f"{config.prefix}-serving-5xx",
        f"{config.prefix}-serving-latency-p99",
        f"{config.prefix}-serving-fallback-rate",
    ]


@pytest.mark.parametrize(("stage", "standby"), [("dev", "0"), ("staging", "2"), ("prod", "2")])
def test_the_standby_is_on_where_the_stage_pays_for_it_and_the_deploy_function_may_switch_weights(
    templates: dict[str, dict[str, Any]], configs: dict[str, StageConfig], stage: str, standby: str
) -> None:
    env = function(templates[stage], "deploy_model")["Environment"]["Variables"]
    assert env["STANDBY_INSTANCE_COUNT"] == standby, "dev keeps no idle instance by default"
    assert env["FAST_ROLLBACK_WINDOW_HOURS"] == str(configs[stage].rollback.window_hours)
    statements = [
        st
        for policy in resources(templates[stage], "AWS::IAM::Policy").values()
        if "DeployFunction" in json.dumps(policy["Properties"]["Roles"])
        for st in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    switch = [st for st in statements if "sagemaker:UpdateEndpointWeightsAndCapacities" in st["Action"]]
    assert switch and all(":endpoint/" in json.dumps(st["Resource"]) for st in switch)


@pytest.mark.parametrize("stage", STAGES)
def test_rollback_alarms_watch_5xx_of_every_variant_latency_p99_and_the_fallback_rate(
    templates: dict[str, dict[str, Any]], configs: dict[str, StageConfig], stage: str
) -> None:
    config = configs[stage]
    found = alarms(templates[stage])
    errors = found[f"{config.prefix}-serving-5xx"]
    (query,) = errors["Metrics"]
    assert (
        "SUM(Invocation5XXErrors)" in query["Expression"]
        and f"EndpointName = '{config.endpoint_name}'" in query["Expression"]
    )
    assert errors["Threshold"] == config.monitoring.errors_5xx
    latency = found[f"{config.prefix}-serving-latency-p99"]
    assert latency["MetricName"] == "EndpointLatency" and latency["ExtendedStatistic"] == "p99"
    assert latency["Namespace"] == config.metrics_namespace
    assert latency["Threshold"] == config.monitoring.latency_p99_ms
    fallback = found[f"{config.prefix}-serving-fallback-rate"]
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in fallback["Metrics"] if "MetricStat" in m}
    assert names == {"FallbackAnswers", "PredictLatency"}
    assert fallback["Threshold"] == config.monitoring.fallback_rate_percent
    for alarm in (errors, latency, fallback):
        assert alarm["TreatMissingData"] == "notBreaching"


def test_an_approved_package_of_this_group_triggers_the_deploy_function(
    templates: dict[str, dict[str, Any]], configs: dict[str, StageConfig]
) -> None:
    template = templates["dev"]
    rules = [
        r["Properties"] for r in resources(template, "AWS::Events::Rule").values() if "EventPattern" in r["Properties"]
    ]
    (rule,) = [r for r in rules if r["EventPattern"].get("detail-type") == ["SageMaker Model Package State Change"]]
    assert rule["EventPattern"]["source"] == ["aws.sagemaker"]
    assert rule["EventPattern"]["detail"] == {
        "ModelPackageGroupName": [configs["dev"].model_package_group],
        "ModelApprovalStatus": ["Approved"],
    }
    (target,) = rule["Targets"]
    assert "DeployFunction" in target["Arn"]["Fn::GetAtt"][0]
    assert "DeadLetterConfig" in target


def test_the_deploy_state_machine_loops_on_check_until_the_endpoint_settles(
    templates: dict[str, dict[str, Any]],
) -> None:
    machines = resources(templates["dev"], "AWS::StepFunctions::StateMachine")
    (deploy,) = [
        m["Properties"] for m in machines.values() if m["Properties"]["StateMachineName"] == "mlloop-dev-deploy-model"
    ]
    definition = json.loads(
        "".join(p if isinstance(p, str) else "X" for p in deploy["DefinitionString"]["Fn::Join"][1])
    )
    states = definition["States"]
    assert definition["StartAt"] == "StartDeploy"
    assert states["StartDeploy"]["Next"] == "WaitForEndpoint"
    assert states["WaitForEndpoint"]["SecondsPath"] == "$.deploy.poll_seconds"
    choice = states["EndpointSettled"]
    assert {c["Next"] for c in choice["Choices"]} == {"WaitForEndpoint", "Deployed"}
    assert choice["Default"] == "DeployNotCompleted"
    assert states["StartDeploy"]["Catch"][0]["Next"] == "AbandonDeploy"
    assert any(r["ErrorEquals"] == ["EndpointBusyError"] for r in states["StartDeploy"]["Retry"])
    assert states["StartDeploy"]["Parameters"]["Payload"]["emergency.$"] == "$.emergency"


@pytest.mark.parametrize("stage", STAGES)
def test_the_api_requires_iam_auth_is_throttled_logged_and_bounds_the_batch(
    templates: dict[str, dict[str, Any]], configs: dict[str, StageConfig], stage: str
) -> None:
    template = templates[stage]
    fd = configs[stage].frontdoor
    methods = [m["Properties"] for m in resources(template, "AWS::ApiGateway::Method").values()]
    assert {m["HttpMethod"] for m in methods} == {"POST", "GET"}
    assert all(m["AuthorizationType"] == "AWS_IAM" for m in methods)
    (api_stage,) = [s["Properties"] for s in resources(template, "AWS::ApiGateway::Stage").values()]
    assert api_stage["StageName"] == stage
    assert "AccessLogSetting" in api_stage and api_stage["TracingEnabled"] is True
    (settings,) = api_stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == fd.throttle_rate and settings["ThrottlingBurstLimit"] == fd.throttle_burst
    (model,) = [m["Properties"] for m in resources(template, "AWS::ApiGateway::Model").values()]
    assert model["Schema"]["properties"]["instances"]["maxItems"] == fd.max_batch_records
    (post,) = [m for m in methods if m["HttpMethod"] == "POST"]
    assert "RequestValidatorId" in post
    (bad_body,) = [r["Properties"] for r in resources(template, "AWS::ApiGateway::GatewayResponse").values()]
    assert bad_body["ResponseType"] == "BAD_REQUEST_BODY" and bad_body["StatusCode"] == "400"
    assert json.loads(bad_body["ResponseTemplates"]["application/json"])["fields"]["body"]


@pytest.mark.parametrize("stage", STAGES)
def test_api_gateway_may_invoke_the_front_door_only_from_the_deployed_stage(
    templates: dict[str, dict[str, Any]], stage: str
) -> None:
    """Least privilege: no permission for the console's test-invoke-stage, which no step of the loop uses."""
    permissions = [p["Properties"] for p in resources(templates[stage], "AWS::Lambda::Permission").values()]
    from_api = [p for p in permissions if p["Principal"] == "apigateway.amazonaws.com"]

    assert len(from_api) == 3  # POST /predict, GET /health, GET /model
    assert not [p for p in from_api if "test-invoke-stage" in json.dumps(p["SourceArn"])]


def test_the_front_door_gets_its_limits_and_may_only_invoke_this_endpoint(
    templates: dict[str, dict[str, Any]], configs: dict[str, StageConfig]
) -> None:
    template = templates["prod"]
    config = configs["prod"]
    env = function(template, "frontdoor")["Environment"]["Variables"]
    assert env["ENDPOINT_TIMEOUT_MS"] == str(config.frontdoor.endpoint_timeout_ms)
    assert env["MAX_BATCH_RECORDS"] == str(config.frontdoor.max_batch_records)
    assert env["CIRCUIT_MINIMUM_CALLS"] == str(config.frontdoor.circuit_minimum_calls)
    assert env["PREDICTION_LOG_SAMPLE_PERCENT"] == str(config.frontdoor.prediction_log_sample_percent)
    invoke = [
        s
        for p in resources(template, "AWS::IAM::Policy").values()
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "sagemaker:InvokeEndpoint"
    ]
    assert invoke and all(config.endpoint_name in json.dumps(s["Resource"]) for s in invoke)


def test_batch_scoring_runs_on_a_schedule(templates: dict[str, dict[str, Any]]) -> None:
    rules = [r["Properties"] for r in resources(templates["dev"], "AWS::Events::Rule").values()]
    (schedule,) = [r for r in rules if r.get("ScheduleExpression")]
    assert schedule["ScheduleExpression"].startswith("cron(")
    assert "BatchScoringStateMachine" in schedule["Targets"][0]["Arn"]["Ref"]
