"""Endpoint lifecycle on the local cloud: CreateEndpoint starts real fleets, UpdateEndpoint runs blue/green.

The update runs in a background thread per endpoint. Its timeline, with every wait on the cloud's clock
(clock.py: scaled by LOCALCLOUD_TIME_SCALE, or elapsing as a controlled clock is advanced):

1. the green fleet starts from the new EndpointConfig (PendingDeploymentSummary VariantStatus Creating);
2. traffic shifts to it in the policy's steps: ALL_AT_ONCE (100 %), CANARY (CanarySize, then 100 %),
   LINEAR (LinearStepSize per step); after each shift a baking period of WaitIntervalInSeconds
   evaluates the AutoRollbackConfiguration alarms through the CloudWatch emulation;
3. with all traffic on green the blue fleet waits TerminationWaitInSeconds, then is terminated and
   the endpoint shows the new EndpointConfigName and ProductionVariants.

An alarm in ALARM, a green fleet that fails to start or MaximumExecutionTimeoutInSeconds running out
rolls all traffic back to blue: the endpoint returns to InService on the old EndpointConfigName (so a
caller comparing the running config with its target sees the rollback) and FailureReason says why.

UpdateEndpointWeightsAndCapacities changes the running fleets' weights: no config, no fleet. The endpoint is
Updating (DesiredWeight set, CurrentWeight not yet) for a nominal while, then InService with the new weights.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mlloop.localcloud import aws_state, cloudwatch, sagemaker_deployment_rules
from mlloop.localcloud.sagemaker_endpoints import (
    ContainerStartError,
    EndpointHost,
    Fleet,
    _Deployment,
    capture_summary,
    drop_host,
    host_for,
    new_workdir,
    register_host,
    start_fleet,
)

LOG = logging.getLogger("mlloop.localcloud")
_DEFAULT_MAX_EXECUTION_SECONDS = 28800
_STATUS_WORDS = re.compile(r"([a-z])([A-Z])")
_ALARM_CHECK_SECONDS = 10.0
# AWS documents no duration for a weights-only update; the endpoint shows Updating this long (scaled).
_WEIGHTS_UPDATE_SECONDS = 30.0


def _epoch_ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


def _endpoint_detail(endpoint: Any) -> dict[str, Any]:
    """An endpoint as SageMaker's EventBridge events show it (status in upper snake case, times in epoch ms)."""
    detail: dict[str, Any] = {
        "EndpointName": endpoint.endpoint_name,
        "EndpointArn": endpoint.arn,
        "EndpointConfigName": endpoint.endpoint_config_name,
        "ProductionVariants": copy.deepcopy(endpoint.production_variants),
        "EndpointStatus": _STATUS_WORDS.sub(r"\1_\2", endpoint.endpoint_status).upper(),
        "CreationTime": _epoch_ms(endpoint.creation_time),
        "LastModifiedTime": _epoch_ms(endpoint.last_modified_time),
        "Tags": {t["Key"]: t["Value"] for t in endpoint.tags or []},
    }
    if endpoint.failure_reason:
        detail["FailureReason"] = endpoint.failure_reason
    return detail


def _endpoint_event(account_id: str, region: str, endpoint: Any) -> None:
    aws_state.emit("aws.sagemaker", "SageMaker Endpoint State Change", _endpoint_detail(endpoint), [endpoint.arn])


def _variant_summaries(config: Any) -> list[dict[str, Any]]:
    return [
        {
            "VariantName": variant["VariantName"],
            "CurrentWeight": float(variant.get("InitialVariantWeight", 1.0)),
            "DesiredWeight": float(variant.get("InitialVariantWeight", 1.0)),
            "CurrentInstanceCount": int(variant.get("InitialInstanceCount") or 1),
            "DesiredInstanceCount": int(variant.get("InitialInstanceCount") or 1),
        }
        for variant in config.production_variants
    ]


