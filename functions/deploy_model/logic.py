"""Deploy an approved model package to the endpoint behind blue/green guardrails, then verify what runs.

Three steps, each short, because a canary deploy takes from minutes to hours and a Lambda runs 15 minutes
at most: `accept` (the approval event) starts the deploy state machine with the event id as the execution
name, so a redelivered event starts nothing new; `start` creates the Model and EndpointConfig and creates
or updates the endpoint; `check` runs in the state machine's Wait loop until the endpoint settles, then
compares the running EndpointConfig with the target. SageMaker's auto-rollback leaves the endpoint
InService on the old config, so a rollback is silent unless checked: here it marks the package, notifies
and fails the execution.

With a standby (the stage's `rollback.standby`), every config also carries the version being replaced as a
weight-0 `standby` variant, so `rollback` can move all traffic back with UpdateEndpointWeightsAndCapacities
within the window after a promotion; otherwise (or later) `rollback` starts the guarded deploy, or with
`emergency` an ALL_AT_ONCE one without baking.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import ClientError

from functions.deploy_model.settings import DeploySettings
from functions.deploy_model.standby import (
    FAST_ROLLBACK_BOUND_SECONDS,
    FAST_ROLLBACK_UNTIL_KEY,
    PRIMARY_VARIANT,
    STANDBY_VARIANT,
    STANDBY_VERSION_KEY,
    FastRollback,
    VariantView,
    current_weight,
    fast_rollback,
    model_version,
    switch_weights,
    window_end,
)
from functions.shared.contract import ContractError, load_contract
from functions.shared.fallback_model import FallbackModel
from functions.shared.package_metadata import metadata_value
from functions.shared.serving_manifest import ServingManifest, manifest_key

DeployStatus = Literal["in_progress", "deployed", "rolled_back", "failed", "timed_out", "skipped"]
SETTLING = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "UpdateRollbackFailed"})
FAILED = frozenset({"Failed", "OutOfService", "Deleting"})
# Beyond SageMaker's own maximum execution time: the verify loop gives up only after SageMaker would have.
DEADLINE_MARGIN_SECONDS = 1800
# How often a fast rollback looks whether the weights landed.
SWITCH_POLL_SECONDS = 1.0


class DeployError(Exception):
    """The package cannot be deployed as it is; the message says why (the execution fails with it)."""


class EndpointBusyError(Exception):
    """Another deploy is still settling on the endpoint; the state machine retries later."""


@dataclass(frozen=True)
class DeployState:
    """What the state machine carries between `start` and each `check`."""

    event_id: str
    model_package_arn: str
    model_version: str
    endpoint_name: str
    model_name: str
    endpoint_config_name: str
    previous_config_name: str | None
    # already_running: a retried start finds its own config serving; already_serving: an earlier deploy's config
    # serves this version, and that deploy's marks on the package stand.
    mode: Literal["create", "update", "already_running", "already_serving"]
    deadline: float
    poll_seconds: int
    status: DeployStatus = "in_progress"
    detail: str = ""
    checks: int = 0
    # The version the config keeps warm as the weight-0 standby ("" without one).
    standby_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DeployState:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


@dataclass(frozen=True)
class ApprovedPackage:
    event_id: str
    model_package_arn: str
    model_package_group: str
    status: str


def execution_name(event_id: str) -> str:
    """A Step Functions execution name (80 chars of [A-Za-z0-9-_]) that is a pure function of the event id."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "-", event_id)
    return cleaned[:80]


def resource_suffix(event_id: str) -> str:
    return hashlib.sha256(event_id.encode()).hexdigest()[:8]


