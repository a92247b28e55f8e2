"""Deploy on approval: the first deploy creates the endpoint, a later one updates it behind the canary config and
the rollback alarms, and a silent rollback is caught, marked, notified and never reported as success."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sagemaker.models import sagemaker_backends

from functions.deploy_model.logic import ApprovedPackage, Deployer, DeployError, deployment_config
from functions.deploy_model.settings import DeploySettings
from functions.deploy_model.standby import FAST_ROLLBACK_UNTIL_KEY, STANDBY_VERSION_KEY
from functions.shared.serving_manifest import ServingManifest, manifest_key
from mlloop.localcloud import request_validation
from tests.unit.frontdoor_support import FALLBACK_DOC

REGION = "us-east-1"
GROUP = "mlloop-dev-churn"
ENDPOINT = "mlloop-dev-churn"
ALARMS = ("mlloop-dev-serving-5xx", "mlloop-dev-serving-latency-p99", "mlloop-dev-serving-fallback-rate")


def settings(**overrides: Any) -> DeploySettings:
    base = DeploySettings(
        endpoint_name=ENDPOINT,
        model_package_group=GROUP,
        dataset="churn",
        sagemaker_role_arn=f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/sagemaker",
        instance_type="ml.t2.medium",
        instance_count=1,
        capture_bucket="capture",
        data_capture_percent=100,
        kms_key_arn=f"arn:aws:kms:{REGION}:{DEFAULT_ACCOUNT_ID}:key/k",
        artifacts_bucket="artifacts",
        mode="CANARY",
        canary_percent=20,
        linear_step_percent=25,
        wait_seconds=300,
        termination_wait_seconds=120,
        max_execution_seconds=3600,
        rollback_alarm_names=ALARMS,
        notifications_topic_arn="",
        state_machine_arn="",
        poll_seconds=30,
    )
    return DeploySettings(**{**base.__dict__, **overrides})


class UpdatingSageMaker:
    """moto's SageMaker client plus UpdateEndpoint (which moto lacks): records the call and, like SageMaker,
    either lands the new config or, after an alarm, rolls back to the old one while staying InService."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.updates: list[dict[str, Any]] = []
        self.roll_back = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def update_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        self.updates.append(kwargs)
        backend = sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION]
        endpoint = backend.endpoints[kwargs["EndpointName"]]
        if not self.roll_back:
            endpoint.endpoint_config_name = kwargs["EndpointConfigName"]
            variants = backend.endpoint_configs[kwargs["EndpointConfigName"]].production_variants
            endpoint.production_variants = endpoint._process_production_variants(variants)
        return {"EndpointArn": endpoint.arn}


class World:
    def __init__(self) -> None:
        self.sagemaker = UpdatingSageMaker(boto3.client("sagemaker", region_name=REGION))
        self.s3 = boto3.client("s3", region_name=REGION)
        self.sns = boto3.client("sns", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        for bucket in ("artifacts", "capture"):
            self.s3.create_bucket(Bucket=bucket)
        self.s3.put_object(Bucket="artifacts", Key="models/fallback_model.json", Body=json.dumps(FALLBACK_DOC).encode())
        topic = self.sns.create_topic(Name="people")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName="inbox")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        machine = self.sfn.create_state_machine(
            name="deploy",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn=f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/sfn",
        )["stateMachineArn"]
        self.sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        self.deployer = Deployer(
            settings(notifications_topic_arn=topic, state_machine_arn=machine),
            sagemaker=self.sagemaker,
            s3=self.s3,
            sns=self.sns,
            stepfunctions=self.sfn,
        )

    def register(self, approved: bool = True) -> str:
        arn: str = self.sagemaker.create_model_package(
            ModelPackageGroupName=GROUP,
            ModelApprovalStatus="Approved" if approved else "PendingManualApproval",
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3",
                        "ModelDataUrl": "s3://artifacts/models/model.tar.gz",
                        "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
                    }
                ],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            CustomerMetadataProperties={
                "contract_ref": "churn@1.0.0",
                "fallback_model_uri": "s3://artifacts/models/fallback_model.json",
                "drift_baseline_uri": "s3://artifacts/models/drift_baseline.json",
            },
        )["ModelPackageArn"]
        return arn

    def deploy(self, arn: str, event_id: str) -> Any:
        state = self.deployer.start(event_id=event_id, model_package_arn=arn)
        return self.deployer.check(state)

    def notifications(self) -> list[dict[str, Any]]:
        messages = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(json.loads(m["Body"])["Message"]) for m in messages]

    def manifest(self) -> ServingManifest:
        body = self.s3.get_object(Bucket="artifacts", Key=manifest_key(ENDPOINT))["Body"].read()
        return ServingManifest.from_json(body)