def _described_variants(endpoint: Any, config: Any) -> list[dict[str, Any]]:
    """DescribeEndpoint's ProductionVariants: moto's, with the weight a variant of weight 0 has (moto drops it)."""
    described: list[dict[str, Any]] = endpoint._process_production_variants(config.production_variants)
    for summary, variant in zip(described, config.production_variants, strict=True):
        if variant.get("InitialVariantWeight") is not None:
            weight = float(variant["InitialVariantWeight"])
            summary["CurrentWeight"] = summary["DesiredWeight"] = weight
    return described


def _start_fleets(backend: Any, config: Any, host: EndpointHost) -> list[Fleet]:
    """Every variant's serving container, started side by side as SageMaker provisions variants in parallel."""
    variants = list(config.production_variants)
    with ThreadPoolExecutor(max_workers=max(1, len(variants))) as pool:
        started = [pool.submit(start_fleet, backend, v, config.data_capture_config, host) for v in variants]
        outcomes = [future.exception() or future.result() for future in started]
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    if failures:
        for fleet in outcomes:
            if isinstance(fleet, Fleet):
                fleet.server.close()
        raise failures[0]
    return [o for o in outcomes if isinstance(o, Fleet)]


def create_endpoint(original: Any, backend: Any, endpoint_name: str, endpoint_config_name: str, tags: Any) -> Any:
    """CreateEndpoint: moto's record plus a host whose fleets serve the model (Failed if a model cannot load)."""
    from moto.sagemaker.exceptions import ValidationError

    if endpoint_name in backend.endpoints:
        raise ValidationError(
            message=f'Cannot create already existing endpoint "{backend.endpoints[endpoint_name].arn}".'
        )
    endpoint = original(backend, endpoint_name, endpoint_config_name, tags)
    config = backend.endpoint_configs[endpoint_config_name]
    endpoint.production_variants = _described_variants(endpoint, config)
    endpoint.data_capture_config = capture_summary(config.data_capture_config)
    host = EndpointHost(backend.account_id, backend.region_name, endpoint_name, new_workdir(endpoint_name))
    # Loading during the call keeps `Creating` unobservable but lets boto3 waiters (30 s polls) return at once.
    try:
        host.fleets = _start_fleets(backend, config, host)
    except ContainerStartError as exc:
        endpoint.endpoint_status = "Failed"
        endpoint.failure_reason = str(exc)
    except Exception as exc:
        endpoint.endpoint_status = "Failed"
        endpoint.failure_reason = f"Failed to start the model container: {type(exc).__name__}: {exc}"
    register_host(host)
    _endpoint_event(backend.account_id, backend.region_name, endpoint)
    return endpoint


def delete_endpoint(original: Any, backend: Any, endpoint_name: str) -> None:
    original(backend, endpoint_name)
    drop_host(backend.account_id, backend.region_name, endpoint_name)


def _check_weights_request(endpoint: Any, desired: list[dict[str, Any]]) -> None:
    """What SageMaker refuses (UpdateEndpointWeightsAndCapacities and ProductionVariantSummary API references;
    endpoint-auto-scaling-zero-instances for the zero-instance rule)."""
    from moto.sagemaker.exceptions import ValidationError

    if endpoint.endpoint_status != "InService":
        raise ValidationError(
            message=f'Cannot update in-progress endpoint "{endpoint.arn}".'
            if endpoint.endpoint_status == "Updating"
            else f'Cannot update endpoint "{endpoint.arn}" in status {endpoint.endpoint_status}.'
        )
    names = [change.get("VariantName") for change in desired]
    running = {v["VariantName"] for v in endpoint.production_variants}
    for name in names:
        if names.count(name) > 1:
            raise ValidationError(message=f'The variant name "{name}" was non-unique within the request.')
        if name not in running:
            raise ValidationError(
                message=f'The variant name(s) "{name}" is/are not present within endpoint configuration '
                f'"{endpoint.endpoint_config_name}".'
            )
    for change in desired:
        if change.get("DesiredWeight") is None and change.get("DesiredInstanceCount") is None:
            raise ValidationError(
                message=f'Variant "{change["VariantName"]}" must specify DesiredWeight or DesiredInstanceCount.'
            )
        if change.get("DesiredInstanceCount") == 0:
            raise ValidationError(
                message=f'Variant "{change["VariantName"]}" cannot have 0 instances: only endpoints that host '
                "inference components can scale to zero instances."
            )
    if sum(change.get("DesiredInstanceCount") is not None for change in desired) > 1:
        raise ValidationError(
            message="UpdateEndpointWeightsAndCapacities updates the weights of one or more variants or the capacity "
            "of one variant per request."
        )


