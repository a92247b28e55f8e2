"""The warm standby: the previous champion on the endpoint as a weight-0 variant, and when a rollback to it may be
a weights-only switch (UpdateEndpointWeightsAndCapacities) instead of a guarded redeploy.

Pure functions over what DescribeEndpoint and the serving package's metadata say, shared by the deploy function
(which switches) and the operator CLI (which shows whether it can).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Blue/green updates require the new config to keep the old variants' names, so both names are fixed.
PRIMARY_VARIANT = "primary"
STANDBY_VARIANT = "standby"
# Package metadata the deploy function writes when a promotion leaves a standby behind.
STANDBY_VERSION_KEY = "standby_version"
FAST_ROLLBACK_UNTIL_KEY = "fast_rollback_until"
# The stated bound: from the command to the previous version answering all traffic (docs/serving.md).
FAST_ROLLBACK_BOUND_SECONDS = 60
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_MODEL_VERSION = re.compile(r"-v(\d+)-[0-9a-f]+$")


@dataclass(frozen=True)
class VariantView:
    """One production variant as DescribeEndpoint shows it, with the package version its model serves."""

    name: str
    version: int | None
    weight: float
    instances: int | None


@dataclass(frozen=True)
class FastRollback:
    available: bool
    reason: str
    to_version: int | None = None
    until: str | None = None


def model_version(model_name: str) -> int | None:
    """The version in a model name the deploy function built (`<endpoint>-v<N>-<hash>`)."""
    match = _MODEL_VERSION.search(model_name)
    return int(match.group(1)) if match else None


def current_weight(variant: Mapping[str, object]) -> float:
    """A DescribeEndpoint variant's weight now (DesiredWeight differs while an update is applying)."""
    return float(variant.get("CurrentWeight", variant.get("DesiredWeight", 0.0)))  # type: ignore[arg-type]


def window_end(promoted_at: datetime, window_hours: int) -> str:
    return (promoted_at.astimezone(UTC) + timedelta(hours=window_hours)).strftime(TIME_FORMAT)


def switch_weights() -> list[dict[str, object]]:
    """UpdateEndpointWeightsAndCapacities' request: all traffic to the standby. Weights only: a capacity change
    would launch instances, which is what the fast path exists to avoid."""
    return [
        {"VariantName": PRIMARY_VARIANT, "DesiredWeight": 0.0},
        {"VariantName": STANDBY_VARIANT, "DesiredWeight": 1.0},
    ]


def fast_rollback(
    *,
    endpoint_status: str | None,
    variants: Sequence[VariantView],
    serving_metadata: Mapping[str, str],
    now: datetime,
) -> FastRollback:
    """Whether a rollback right now can be the weights-only switch to the standby, to which version, until when."""
    if endpoint_status is None:
        return FastRollback(False, "the endpoint does not exist")
    if endpoint_status != "InService":
        return FastRollback(False, f"the endpoint is {endpoint_status}")
    by_name = {v.name: v for v in variants}
    standby, primary = by_name.get(STANDBY_VARIANT), by_name.get(PRIMARY_VARIANT)
    if standby is None or primary is None:
        return FastRollback(False, "the endpoint keeps no standby (the stage's rollback.standby is off)")
    if standby.weight > 0:
        return FastRollback(False, f"the standby v{standby.version} already takes traffic")
    if standby.version is None or standby.version == primary.version:
        return FastRollback(False, "the standby holds the serving version: there is no earlier one yet")
    until = serving_metadata.get(FAST_ROLLBACK_UNTIL_KEY)
    if not until or serving_metadata.get(STANDBY_VERSION_KEY) != f"v{standby.version}":
        return FastRollback(False, f"no fast-rollback window was recorded for v{primary.version}")
    if now.astimezone(UTC) >= datetime.strptime(until, TIME_FORMAT).replace(tzinfo=UTC):
        return FastRollback(False, f"the fast-rollback window to v{standby.version} ended at {until}", standby.version)
    return FastRollback(True, "the standby is warm", standby.version, until)