@pytest.fixture
def world() -> Iterator[World]:
    # SageMaker's own request validation (patterns, lengths), as the embedded AWS applies it.
    request_validation.install()
    try:
        with mock_aws():
            yield World()
    finally:
        request_validation.uninstall()


def test_the_first_deploy_creates_the_endpoint_with_data_capture_and_the_version_in_the_model(
    world: World,
) -> None:
    arn = world.register()
    state = world.deploy(arn, "event-1")
    assert state.mode == "create" and state.status == "deployed"
    endpoint = world.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    config = world.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    # Blue/green updates need a stable variant name; the version travels in the model's name and environment.
    assert [v["VariantName"] for v in config["ProductionVariants"]] == ["primary"]
    assert config["ProductionVariants"][0]["ModelName"].startswith(f"{ENDPOINT}-v1-")
    capture = config["DataCaptureConfig"]
    assert capture["InitialSamplingPercentage"] == 100 and capture["DestinationS3Uri"] == "s3://capture/datacapture"
    assert capture["KmsKeyId"].endswith("key/k")
    model = world.sagemaker.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["Environment"] == {"SAGEMAKER_PROGRAM": "inference.py", "MODEL_VERSION": "v1"}
    assert world.sagemaker.updates == []
    manifest = world.manifest()
    assert manifest.model_version == "v1" and manifest.contract["version"] == "1.0.0"
    assert manifest.fallback_model is not None and manifest.fallback_model["model_version"] == "v1"


def test_a_later_deploy_updates_with_the_canary_config_and_the_rollback_alarms(world: World) -> None:
    world.deploy(world.register(), "event-1")
    state = world.deploy(world.register(), "event-2")
    assert state.mode == "update" and state.status == "deployed"
    (update,) = world.sagemaker.updates
    assert update["DeploymentConfig"] == {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20},
                "WaitIntervalInSeconds": 300,
            },
            "TerminationWaitInSeconds": 120,
            "MaximumExecutionTimeoutInSeconds": 3600,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in ALARMS]},
    }
    manifest = world.manifest()
    assert manifest.model_version == "v2"
    assert [h["model_version"] for h in manifest.history] == ["v1"]


@pytest.mark.parametrize(
    ("mode", "routing"),
    [
        (
            "LINEAR",
            {
                "Type": "LINEAR",
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                "WaitIntervalInSeconds": 300,
            },
        ),
        ("ALL_AT_ONCE", {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 300}),
    ],
)
def test_linear_and_all_at_once_are_selectable(mode: str, routing: dict[str, Any]) -> None:
    config = deployment_config(settings(mode=mode))
    assert config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == routing


def test_a_silent_rollback_is_detected_marked_and_notified_never_reported_as_success(world: World) -> None:
    world.deploy(world.register(), "event-1")
    before = world.manifest()
    second = world.register()
    world.sagemaker.roll_back = True
    state = world.deploy(second, "event-2")
    assert state.status == "rolled_back"
    assert "rolled the deploy back" in state.detail
    package = world.sagemaker.describe_model_package(ModelPackageName=second)
    assert package["ModelApprovalStatus"] == "Rejected"
    metadata = package["CustomerMetadataProperties"]
    assert metadata["deployment_status"] == "rolled_back"
    # The detail's , ( ) break the API's metadata pattern: the mark carries a sanitised copy, the rest the full text.
    assert metadata["deployment_detail"] == (
        f"the endpoint runs {before.endpoint_config_name} not the target {state.endpoint_config_name}: SageMaker "
        "rolled the deploy back a rollback alarm fired or the new fleet failed"
    )
    assert package["ApprovalDescription"] == f"deploy rolled_back: {state.detail}"
    assert metadata["contract_ref"] == "churn@1.0.0", "every other field is kept"
    assert metadata["fallback_model_uri"] == "s3://artifacts/models/fallback_model.json"
    (note,) = world.notifications()
    assert note["status"] == "rolled_back" and note["model_version"] == "v2"
    assert note["detail"] == state.detail
    assert world.manifest() == before, "the front door keeps serving the model that still runs"


def test_a_settling_endpoint_keeps_the_loop_waiting_until_the_deadline(world: World) -> None:
    arn = world.register()
    state = world.deployer.start(event_id="event-1", model_package_arn=arn)
    endpoint = sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION].endpoints[ENDPOINT]
    endpoint.endpoint_status = "Creating"
    assert world.deployer.check(state).status == "in_progress"
    world.deployer.clock = lambda: state.deadline + 1
    assert world.deployer.check(state).status == "timed_out"
    assert world.notifications()[0]["status"] == "timed_out"