def update_weights(_original: Any, backend: Any, endpoint_name: str, desired: list[dict[str, Any]]) -> str:
    """UpdateEndpointWeightsAndCapacities: Updating with the desired values shown, then the running fleets take
    the new weights (and instance counts) and the endpoint is InService again."""
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import FakeEndpoint

    endpoint = backend.endpoints.get(endpoint_name)
    if endpoint is None:
        arn = FakeEndpoint.arn_formatter(endpoint_name, backend.account_id, backend.region_name)
        raise ValidationError(message=f'Could not find endpoint "{arn}".')
    _check_weights_request(endpoint, desired)
    changes = {change["VariantName"]: change for change in desired}
    for variant in endpoint.production_variants:
        change = changes.get(variant["VariantName"])
        if change and change.get("DesiredWeight") is not None:
            variant["DesiredWeight"] = float(change["DesiredWeight"])
        if change and change.get("DesiredInstanceCount") is not None:
            variant["DesiredInstanceCount"] = int(change["DesiredInstanceCount"])
    endpoint.endpoint_status = "Updating"
    endpoint.last_modified_time = aws_state.utcnow()
    _endpoint_event(backend.account_id, backend.region_name, endpoint)
    host = host_for(backend.account_id, backend.region_name, endpoint_name)

    def apply() -> None:
        aws_state.clock().sleep(_WEIGHTS_UPDATE_SECONDS)
        fleets = {f.variant_name: f for f in host.fleets} if host is not None else {}
        with host.lock if host is not None else contextlib.nullcontext():
            for variant in endpoint.production_variants:
                variant["CurrentWeight"] = variant.get("DesiredWeight", variant.get("CurrentWeight"))
                count = variant.get("DesiredInstanceCount") or variant.get("CurrentInstanceCount")
                variant["CurrentInstanceCount"] = count
                fleet = fleets.get(variant["VariantName"])
                if fleet is not None:
                    fleet.weight = float(variant["CurrentWeight"])
                    fleet.instance_count = int(count or fleet.instance_count)
            endpoint.endpoint_status = "InService"
            endpoint.last_modified_time = aws_state.utcnow()
        _endpoint_event(backend.account_id, backend.region_name, endpoint)

    worker = threading.Thread(target=apply, name=f"localcloud-weights-{endpoint_name}", daemon=True)
    if host is not None:
        host.thread = worker
    worker.start()
    return str(endpoint.arn)


def _shift_plan(routing: dict[str, Any], fleets: list[Fleet]) -> list[float]:
    return sagemaker_deployment_rules.traffic_plan(routing, sum(f.instance_count for f in fleets))


class _RollbackError(Exception):
    pass


