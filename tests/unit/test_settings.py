"""Function settings from the environment: typed, defaults allowed, a missing or malformed variable named."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from functions.shared.settings import SettingsError, load_settings


@dataclass(frozen=True)
class ExampleSettings:
    artifacts_bucket: str
    window_days: int
    psi_threshold: float
    dry_run: bool
    policy: str
    chunk_rows: int = 500


def test_each_field_reads_its_upper_case_variable_with_its_type() -> None:
    env = {"ARTIFACTS_BUCKET": "b", "WINDOW_DAYS": "30", "PSI_THRESHOLD": "0.2", "DRY_RUN": "true"}
    settings = load_settings(ExampleSettings, env, policy="given")
    assert settings == ExampleSettings("b", 30, 0.2, True, "given", 500)
    assert load_settings(ExampleSettings, {**env, "CHUNK_ROWS": "7"}, policy="p").chunk_rows == 7


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"WINDOW_DAYS": "30", "PSI_THRESHOLD": "0.2", "DRY_RUN": "1"},
            "ARTIFACTS_BUCKET: missing environment variable",
        ),
        (
            {"ARTIFACTS_BUCKET": "b", "WINDOW_DAYS": "thirty", "PSI_THRESHOLD": "0.2", "DRY_RUN": "1"},
            "WINDOW_DAYS: 'thirty' is not an integer",
        ),
        (
            {"ARTIFACTS_BUCKET": "b", "WINDOW_DAYS": "3", "PSI_THRESHOLD": "0.2", "DRY_RUN": "maybe"},
            "DRY_RUN: 'maybe' is not true or false",
        ),
    ],
)
def test_a_missing_or_malformed_variable_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(ExampleSettings, env, policy="p")
