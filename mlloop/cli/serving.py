"""What the endpoint runs, rollback through the deploy function (fast to a warm standby, else guarded), and
retiring unused configs and models."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from functions.deploy_model.standby import FAST_ROLLBACK_BOUND_SECONDS, FastRollback, VariantView, fast_rollback
from mlloop.cli.platform import OperatorError, Platform
from mlloop.cli.registry import APPROVED, PackageVersion, choose_rollback_target, list_versions, update_package

_VERSION = re.compile(r"^v?(\d+)")
POLL_SECONDS = 0.5
DEPLOY_MARGIN_SECONDS = 600


@dataclass(frozen=True)
class Variant:
    name: str
    model: str
    weight: float
    instances: int | None
    version: int | None


@dataclass(frozen=True)
class EndpointState:
    name: str
    status: str
    config_name: str
    variants: list[Variant]
    pending_config: str | None = None
    failure_reason: str | None = None

    @property
    def serving_version(self) -> int | None:
        """The version taking most traffic (the blue fleet during a canary)."""
        versions = [v for v in sorted(self.variants, key=lambda v: v.weight, reverse=True) if v.version is not None]
        return versions[0].version if versions else None


def _model_version(platform: Platform, model_name: str, variant_name: str) -> int | None:
    """The package version a model serves: its container's MODEL_VERSION (set by the deploy function)."""
    sm = platform.client("sagemaker")
    try:
        container = sm.describe_model(ModelName=model_name).get("PrimaryContainer", {})
        text = str(container.get("Environment", {}).get("MODEL_VERSION", variant_name))
    except sm.exceptions.ClientError:
        # The model was deleted out of band: the variant name is all that is left to go by.
        text = variant_name
    match = _VERSION.match(text)
    return int(match.group(1)) if match else None


def describe_endpoint(platform: Platform) -> EndpointState | None:
    sm = platform.client("sagemaker")
    try:
        described = sm.describe_endpoint(EndpointName=platform.config.endpoint_name)
    except sm.exceptions.ClientError as exc:
        if "Could not find" in str(exc) or "ValidationException" in str(exc):
            return None
        raise
    config_name = described["EndpointConfigName"]
    models = {
        v["VariantName"]: v["ModelName"]
        for v in sm.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
    }
    variants = [
        Variant(
            name=v["VariantName"],
            model=models.get(v["VariantName"], ""),
            weight=float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0))),
            instances=v.get("CurrentInstanceCount"),
            version=_model_version(platform, models.get(v["VariantName"], ""), v["VariantName"]),
        )
        for v in described.get("ProductionVariants", [])
    ]
    pending = described.get("PendingDeploymentSummary", {}).get("EndpointConfigName")
    return EndpointState(
        name=described["EndpointName"],
        status=described["EndpointStatus"],
        config_name=config_name,
        variants=variants,
        pending_config=pending,
        failure_reason=described.get("FailureReason"),
    )


def fast_rollback_status(
    endpoint: EndpointState | None, versions: list[PackageVersion], *, now: datetime | None = None
) -> FastRollback:
    """Whether `mlloop rollback` would now be the weights-only switch to the warm standby, to which version and
    until when (the window the serving version's promotion recorded)."""
    serving = endpoint.serving_version if endpoint else None
    metadata = next((v.metadata for v in versions if v.version == serving), {})
    return fast_rollback(
        endpoint_status=endpoint.status if endpoint else None,
        variants=[
            VariantView(v.name, v.version, v.weight, v.instances) for v in (endpoint.variants if endpoint else [])
        ],
        serving_metadata=metadata,
        now=now or datetime.now(UTC),
    )


@dataclass
class RollbackResult:
    from_version: int | None
    to_version: int
    seconds: float
    # "fast" (weights to the warm standby), "guarded" (the stage's canary deploy) or "emergency" (all at once).
    path: str
    fast_unavailable: str = ""
    skipped: list[str] = field(default_factory=list)
    within_bound: bool | None = None
    deploy_response: dict[str, Any] = field(default_factory=dict)