class BlueGreenUpdate:
    """One UpdateEndpoint in flight."""

    def __init__(self, backend: Any, endpoint: Any, config: Any, deployment_config: dict[str, Any], host: EndpointHost):
        self.backend = backend
        self.endpoint = endpoint
        self.config = config
        self.deployment_config = deployment_config
        self.host = host
        policy = deployment_config.get("BlueGreenUpdatePolicy") or {}
        self.routing = policy.get("TrafficRoutingConfiguration") or {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
        self.termination_wait = float(policy.get("TerminationWaitInSeconds", 0))
        self.max_execution = float(policy.get("MaximumExecutionTimeoutInSeconds", _DEFAULT_MAX_EXECUTION_SECONDS))
        rollback = deployment_config.get("AutoRollbackConfiguration") or {}
        self.alarms = [a["AlarmName"] for a in rollback.get("Alarms") or []]
        self.deployment = _Deployment(config_name=config.endpoint_config_name, fleets=[])
        self.clock = aws_state.clock()
        self.started = self.clock.timeline()

    # -- describe_endpoint's view of the green fleet
    def _publish(self, status: str, message: str) -> None:
        """Show the green fleet in PendingDeploymentSummary (CurrentWeight = its share of all traffic) and emit it."""
        with self.host.lock:
            variants = _variant_summaries(self.config)
            total = sum(v["DesiredWeight"] for v in variants) or 1.0
            for summary in variants:
                summary["CurrentWeight"] = round(self.deployment.share * summary["DesiredWeight"] / total, 4)
                summary["VariantStatus"] = [
                    {"Status": status, "StatusMessage": message, "StartTime": aws_state.utcnow()}
                ]
            pending = {
                "EndpointConfigName": self.config.endpoint_config_name,
                "ProductionVariants": variants,
                "StartTime": self.endpoint.last_modified_time,
            }
            self.endpoint.pending_deployment_summary = pending
            detail = _endpoint_detail(self.endpoint)
        detail["PendingDeploymentSummary"] = json.loads(json.dumps(pending, default=_epoch_ms))
        aws_state.emit("aws.sagemaker", "SageMaker Endpoint Deployment State Change", detail, [self.endpoint.arn])

    def _elapsed(self) -> float:
        return (self.clock.timeline() - self.started).total_seconds()

    def _deadline_left(self) -> float:
        return self.max_execution - self._elapsed()

    def _bake(self, seconds: float, *, watch_alarms: bool) -> None:
        remaining = seconds
        while True:
            if self.deployment.cancel.is_set():
                raise _RollbackError("the endpoint was deleted during the update")
            if watch_alarms and self.alarms:
                states = cloudwatch.evaluate_alarms(alarm_names=self.alarms)
                firing = [name for name in self.alarms if states.get(name) == cloudwatch.ALARM]
                if firing:
                    raise _RollbackError(f"Rolled back because CloudWatch alarm(s) {', '.join(firing)} entered ALARM")
            if self._deadline_left() <= 0:
                raise _RollbackError(
                    "Rolled back because the deployment exceeded MaximumExecutionTimeoutInSeconds "
                    f"({self.max_execution:g})"
                )
            if remaining <= 0:
                return
            step = min(_ALARM_CHECK_SECONDS, remaining)
            self.clock.sleep(step, stop=self.deployment.cancel.is_set)
            remaining -= step

    def _instances(self, share: float) -> int:
        total = sum(int(v.get("InitialInstanceCount") or 1) for v in self.config.production_variants)
        return max(1, round(share * total))

    def run(self) -> None:
        try:
            try:
                fleets = _start_fleets(self.backend, self.config, self.host)
            except Exception as exc:
                raise _RollbackError(f"Failed to start the new fleet: {type(exc).__name__}: {exc}") from exc
            with self.host.lock:
                self.deployment.fleets = fleets
                self.host.green = self.deployment
            wait = float(self.routing.get("WaitIntervalInSeconds", 0))
            for share in _shift_plan(self.routing, fleets):
                capacity = "full" if share >= 1.0 else "canary"
                with self.host.lock:
                    self.deployment.share = share
                count = self._instances(share)
                self._publish("ActivatingTraffic", f"Activating traffic on {capacity} capacity of {count} instance(s).")
                self._publish(
                    "Baking",
                    f"Baking for {wait:g} seconds (WaitIntervalInSeconds) with traffic enabled on {capacity} "
                    f"capacity of {count} instance(s).",
                )
                self._bake(wait, watch_alarms=True)
            self._publish(
                "Baking",
                f"Baking for {self.termination_wait:g} seconds (TerminationWaitInSeconds) with traffic enabled on "
                f"full capacity of {self._instances(1.0)} instance(s).",
            )
            self._bake(self.termination_wait, watch_alarms=False)
            self._complete()
        except _RollbackError as reason:
            self._roll_back(str(reason))

    def _complete(self) -> None:
        with self.host.lock:
            self.host.retire(self.host.fleets)
            self.host.fleets = self.deployment.fleets
            self.host.green = None
            self.host.flush_capture()
        endpoint = self.endpoint
        endpoint.endpoint_config_name = self.config.endpoint_config_name
        endpoint.production_variants = _described_variants(endpoint, self.config)
        endpoint.data_capture_config = capture_summary(self.config.data_capture_config)
        endpoint.pending_deployment_summary = None
        endpoint.failure_reason = None
        endpoint.last_modified_time = aws_state.utcnow()
        endpoint.endpoint_status = "InService"
        _endpoint_event(self.backend.account_id, self.backend.region_name, endpoint)

    def _roll_back(self, reason: str) -> None:
        with self.host.lock:
            self.deployment.share = 0.0
            self.host.retire(self.deployment.fleets)
            self.host.green = None
        self.host.flush_capture()
        endpoint = self.endpoint
        endpoint.pending_deployment_summary = None
        endpoint.failure_reason = reason
        endpoint.last_modified_time = aws_state.utcnow()
        endpoint.endpoint_status = "InService"
        _endpoint_event(self.backend.account_id, self.backend.region_name, endpoint)


def _alarm_names(account_id: str, region: str) -> set[str]:
    from moto.cloudwatch.models import cloudwatch_backends

    return set(cloudwatch_backends[account_id][region].alarms)


def update_endpoint(backend: Any, params: dict[str, Any]) -> str:
    """UpdateEndpoint (NotImplemented in moto): validate, mark Updating, run blue/green in the background."""
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig

    name = params["EndpointName"]
    endpoint = backend.endpoints.get(name)
    if endpoint is None:
        arn = FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name)
        raise ValidationError(message=f"Could not find endpoint '{arn}'.")
    config = backend.endpoint_configs.get(params["EndpointConfigName"])
    if config is None:
        arn = FakeEndpointConfig.arn_formatter(params["EndpointConfigName"], backend.account_id, backend.region_name)
        raise ValidationError(message=f"Could not find endpoint configuration '{arn}'.")
    if endpoint.endpoint_status != "InService":
        raise ValidationError(
            message=f'Cannot update in-progress endpoint "{endpoint.arn}".'
            if endpoint.endpoint_status == "Updating"
            else f'Cannot update endpoint "{endpoint.arn}" in status {endpoint.endpoint_status}.'
        )
    deployment_config = params.get("DeploymentConfig")
    if deployment_config is None and params.get("RetainDeploymentConfig"):
        deployment_config = getattr(endpoint, "last_deployment_config", None)
    deployment_config = deployment_config or {}
    running = backend.endpoint_configs.get(endpoint.endpoint_config_name)
    try:
        sagemaker_deployment_rules.check_blue_green_update(
            deployment_config,
            old_variants=running.production_variants if running else [],
            new_variants=config.production_variants,
            existing_alarms=_alarm_names(backend.account_id, backend.region_name),
        )
    except sagemaker_deployment_rules.DeploymentRuleError as exc:
        raise ValidationError(message=str(exc)) from None
    host = host_for(backend.account_id, backend.region_name, name)
    if host is None:
        host = EndpointHost(backend.account_id, backend.region_name, name, new_workdir(name))
        register_host(host)
    endpoint.endpoint_status = "Updating"
    endpoint.failure_reason = None
    endpoint.last_modified_time = aws_state.utcnow()
    if deployment_config:
        endpoint.last_deployment_config = copy.deepcopy(deployment_config)
    update = BlueGreenUpdate(backend, endpoint, config, deployment_config, host)
    update._publish("Creating", f"Launching {update._instances(1.0)} instance(s).")
    host.thread = threading.Thread(target=update.run, name=f"localcloud-update-{name}", daemon=True)
    _endpoint_event(backend.account_id, backend.region_name, endpoint)
    host.thread.start()
    return str(endpoint.arn)
