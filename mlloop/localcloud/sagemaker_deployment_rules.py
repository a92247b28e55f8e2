"""SageMaker's rules for a blue/green UpdateEndpoint, beyond what the service model's ranges say.

Sources (SageMaker API reference and developer guide):
- TrafficRoutingConfig (API_TrafficRoutingConfig): "CanarySize ... Value must be less than or equal to 50% of
  the variant's total instance count"; "LinearStepSize ... Value must be 10-50% of the variant's total instance
  count". The developer guide (deployment-guardrails-blue-green-canary, -linear) describes both as portions of
  the green fleet's instances that turn on: traffic moves in whole instances, so a share of traffic is the
  canary instances' share of the fleet. A percentage is turned into instances upward (at least one instance
  takes the canary), the reading that refuses rather than accepts when unsure: on one instance no canary or
  linear step is possible at all.
- deployment-guardrails-exclusions: "your new endpoint configuration must have the same variant name as the
  old endpoint configuration".
- AutoRollbackConfiguration names CloudWatch alarms that the deployment watches: an alarm that does not exist
  could never roll anything back, so the update is refused.
The ranges of WaitIntervalInSeconds (0-3600), TerminationWaitInSeconds (0-3600), MaximumExecutionTimeout
InSeconds (600-28800) and CapacitySize.Value (>= 1) are in botocore's model and enforced by request_validation.

AWS does not publish the text of these refusals; the messages below say what was broken and by how much.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


class DeploymentRuleError(ValueError):
    """An UpdateEndpoint SageMaker refuses with ValidationException; the message says which rule."""


def step_instances(size: Mapping[str, Any], instance_count: int) -> int:
    """Instances of a fleet of `instance_count` that one CapacitySize turns on."""
    value = float(size["Value"])
    if size["Type"] == "INSTANCE_COUNT":
        return int(value)
    return math.ceil(instance_count * value / 100.0 - 1e-9)


def _check_size(field: str, size: Mapping[str, Any] | None, count: int, variant: str, lowest: float) -> None:
    if not size:
        raise DeploymentRuleError(f"TrafficRoutingConfiguration.{field} is required for this traffic routing type.")
    instances = step_instances(size, count)
    share = instances / count
    shown = f"{size['Value']:g} {'instance(s)' if size['Type'] == 'INSTANCE_COUNT' else '%'}"
    if size["Type"] == "CAPACITY_PERCENT" and not lowest * 100 <= float(size["Value"]) <= 50:
        bounds = "at most 50%" if lowest == 0 else f"{lowest * 100:g}-50%"
        raise DeploymentRuleError(
            f"{field} {shown} is invalid for variant {variant}: it must be {bounds} of the variant's total "
            f"instance count ({count})."
        )
    if instances < 1 or share > 0.5 or share < lowest:
        bounds = "at most 50%" if lowest == 0 else f"{lowest * 100:g}-50%"
        raise DeploymentRuleError(
            f"{field} {shown} is {instances} of the {count} instance(s) of variant {variant} ({share:.0%}); it must "
            f"be {bounds} of the variant's total instance count, in whole instances."
        )


def check_blue_green_update(
    deployment_config: Mapping[str, Any],
    *,
    old_variants: Sequence[Mapping[str, Any]],
    new_variants: Sequence[Mapping[str, Any]],
    existing_alarms: Iterable[str],
) -> None:
    """Raise DeploymentRuleError when SageMaker would refuse this UpdateEndpoint's DeploymentConfig."""
    policy = deployment_config.get("BlueGreenUpdatePolicy")
    old_names = sorted(str(v["VariantName"]) for v in old_variants)
    new_names = sorted(str(v["VariantName"]) for v in new_variants)
    if policy and old_names and old_names != new_names:
        raise DeploymentRuleError(
            f"A blue/green update with deployment guardrails must keep the endpoint's variant names: the running "
            f"configuration has {', '.join(old_names)}, the new one {', '.join(new_names)}."
        )
    routing = (policy or {}).get("TrafficRoutingConfiguration") or {}
    kind = routing.get("Type", "ALL_AT_ONCE")
    for variant in new_variants:
        count = int(variant.get("InitialInstanceCount") or 1)
        name = str(variant["VariantName"])
        if kind == "CANARY":
            _check_size("CanarySize", routing.get("CanarySize"), count, name, 0.0)
        elif kind == "LINEAR":
            _check_size("LinearStepSize", routing.get("LinearStepSize"), count, name, 0.1)
    known = set(existing_alarms)
    rollback = deployment_config.get("AutoRollbackConfiguration") or {}
    missing = [a["AlarmName"] for a in rollback.get("Alarms") or [] if a.get("AlarmName") not in known]
    if missing:
        raise DeploymentRuleError(
            f"AutoRollbackConfiguration names CloudWatch alarm(s) that do not exist: {', '.join(missing)}."
        )


def traffic_plan(routing: Mapping[str, Any], instance_count: int) -> list[float]:
    """The green fleet's share of traffic after each step: whole instances of `instance_count`."""
    count = max(instance_count, 1)
    kind = routing.get("Type", "ALL_AT_ONCE")
    if kind == "CANARY" and routing.get("CanarySize"):
        canary = min(max(step_instances(routing["CanarySize"], count), 1), count)
        return [canary / count, 1.0] if canary < count else [1.0]
    if kind == "LINEAR" and routing.get("LinearStepSize"):
        step = min(max(step_instances(routing["LinearStepSize"], count), 1), count)
        return [min(i * step, count) / count for i in range(1, math.ceil(count / step) + 1)]
    return [1.0]
