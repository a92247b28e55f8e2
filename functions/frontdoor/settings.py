"""The front door's settings, read from the environment the serving stack sets, at first use."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from functions.shared.serving_manifest import manifest_key
from functions.shared.settings import load_settings


@dataclass(frozen=True)
class FrontDoorSettings:
    endpoint_name: str
    manifest_bucket: str
    manifest_key: str
    capture_bucket: str
    max_batch_records: int
    endpoint_timeout_ms: int
    endpoint_retries: int
    circuit_minimum_calls: int
    circuit_failure_rate_percent: int
    circuit_half_open_probes: int
    circuit_window_seconds: int
    circuit_cooldown_seconds: int
    prediction_log_sample_percent: int = 0
    manifest_refresh_seconds: int = 60
    # A record of the contract is a few hundred bytes; this bounds the work one request can ask for.
    max_record_bytes: int = 4096

    @property
    def call_budget_seconds(self) -> float:
        """The longest one endpoint call may take with its retries: past it, a half-open probe counts as failed."""
        attempts = 1 + self.endpoint_retries
        return attempts * self.endpoint_timeout_ms / 1000.0 + 0.02 * attempts + 1.0

    @property
    def max_body_bytes(self) -> int:
        return self.max_batch_records * self.max_record_bytes + 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FrontDoorSettings:
        e = os.environ if env is None else env
        derived_key = manifest_key(e.get("ENDPOINT_NAME", ""))
        return load_settings(cls, e, manifest_key=e.get("MANIFEST_KEY") or derived_key)