def rollback(platform: Platform, *, to_version: str | None, reason: str, emergency: bool = False) -> RollbackResult:
    """Return traffic to an earlier approved version through the deploy function, then record who, when and why
    on the package. Within the window after a promotion that left a warm standby of the target, the function
    only moves the weights; otherwise it runs the guarded deploy an approval takes (`emergency`: all at once,
    no bake).

    The record comes after the switch: a metadata change re-emits the package's state change, and the deploy
    function ignores that for the version it already serves, so recording first would start a second deploy."""
    if not reason.strip():
        raise OperatorError("a reason is required: it is recorded with the rollback")
    started = time.monotonic()
    endpoint = describe_endpoint(platform)
    serving = endpoint.serving_version if endpoint else None
    target = choose_rollback_target(list_versions(platform), serving, to_version)
    response = platform.client("lambda").invoke(
        FunctionName=platform.find_function("deploy_model"),
        InvocationType="RequestResponse",
        Payload=json.dumps(
            {
                "action": "rollback",
                "request_id": f"rollback-{uuid.uuid4()}",
                "model_package_arn": target.arn,
                "emergency": emergency,
            }
        ).encode(),
    )
    payload = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise OperatorError(f"the rollback to v{target.version} failed: {payload.get('errorMessage', payload)}")
    if not payload.get("started"):
        raise OperatorError(f"the rollback to v{target.version} did not start: {payload.get('reason', payload)}")
    if payload["path"] == "fast":
        if not payload.get("completed"):
            raise OperatorError(
                f"the fast rollback to v{target.version} was requested but {payload.get('detail')}: watch "
                "`mlloop status`; if it does not land, run `mlloop rollback --emergency`"
            )
        outcome: dict[str, Any] = {"status": "SUCCEEDED", "detail": payload.get("detail", "")}
    else:
        outcome = wait_for_deploy(platform, str(payload["execution"]))
        if outcome["status"] != "SUCCEEDED":
            raise OperatorError(
                f"the rollback deploy of v{target.version} ended {outcome['status']}: {outcome.get('cause', '')}"
            )
    refreshed = next(v for v in list_versions(platform) if v.version == target.version)
    update_package(
        platform,
        refreshed,
        approval=APPROVED,
        note=f"rollback from v{serving} by {platform.actor}: {reason}",
        metadata={
            "rollback_by": platform.actor,
            "rollback_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "rollback_reason": reason,
            "rollback_from": f"v{serving}" if serving else "none",
            "rollback_path": str(payload["path"]),
        },
    )
    seconds = time.monotonic() - started
    return RollbackResult(
        from_version=serving,
        to_version=target.version,
        seconds=seconds,
        path=str(payload["path"]),
        fast_unavailable=str(payload.get("fast_unavailable", "")),
        skipped=list(payload.get("skipped", [])),
        within_bound=seconds <= FAST_ROLLBACK_BOUND_SECONDS if payload["path"] == "fast" else None,
        deploy_response=outcome,
    )


def wait_for_deploy(platform: Platform, execution_name: str) -> dict[str, Any]:
    """Follow the deploy state machine's execution until it ends, within the stage's deployment timeout."""
    sfn = platform.client("stepfunctions")
    arn = (
        f"arn:aws:states:{platform.region}:{platform.account}:execution:"
        f"{platform.config.prefix}-deploy-model:{execution_name}"
    )
    deadline = time.monotonic() + platform.config.deployment.max_execution_seconds + DEPLOY_MARGIN_SECONDS
    while True:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            return {"execution": execution_name, "status": described["status"], "cause": described.get("cause", "")}
        if time.monotonic() > deadline:
            raise OperatorError(f"the deploy execution {execution_name} is still running past its deadline")
        time.sleep(POLL_SECONDS)


@dataclass
class RetireResult:
    kept_versions: list[int]
    deleted_endpoint_configs: list[str]
    deleted_models: list[str]
    protected: list[str]


def retire(platform: Platform, *, keep: int, dry_run: bool = False) -> RetireResult:
    """Delete endpoint configs and models of this stage no longer referenced, keeping the `keep` newest approved
    versions; whatever the endpoint runs or is moving to is never touched."""
    if keep < 1:
        raise OperatorError("--keep must be at least 1")
    sm = platform.client("sagemaker")
    prefix = platform.config.endpoint_name
    endpoint = describe_endpoint(platform)
    approved = [v.version for v in list_versions(platform) if v.approval == APPROVED][:keep]
    protected_configs = {
        c for c in (endpoint.config_name if endpoint else None, endpoint.pending_config if endpoint else None) if c
    }
    protected_models: set[str] = set()
    for config_name in protected_configs:
        for variant in sm.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]:
            protected_models.add(variant["ModelName"])

    def kept_by_version(name: str) -> bool:
        match = re.search(r"-v(\d+)(?:-|$)", name)
        return match is not None and int(match.group(1)) in approved

    deleted_configs: list[str] = []
    for config in sm.list_endpoint_configs(NameContains=prefix, MaxResults=100)["EndpointConfigs"]:
        name = config["EndpointConfigName"]
        if name in protected_configs or kept_by_version(name):
            continue
        if not dry_run:
            sm.delete_endpoint_config(EndpointConfigName=name)
        deleted_configs.append(name)
    deleted_models: list[str] = []
    for model in sm.list_models(NameContains=prefix, MaxResults=100)["Models"]:
        name = model["ModelName"]
        if name in protected_models or kept_by_version(name):
            continue
        if not dry_run:
            sm.delete_model(ModelName=name)
        deleted_models.append(name)
    return RetireResult(
        kept_versions=approved,
        deleted_endpoint_configs=sorted(deleted_configs),
        deleted_models=sorted(deleted_models),
        protected=sorted(protected_configs | protected_models),
    )
