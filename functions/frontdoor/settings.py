"""The front door's settings, read from the environment the serving stack sets, at first use."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(ValueError):
    """A missing or malformed environment variable; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        if default is None:
            raise SettingsError(f"{name}: missing environment variable")
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not an integer") from None


def _str(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name)
    if not raw:
        raise SettingsError(f"{name}: missing environment variable")
    return raw


@dataclass(frozen=True)
class FrontDoorSettings:
    endpoint_name: str
    manifest_bucket: str
    manifest_key: str
    capture_bucket: str
    max_batch_records: int
    endpoint_timeout_ms: int
    endpoint_retries: int
    circuit_failures: int
    circuit_window_seconds: int
    circuit_cooldown_seconds: int
    prediction_log_sample_percent: int
    manifest_refresh_seconds: int
    # A record of the contract is a few hundred bytes; this bounds the work one request can ask for.
    max_record_bytes: int = 4096

    @property
    def max_body_bytes(self) -> int:
        return self.max_batch_records * self.max_record_bytes + 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FrontDoorSettings:
        e = os.environ if env is None else env
        endpoint_name = _str(e, "ENDPOINT_NAME")
        return cls(
            endpoint_name=endpoint_name,
            manifest_bucket=_str(e, "MANIFEST_BUCKET"),
            manifest_key=e.get("MANIFEST_KEY") or f"serving/{endpoint_name}/manifest.json",
            capture_bucket=_str(e, "CAPTURE_BUCKET"),
            max_batch_records=_int(e, "MAX_BATCH_RECORDS"),
            endpoint_timeout_ms=_int(e, "ENDPOINT_TIMEOUT_MS"),
            endpoint_retries=_int(e, "ENDPOINT_RETRIES"),
            circuit_failures=_int(e, "CIRCUIT_FAILURES"),
            circuit_window_seconds=_int(e, "CIRCUIT_WINDOW_SECONDS"),
            circuit_cooldown_seconds=_int(e, "CIRCUIT_COOLDOWN_SECONDS"),
            prediction_log_sample_percent=_int(e, "PREDICTION_LOG_SAMPLE_PERCENT", 0),
            manifest_refresh_seconds=_int(e, "MANIFEST_REFRESH_SECONDS", 60),
        )