def test_a_retried_start_reuses_its_names_and_does_not_update_twice(world: World) -> None:
    world.deploy(world.register(), "event-1")
    arn = world.register()
    first = world.deployer.start(event_id="event-2", model_package_arn=arn)
    again = world.deployer.start(event_id="event-2", model_package_arn=arn)
    assert again.endpoint_config_name == first.endpoint_config_name
    assert again.mode == "already_running"
    assert len(world.sagemaker.updates) == 1
    assert world.deployer.check(again).status == "deployed"
    metadata = world.sagemaker.describe_model_package(ModelPackageName=arn)["CustomerMetadataProperties"]
    assert metadata["deployment_status"] == "deployed", "the retried deploy still marks its package"


def test_a_redelivered_approval_event_starts_one_execution(world: World) -> None:
    arn = world.register()
    package = ApprovedPackage(event_id="evt-7", model_package_arn=arn, model_package_group=GROUP, status="Approved")
    first = world.deployer.accept(package)
    again = world.deployer.accept(package)
    assert first["execution"] == again["execution"] == "evt-7"
    machine = world.deployer.settings.state_machine_arn
    assert len(world.sfn.list_executions(stateMachineArn=machine)["executions"]) == 1
    other_group = ApprovedPackage(
        event_id="evt-8", model_package_arn=arn, model_package_group="other", status="Approved"
    )
    assert world.deployer.accept(other_group)["started"] is False


def test_a_package_that_is_not_approved_or_has_a_broken_fallback_never_reaches_the_endpoint(world: World) -> None:
    with pytest.raises(DeployError, match="not Approved"):
        world.deployer.start(event_id="e", model_package_arn=world.register(approved=False))
    world.s3.put_object(Bucket="artifacts", Key="models/fallback_model.json", Body=b'{"format": "other"}')
    arn = world.register()
    with pytest.raises(DeployError, match="malformed"):
        world.deployer.start(event_id="e2", model_package_arn=arn)
    state = world.deployer.abandon(event_id="e2", model_package_arn=arn, reason="fallback model is malformed")
    assert state.status == "failed"
    assert world.sagemaker.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"] == "Rejected"
    assert world.notifications()[0]["status"] == "failed"
    with pytest.raises(Exception, match="Could not find endpoint"):
        world.sagemaker.describe_endpoint(EndpointName=ENDPOINT)


def test_a_state_change_of_the_package_already_serving_starts_no_new_deploy(world: World) -> None:
    arn = world.register()
    world.deploy(arn, "event-1")
    package = ApprovedPackage(event_id="evt-9", model_package_arn=arn, model_package_group=GROUP, status="Approved")
    assert world.deployer.accept(package) == {"started": False, "reason": "the endpoint already serves this package"}
    state = world.deploy(arn, "event-9")
    assert state.mode == "already_serving" and state.status == "deployed"


# --- the warm standby and the operator's rollback ---------------------------------------------------------------


def _variants(world: World) -> list[tuple[str, str, float, int]]:
    """(variant, model version, current weight, instances) of what the endpoint runs."""
    endpoint = world.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
    config = world.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    models = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
    counts = {v["VariantName"]: v["InitialInstanceCount"] for v in config["ProductionVariants"]}
    return [
        (
            v["VariantName"],
            models[v["VariantName"]].split("-")[-2],
            float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0))),
            counts[v["VariantName"]],
        )
        for v in endpoint["ProductionVariants"]
    ]


@pytest.fixture
def warm(world: World) -> World:
    """The stage keeps one standby instance for 24 h after each promotion."""
    world.deployer.settings = dataclasses.replace(
        world.deployer.settings, standby_instance_count=1, fast_rollback_window_hours=24, instance_count=2
    )
    return world