def deployment_config(settings: DeploySettings, *, emergency: bool = False) -> dict[str, Any]:
    """The UpdateEndpoint DeploymentConfig: blue/green by the stage's mode, rolled back by the named alarms.

    `emergency` (an operator's rollback with no warm standby) shifts all traffic at once and bakes nothing."""
    if emergency:
        routing: dict[str, Any] = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
    else:
        routing = {"Type": settings.mode, "WaitIntervalInSeconds": settings.wait_seconds}
    if routing["Type"] == "CANARY":
        routing["CanarySize"] = {"Type": "CAPACITY_PERCENT", "Value": settings.canary_percent}
    elif routing["Type"] == "LINEAR":
        routing["LinearStepSize"] = {"Type": "CAPACITY_PERCENT", "Value": settings.linear_step_percent}
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": 0 if emergency else settings.termination_wait_seconds,
            "MaximumExecutionTimeoutInSeconds": settings.max_execution_seconds,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": name} for name in settings.rollback_alarm_names]},
    }


def skipped_by_emergency(settings: DeploySettings) -> list[str]:
    """What an emergency redeploy leaves out of the stage's guarded deploy, for the operator to read."""
    skipped = []
    if settings.mode == "CANARY":
        skipped.append(f"the {settings.canary_percent} % canary step")
    elif settings.mode == "LINEAR":
        skipped.append(f"the {settings.linear_step_percent} % linear steps")
    if settings.wait_seconds:
        skipped.append(f"the {settings.wait_seconds} s bake per step (rollback alarms have no period to watch)")
    if settings.termination_wait_seconds:
        skipped.append(f"the {settings.termination_wait_seconds} s termination wait")
    return skipped


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _error_message(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Message", ""))


def _split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise DeployError(f"not an s3:// object URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class Deployer:
    def __init__(
        self,
        settings: DeploySettings,
        *,
        sagemaker: Any,
        s3: Any,
        sns: Any,
        stepfunctions: Any,
        clock: Any = time.time,
        sleep: Any = time.sleep,
    ) -> None:
        self.settings = settings
        self.sagemaker = sagemaker
        self.s3 = s3
        self.sns = sns
        self.stepfunctions = stepfunctions
        self.clock = clock
        self.sleep = sleep

    # --- accept: the approval event -------------------------------------------------------------------------

    def accept(self, package: ApprovedPackage) -> dict[str, Any]:
        """Start one deploy execution per approval event; a redelivered event finds its execution running."""
        if package.model_package_group != self.settings.model_package_group or package.status != "Approved":
            return {"started": False, "reason": "not an approval in this stage's model package group"}
        described = self.sagemaker.describe_model_package(ModelPackageName=package.model_package_arn)
        if self._serving(f"v{described.get('ModelPackageVersion')}") is not None:
            # Updates to a deployed package (its deployment marks among them) arrive as state changes too.
            return {"started": False, "reason": "the endpoint already serves this package"}
        return self._start_execution(package.event_id, package.model_package_arn, emergency=False)

    def _start_execution(self, event_id: str, model_package_arn: str, *, emergency: bool) -> dict[str, Any]:
        name = execution_name(event_id)
        try:
            self.stepfunctions.start_execution(
                stateMachineArn=self.settings.state_machine_arn,
                name=name,
                input=json.dumps(
                    {"event_id": event_id, "model_package_arn": model_package_arn, "emergency": emergency}
                ),
            )
        except ClientError as exc:
            if _error_code(exc) != "ExecutionAlreadyExists":
                raise
            return {"started": False, "reason": "duplicate event: its deploy execution exists", "execution": name}
        return {"started": True, "execution": name}

    # --- rollback: an operator's, fast when a standby allows it -------------------------------------------------

    def fast_rollback_state(self) -> FastRollback:
        """Whether the endpoint can switch all traffic to its standby now (see `standby.fast_rollback`)."""
        endpoint = self._describe_endpoint()
        if endpoint is None:
            return fast_rollback(endpoint_status=None, variants=[], serving_metadata={}, now=self._now())
        variants = self._variant_views(endpoint)
        serving = max(variants, key=lambda v: v.weight, default=None)
        metadata: dict[str, str] = {}
        if serving is not None and serving.version is not None:
            arn = self._package_arn(endpoint["EndpointArn"], serving.version)
            try:
                package = self.sagemaker.describe_model_package(ModelPackageName=arn)
                metadata = dict(package.get("CustomerMetadataProperties") or {})
            except ClientError as exc:
                # A deleted package records no window: the guarded path is left.
                if _error_code(exc) != "ValidationException":
                    raise
        return fast_rollback(
            endpoint_status=endpoint["EndpointStatus"], variants=variants, serving_metadata=metadata, now=self._now()
        )

    def rollback(self, *, request_id: str, model_package_arn: str, emergency: bool) -> dict[str, Any]:
        """Return traffic to an approved version: the weights-only switch to the standby when it holds that version
        within its window, else the guarded deploy (an `emergency` one skips the canary and the bake)."""
        package = self.sagemaker.describe_model_package(ModelPackageName=model_package_arn)
        if package.get("ModelApprovalStatus") != "Approved":
            raise DeployError(f"{model_package_arn} is {package.get('ModelApprovalStatus')}, not Approved")
        target = int(package["ModelPackageVersion"])
        fast = self.fast_rollback_state()
        if fast.available and fast.to_version == target:
            return self._switch_to_standby(package)
        why = fast.reason if not fast.available else f"the standby holds v{fast.to_version}, not v{target}"
        started = self._start_execution(request_id, model_package_arn, emergency=emergency)
        return {
            **started,
            "path": "emergency" if emergency else "guarded",
            "fast_unavailable": why,
            "skipped": skipped_by_emergency(self.settings) if emergency else [],
        }

    def _switch_to_standby(self, package: dict[str, Any]) -> dict[str, Any]:
        began = self.clock()
        endpoint = self.settings.endpoint_name
        self.sagemaker.update_endpoint_weights_and_capacities(
            EndpointName=endpoint, DesiredWeightsAndCapacities=switch_weights()
        )
        # SageMaker marks the endpoint Updating and back InService once the weights apply; nothing is launched.
        while True:
            described = self._describe_endpoint()
            views = {v.name: v for v in self._variant_views(described)} if described else {}
            standby = views.get(STANDBY_VARIANT)
            landed = (
                described is not None
                and described["EndpointStatus"] == "InService"
                and standby is not None
                and standby.weight > 0
                and views[PRIMARY_VARIANT].weight == 0
            )
            elapsed = self.clock() - began
            if landed or elapsed > FAST_ROLLBACK_BOUND_SECONDS:
                break
            self.sleep(SWITCH_POLL_SECONDS)
        if not landed or described is None:
            return {
                "started": True,
                "path": "fast",
                "completed": False,
                "seconds": round(elapsed, 3),
                "detail": f"the weights had not landed after {FAST_ROLLBACK_BOUND_SECONDS} s",
            }
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
        models = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
        standby_model = models[STANDBY_VARIANT]
        state = DeployState(
            event_id="rollback",
            model_package_arn=package["ModelPackageArn"],
            model_version=f"v{package['ModelPackageVersion']}",
            endpoint_name=endpoint,
            model_name=standby_model,
            endpoint_config_name=described["EndpointConfigName"],
            previous_config_name=described["EndpointConfigName"],
            mode="already_serving",
            deadline=self.clock(),
            poll_seconds=self.settings.poll_seconds,
            status="deployed",
        )
        self._write_manifest(state)
        return {
            "started": True,
            "path": "fast",
            "completed": True,
            "seconds": round(elapsed, 3),
            "endpoint_config_name": described["EndpointConfigName"],
            "detail": f"all traffic on the standby ({state.model_version}); no endpoint config or instance created",
        }

    def _variant_views(self, endpoint: dict[str, Any]) -> list[VariantView]:
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        models = {v["VariantName"]: v["ModelName"] for v in config.get("ProductionVariants", [])}
        return [
            VariantView(
                name=v["VariantName"],
                version=model_version(models.get(v["VariantName"], "")),
                weight=current_weight(v),
                instances=v.get("CurrentInstanceCount"),
            )
            for v in endpoint.get("ProductionVariants", [])
        ]

    def _package_arn(self, endpoint_arn: str, version: int) -> str:
        """A version's package ARN, in the endpoint's partition, region and account."""
        partition, _, region, account = endpoint_arn.split(":")[1:5]
        group = self.settings.model_package_group
        return f"arn:{partition}:sagemaker:{region}:{account}:model-package/{group}/{version}"

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # --- start: model, endpoint config, create or update -----------------------------------------------------

    def start(self, *, event_id: str, model_package_arn: str, emergency: bool = False) -> DeployState:
        package = self.sagemaker.describe_model_package(ModelPackageName=model_package_arn)
        if package.get("ModelPackageGroupName") != self.settings.model_package_group:
            raise DeployError(f"{model_package_arn} is not in group {self.settings.model_package_group}")
        if package.get("ModelApprovalStatus") != "Approved":
            raise DeployError(f"{model_package_arn} is {package.get('ModelApprovalStatus')}, not Approved")
        version = f"v{package['ModelPackageVersion']}"
        # Fail before touching traffic when the front door could not serve this model's contract or fallback.
        self._serving_documents(package)
        model_name = f"{self.settings.endpoint_name}-{version}-{resource_suffix(event_id)}"
        serving = self._serving(version)
        if serving is not None:
            own = serving["endpoint_config_name"] == model_name
            return DeployState(
                event_id=event_id,
                model_package_arn=model_package_arn,
                model_version=version,
                endpoint_name=self.settings.endpoint_name,
                model_name=serving["model_name"],
                endpoint_config_name=serving["endpoint_config_name"],
                previous_config_name=serving["endpoint_config_name"],
                mode="already_running" if own else "already_serving",
                deadline=self.clock() + self.settings.max_execution_seconds + DEADLINE_MARGIN_SECONDS,
                poll_seconds=self.settings.poll_seconds,
            )
        config_name = model_name
        self._create_model(model_name, package, version)
        running = self._describe_endpoint()
        standby = self._standby_model(running, model_name)
        self._create_endpoint_config(config_name, model_name, standby)
        base = DeployState(
            event_id=event_id,
            model_package_arn=model_package_arn,
            model_version=version,
            endpoint_name=self.settings.endpoint_name,
            model_name=model_name,
            endpoint_config_name=config_name,
            previous_config_name=None,
            mode="create",
            deadline=self.clock() + self.settings.max_execution_seconds + DEADLINE_MARGIN_SECONDS,
            poll_seconds=self.settings.poll_seconds,
            standby_version=f"v{model_version(standby)}" if standby else "",
        )
        if running is None:
            self.sagemaker.create_endpoint(
                EndpointName=self.settings.endpoint_name,
                EndpointConfigName=config_name,
                Tags=[{"Key": "model_package_arn", "Value": model_package_arn}],
            )
            return base
        if running["EndpointConfigName"] == config_name:
            return replace(base, mode="already_running", previous_config_name=config_name)
        if running["EndpointStatus"] in SETTLING:
            raise EndpointBusyError(f"endpoint {self.settings.endpoint_name} is {running['EndpointStatus']}")
        self.sagemaker.update_endpoint(
            EndpointName=self.settings.endpoint_name,
            EndpointConfigName=config_name,
            RetainAllVariantProperties=False,
            DeploymentConfig=deployment_config(self.settings, emergency=emergency),
        )
        return replace(base, mode="update", previous_config_name=running["EndpointConfigName"])

    def _standby_model(self, running: dict[str, Any] | None, new_model: str) -> str | None:
        """The model the new config keeps warm at weight 0: the one taking traffic now, or, on the endpoint's first
        deploy, the new model itself, so the variant names never change between configs (blue/green needs that)."""
        if self.settings.standby_instance_count <= 0:
            return None
        if running is None:
            return new_model
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=running["EndpointConfigName"])
        models = {v["VariantName"]: v["ModelName"] for v in config.get("ProductionVariants", [])}
        weights = {v["VariantName"]: current_weight(v) for v in running.get("ProductionVariants", [])}
        serving = max(models, key=lambda name: weights.get(name, 0.0), default=None)
        return models[serving] if serving else new_model

    def _create_model(self, model_name: str, package: dict[str, Any], version: str) -> None:
        containers = package.get("InferenceSpecification", {}).get("Containers") or []
        if not containers:
            raise DeployError(f"{package['ModelPackageArn']} has no inference container")
        container = containers[0]
        try:
            self.sagemaker.create_model(
                ModelName=model_name,
                ExecutionRoleArn=self.settings.sagemaker_role_arn,
                PrimaryContainer={
                    "Image": container["Image"],
                    "ModelDataUrl": container["ModelDataUrl"],
                    "Environment": {**container.get("Environment", {}), "MODEL_VERSION": version},
                },
                Tags=[{"Key": "model_package_arn", "Value": package["ModelPackageArn"]}],
                EnableNetworkIsolation=False,
            )
        except ClientError as exc:
            # A retried `start` finds the model it created the first time.
            if "already exist" not in _error_message(exc):
                raise

    def _create_endpoint_config(self, config_name: str, model_name: str, standby_model: str | None) -> None:
        s = self.settings
        capture: dict[str, Any] = {
            "EnableCapture": s.data_capture_percent > 0,
            "InitialSamplingPercentage": s.data_capture_percent,
            "DestinationS3Uri": f"s3://{s.capture_bucket}/{s.capture_prefix}",
            "KmsKeyId": s.kms_key_arn,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        }
        variants = [
            {
                "VariantName": PRIMARY_VARIANT,
                "ModelName": model_name,
                "InitialInstanceCount": s.instance_count,
                "InstanceType": s.instance_type,
                "InitialVariantWeight": 1.0,
            }
        ]
        if standby_model:
            variants.append(
                {
                    "VariantName": STANDBY_VARIANT,
                    "ModelName": standby_model,
                    "InitialInstanceCount": s.standby_instance_count,
                    "InstanceType": s.instance_type,
                    "InitialVariantWeight": 0.0,
                }
            )
        try:
            self.sagemaker.create_endpoint_config(
                EndpointConfigName=config_name,
                ProductionVariants=variants,
                DataCaptureConfig=capture,
                KmsKeyId=s.kms_key_arn,
            )
        except ClientError as exc:
            if "already exist" not in _error_message(exc):
                raise

    def _serving(self, version: str) -> dict[str, str] | None:
        """The running config and model when the endpoint, settled, already serves `version` (in its model name)."""
        running = self._describe_endpoint()
        if running is None or running.get("EndpointStatus") != "InService":
            return None
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=running["EndpointConfigName"])
        # A weight-0 standby holds a version without serving it.
        idle = {v["VariantName"] for v in running.get("ProductionVariants", []) if current_weight(v) == 0}
        for variant in config.get("ProductionVariants", []):
            if variant["VariantName"] in idle:
                continue
            if str(variant.get("ModelName", "")).startswith(f"{self.settings.endpoint_name}-{version}-"):
                return {"endpoint_config_name": running["EndpointConfigName"], "model_name": variant["ModelName"]}
        return None

    def _describe_endpoint(self) -> dict[str, Any] | None:
        try:
            described: dict[str, Any] = self.sagemaker.describe_endpoint(EndpointName=self.settings.endpoint_name)
        except ClientError as exc:
            if _error_code(exc) == "ValidationException" and "not find" in _error_message(exc).lower():
                return None
            raise
        return described

    # --- check: wait for the endpoint to settle, then verify what it runs ------------------------------------

    def check(self, state: DeployState) -> DeployState:
        state = replace(state, checks=state.checks + 1)
        endpoint = self._describe_endpoint()
        if endpoint is None:
            return self._finish(replace(state, status="failed", detail="the endpoint disappeared during the deploy"))
        status = endpoint["EndpointStatus"]
        if status in SETTLING:
            if self.clock() > state.deadline:
                detail = f"the endpoint is still {status} after the deploy's deadline"
                return self._finish(replace(state, status="timed_out", detail=detail))
            return state
        running = endpoint.get("EndpointConfigName")
        if status in FAILED:
            reason = endpoint.get("FailureReason") or status
            return self._finish(replace(state, status="failed", detail=f"endpoint {status}: {reason}"))
        if running == state.endpoint_config_name:
            return self._finish(replace(state, status="deployed", detail=f"{state.model_version} serves all traffic"))
        detail = (
            f"the endpoint runs {running}, not the target {state.endpoint_config_name}: "
            "SageMaker rolled the deploy back (a rollback alarm fired or the new fleet failed)"
        )
        return self._finish(replace(state, status="rolled_back", detail=detail))

    def abandon(self, *, event_id: str, model_package_arn: str, reason: str) -> DeployState:
        """A package that could not be deployed at all: marked, notified, traffic untouched."""
        state = DeployState(
            event_id=event_id,
            model_package_arn=model_package_arn,
            model_version="unknown",
            endpoint_name=self.settings.endpoint_name,
            model_name="",
            endpoint_config_name="",
            previous_config_name=None,
            mode="create",
            deadline=self.clock(),
            poll_seconds=self.settings.poll_seconds,
            status="failed",
            detail=f"the deploy did not start: {reason}"[:1000],
        )
        try:
            package = self.sagemaker.describe_model_package(ModelPackageName=model_package_arn)
            state = replace(state, model_version=f"v{package.get('ModelPackageVersion', '?')}")
            self._mark_package(state, approval="Rejected")
        except ClientError as exc:
            state = replace(state, detail=f"{state.detail}; the package could not be marked: {_error_code(exc)}")
        self._notify(state)
        return state

    def _finish(self, state: DeployState) -> DeployState:
        if state.status == "deployed":
            self._write_manifest(state)
            if state.mode != "already_serving":
                self._mark_package(state, approval=None, extra=self._standby_marks(state))
            return state
        # Rejected, so that nothing (the champion comparison, batch scoring) treats it as the live model.
        self._mark_package(state, approval="Rejected")
        self._notify(state)
        return state

    def _serving_documents(self, package: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, float]:
        """The contract, fallback model and threshold the front door will serve this package with."""
        meta = package.get("CustomerMetadataProperties") or {}
        ref = meta.get("contract_ref") or ""
        dataset, _, version = ref.partition("@")
        try:
            contract = load_contract(dataset or self.settings.dataset, version or None)
        except (ContractError, OSError) as exc:
            raise DeployError(f"contract {ref!r} of the package cannot be loaded: {exc}") from None
        fallback: dict[str, Any] | None = None
        uri = meta.get("fallback_model_uri")
        if uri:
            bucket, key = _split_s3_uri(uri)
            try:
                fallback = json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            except (ClientError, ValueError) as exc:
                raise DeployError(f"fallback model {uri} cannot be read: {exc}") from None
            try:
                model = FallbackModel.from_dict(fallback or {})
            except (ValueError, KeyError, TypeError) as exc:
                raise DeployError(f"fallback model {uri} is malformed: {exc}") from None
            threshold = float(meta.get("threshold", model.threshold))
        else:
            threshold = float(meta.get("threshold", 0.5))
        return json.loads(contract.to_json()), fallback, threshold

    def _standby_marks(self, state: DeployState) -> dict[str, str]:
        """The fast-rollback window a promotion opens: to the version its config keeps as the standby."""
        if not state.standby_version or state.standby_version == state.model_version:
            return {}
        promoted = datetime.fromtimestamp(self.clock(), UTC)
        return {
            STANDBY_VERSION_KEY: state.standby_version,
            FAST_ROLLBACK_UNTIL_KEY: window_end(promoted, self.settings.fast_rollback_window_hours),
        }

    def _serving_variant(self, state: DeployState) -> str:
        """The variant that runs the deployed model: `primary`, or `standby` after a fast rollback to it."""
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=state.endpoint_config_name)
        names = [v["VariantName"] for v in config["ProductionVariants"] if v["ModelName"] == state.model_name]
        return PRIMARY_VARIANT if PRIMARY_VARIANT in names or not names else names[0]

    def _write_manifest(self, state: DeployState) -> None:
        package = self.sagemaker.describe_model_package(ModelPackageName=state.model_package_arn)
        contract, fallback, threshold = self._serving_documents(package)
        key = manifest_key(state.endpoint_name)
        history: list[dict[str, str]] = []
        try:
            previous = ServingManifest.from_json(
                self.s3.get_object(Bucket=self.settings.artifacts_bucket, Key=key)["Body"].read()
            )
            entry = {"model_version": previous.model_version, "deployed_at": previous.deployed_at}
            history = [entry, *previous.history][:20]
        except ClientError as exc:
            if _error_code(exc) not in ("NoSuchKey", "404"):
                raise
        if fallback is not None:
            fallback = {**fallback, "model_version": state.model_version}
        manifest = ServingManifest(
            endpoint_name=state.endpoint_name,
            model_version=state.model_version,
            model_package_arn=state.model_package_arn,
            endpoint_config_name=state.endpoint_config_name,
            variant_name=self._serving_variant(state),
            model_name=state.model_name,
            contract=contract,
            threshold=threshold,
            deployed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())),
            fallback_model=fallback,
            history=history,
        )
        self.s3.put_object(
            Bucket=self.settings.artifacts_bucket,
            Key=key,
            Body=manifest.to_json().encode(),
            ContentType="application/json",
        )

    def _mark_package(self, state: DeployState, *, approval: str | None, extra: dict[str, str] | None = None) -> None:
        package = self.sagemaker.describe_model_package(ModelPackageName=state.model_package_arn)
        metadata = {
            **(package.get("CustomerMetadataProperties") or {}),
            **(extra or {}),
            "deployment_status": state.status,
            # The API's pattern refuses , ( ) ' and the like: the full text is in the notification and, when the
            # package is rejected, in ApprovalDescription.
            "deployment_detail": metadata_value(state.detail, replacement=" "),
            "deployment_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())),
            "deployment_endpoint_config": metadata_value(state.endpoint_config_name or "none"),
        }
        # Every field is passed: UpdateModelPackage implementations differ on what an omitted field means.
        self.sagemaker.update_model_package(
            ModelPackageArn=state.model_package_arn,
            ModelApprovalStatus=approval or package.get("ModelApprovalStatus", "Approved"),
            # The API's pattern `.*` (Java) stops at a line break: an endpoint's FailureReason may hold several lines.
            ApprovalDescription=(
                " ".join(f"deploy {state.status}: {state.detail}".split())[:1000]
                if approval
                else package.get("ApprovalDescription") or ""
            ),
            CustomerMetadataProperties=metadata,
        )

    def _notify(self, state: DeployState) -> None:
        subject = f"{state.endpoint_name}: deploy of {state.model_version} {state.status.replace('_', ' ')}"
        message = {
            "endpoint_name": state.endpoint_name,
            "model_version": state.model_version,
            "model_package_arn": state.model_package_arn,
            "status": state.status,
            "detail": state.detail,
            "target_endpoint_config": state.endpoint_config_name,
            "previous_endpoint_config": state.previous_config_name,
        }
        self.sns.publish(
            TopicArn=self.settings.notifications_topic_arn, Subject=subject[:100], Message=json.dumps(message, indent=2)
        )
