"""The deploy function's settings, read from the environment the serving stack sets, at call time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

from functions.shared.settings import SettingsError, load_settings

DeploymentMode = Literal["CANARY", "LINEAR", "ALL_AT_ONCE"]


@dataclass(frozen=True)
class DeploySettings:
    endpoint_name: str
    model_package_group: str
    dataset: str
    sagemaker_role_arn: str
    instance_type: str
    instance_count: int
    capture_bucket: str
    data_capture_percent: int
    kms_key_arn: str
    artifacts_bucket: str
    mode: DeploymentMode
    canary_percent: int
    linear_step_percent: int
    wait_seconds: int
    termination_wait_seconds: int
    max_execution_seconds: int
    rollback_alarm_names: tuple[str, ...]
    notifications_topic_arn: str
    state_machine_arn: str
    poll_seconds: int
    capture_prefix: str = "datacapture"
    # The weight-0 standby's instances (0: the stage keeps none) and how long after a promotion it may take traffic.
    standby_instance_count: int = 0
    fast_rollback_window_hours: int = 24

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeploySettings:
        e = os.environ if env is None else env
        mode = e.get("DEPLOYMENT_MODE", "")
        if mode not in ("CANARY", "LINEAR", "ALL_AT_ONCE"):
            raise SettingsError(f"DEPLOYMENT_MODE: {mode!r} is not CANARY, LINEAR or ALL_AT_ONCE")
        alarms = tuple(n for n in e.get("ROLLBACK_ALARM_NAMES", "").split(",") if n)
        if not alarms:
            raise SettingsError("ROLLBACK_ALARM_NAMES: missing environment variable")
        return load_settings(cls, e, mode=cast(DeploymentMode, mode), rollback_alarm_names=alarms)