def test_a_promotion_keeps_the_replaced_champion_warm_at_weight_0_and_opens_its_window(warm: World) -> None:
    warm.deploy(warm.register(), "event-1")
    # The first config already has both variants, so no later blue/green update changes the variant names.
    assert _variants(warm) == [("primary", "v1", 1.0, 2), ("standby", "v1", 0.0, 1)]
    promoted_at = warm.deployer.clock()
    second = warm.register()
    assert warm.deploy(second, "event-2").status == "deployed"
    assert _variants(warm) == [("primary", "v2", 1.0, 2), ("standby", "v1", 0.0, 1)]
    metadata = warm.sagemaker.describe_model_package(ModelPackageName=second)["CustomerMetadataProperties"]
    assert metadata[STANDBY_VERSION_KEY] == "v1"
    until = dt.datetime.strptime(metadata[FAST_ROLLBACK_UNTIL_KEY], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert abs(until.timestamp() - (promoted_at + 24 * 3600)) < 60
    state = warm.deployer.fast_rollback_state()
    assert state.available and state.to_version == 1


def test_a_fast_rollback_moves_all_traffic_to_the_standby_without_a_new_config(warm: World) -> None:
    first = warm.register()
    warm.deploy(first, "event-1")
    warm.deploy(warm.register(), "event-2")
    configs = warm.sagemaker.list_endpoint_configs()["EndpointConfigs"]
    outcome = warm.deployer.rollback(request_id="r-1", model_package_arn=first, emergency=False)
    assert outcome["path"] == "fast" and outcome["completed"] is True
    assert _variants(warm) == [("primary", "v2", 0.0, 2), ("standby", "v1", 1.0, 1)]
    assert warm.sagemaker.list_endpoint_configs()["EndpointConfigs"] == configs, "no endpoint config was created"
    assert len(warm.sagemaker.updates) == 1, "no UpdateEndpoint (no new fleet) beyond the promotion"
    manifest = warm.manifest()
    assert manifest.model_version == "v1" and manifest.variant_name == "standby"
    assert [h["model_version"] for h in manifest.history][:1] == ["v2"]
    again = warm.deployer.fast_rollback_state()
    assert not again.available and "already takes traffic" in again.reason
    # The standby now serves: an approval event about v1 starts nothing.
    event = ApprovedPackage(event_id="evt-x", model_package_arn=first, model_package_group=GROUP, status="Approved")
    assert warm.deployer.accept(event)["started"] is False
    again_deployed = warm.deploy(first, "event-9")
    assert again_deployed.mode == "already_serving" and warm.manifest().variant_name == "standby"


def test_after_the_window_a_rollback_takes_the_guarded_path(warm: World) -> None:
    first = warm.register()
    warm.deploy(first, "event-1")
    warm.deploy(warm.register(), "event-2")
    later = warm.deployer.clock() + 24 * 3600 + 1
    warm.deployer.clock = lambda: later
    outcome = warm.deployer.rollback(request_id="r-2", model_package_arn=first, emergency=False)
    assert outcome["path"] == "guarded" and outcome["started"] is True
    assert "window to v1 ended" in outcome["fast_unavailable"]
    (execution,) = warm.sfn.list_executions(stateMachineArn=warm.deployer.settings.state_machine_arn)["executions"]
    described = warm.sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"event_id": "r-2", "model_package_arn": first, "emergency": False}
    assert _variants(warm)[0][:3] == ("primary", "v2", 1.0), "traffic untouched until the deploy runs"


def test_without_a_standby_configs_hold_one_variant_and_an_emergency_rollback_skips_the_bake(world: World) -> None:
    first = world.register()
    world.deploy(first, "event-1")
    world.deploy(world.register(), "event-2")
    assert [v[0] for v in _variants(world)] == ["primary"], "no idle standby is kept"
    outcome = world.deployer.rollback(request_id="r-3", model_package_arn=first, emergency=True)
    assert outcome["path"] == "emergency"
    assert "keeps no standby" in outcome["fast_unavailable"]
    assert outcome["skipped"] == [
        "the 20 % canary step",
        "the 300 s bake per step (rollback alarms have no period to watch)",
        "the 120 s termination wait",
    ]
    state = world.deployer.start(event_id="r-3", model_package_arn=first, emergency=True)
    assert state.mode == "update"
    assert world.sagemaker.updates[-1]["DeploymentConfig"]["BlueGreenUpdatePolicy"] == {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
        "TerminationWaitInSeconds": 0,
        "MaximumExecutionTimeoutInSeconds": 3600,
    }


def test_a_later_promotion_retires_the_standby_by_replacing_it_with_the_version_it_replaces(warm: World) -> None:
    for number in (1, 2, 3):
        warm.deploy(warm.register(), f"event-{number}")
    assert _variants(warm) == [("primary", "v3", 1.0, 2), ("standby", "v2", 0.0, 1)]
    state = warm.deployer.fast_rollback_state()
    assert state.available and state.to_version == 2, "v1 is no longer warm"


def test_a_multi_line_failure_reason_still_marks_and_notifies(world: World) -> None:
    arn = world.register()
    reason = "fallback model is malformed: KeyError('weights')\nTraceback (most recent call last):\n  ..."
    state = world.deployer.abandon(event_id="e3", model_package_arn=arn, reason=reason)
    package = world.sagemaker.describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "Rejected"
    assert "\n" not in package["ApprovalDescription"] and "KeyError" in package["ApprovalDescription"]
    assert world.notifications()[0]["detail"] == state.detail, "the full text, line breaks and all, is notified"
