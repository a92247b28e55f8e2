"""The deploy function's settings, read from the environment the serving stack sets, at call time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, cast

DeploymentMode = Literal["CANARY", "LINEAR", "ALL_AT_ONCE"]


class SettingsError(ValueError):
    """A missing or malformed environment variable; the message names it."""


def _get(env: Mapping[str, str], name: str) -> str:
    value = env.get(name)
    if not value:
        raise SettingsError(f"{name}: missing environment variable")
    return value


def _int(env: Mapping[str, str], name: str) -> int:
    raw = _get(env, name)
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not an integer") from None


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeploySettings:
        e = os.environ if env is None else env
        mode = _get(e, "DEPLOYMENT_MODE")
        if mode not in ("CANARY", "LINEAR", "ALL_AT_ONCE"):
            raise SettingsError(f"DEPLOYMENT_MODE: {mode!r} is not CANARY, LINEAR or ALL_AT_ONCE")
        return cls(
            endpoint_name=_get(e, "ENDPOINT_NAME"),
            model_package_group=_get(e, "MODEL_PACKAGE_GROUP"),
            dataset=_get(e, "DATASET"),
            sagemaker_role_arn=_get(e, "SAGEMAKER_ROLE_ARN"),
            instance_type=_get(e, "INSTANCE_TYPE"),
            instance_count=_int(e, "INSTANCE_COUNT"),
            capture_bucket=_get(e, "CAPTURE_BUCKET"),
            data_capture_percent=_int(e, "DATA_CAPTURE_PERCENT"),
            kms_key_arn=_get(e, "KMS_KEY_ARN"),
            artifacts_bucket=_get(e, "ARTIFACTS_BUCKET"),
            mode=cast(DeploymentMode, mode),
            canary_percent=_int(e, "CANARY_PERCENT"),
            linear_step_percent=_int(e, "LINEAR_STEP_PERCENT"),
            wait_seconds=_int(e, "WAIT_SECONDS"),
            termination_wait_seconds=_int(e, "TERMINATION_WAIT_SECONDS"),
            max_execution_seconds=_int(e, "MAX_EXECUTION_SECONDS"),
            rollback_alarm_names=tuple(n for n in _get(e, "ROLLBACK_ALARM_NAMES").split(",") if n),
            notifications_topic_arn=_get(e, "NOTIFICATIONS_TOPIC_ARN"),
            state_machine_arn=_get(e, "STATE_MACHINE_ARN"),
            poll_seconds=_int(e, "POLL_SECONDS"),
        )
