"""The serving functions' settings: read from the environment the stack sets, a missing one named clearly."""

from __future__ import annotations

import pytest

from functions.deploy_model.settings import DeploySettings
from functions.frontdoor.settings import FrontDoorSettings
from functions.shared.settings import SettingsError

FRONTDOOR_ENV = {
    "ENDPOINT_NAME": "mlloop-dev-churn",
    "MANIFEST_BUCKET": "artifacts",
    "CAPTURE_BUCKET": "capture",
    "MAX_BATCH_RECORDS": "100",
    "ENDPOINT_TIMEOUT_MS": "800",
    "ENDPOINT_RETRIES": "1",
    "CIRCUIT_MINIMUM_CALLS": "5",
    "CIRCUIT_FAILURE_RATE_PERCENT": "50",
    "CIRCUIT_HALF_OPEN_PROBES": "3",
    "CIRCUIT_WINDOW_SECONDS": "30",
    "CIRCUIT_COOLDOWN_SECONDS": "20",
}


def test_front_door_settings_come_from_the_environment_with_the_manifest_key_derived() -> None:
    settings = FrontDoorSettings.from_env(FRONTDOOR_ENV)
    assert settings.manifest_key == "serving/mlloop-dev-churn/manifest.json"
    assert settings.max_batch_records == 100 and settings.prediction_log_sample_percent == 0
    assert settings.max_body_bytes > 100 * 1000


@pytest.mark.parametrize(
    ("name", "value", "words"), [("CAPTURE_BUCKET", "", "missing"), ("ENDPOINT_RETRIES", "one", "not an integer")]
)
def test_a_bad_front_door_setting_is_named(name: str, value: str, words: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}: .*{words}|{name}: {words}"):
        FrontDoorSettings.from_env({**FRONTDOOR_ENV, name: value})


def test_an_unknown_deployment_mode_is_refused() -> None:
    with pytest.raises(SettingsError, match="DEPLOYMENT_MODE"):
        DeploySettings.from_env({"DEPLOYMENT_MODE": "BLUE_ONLY"})
