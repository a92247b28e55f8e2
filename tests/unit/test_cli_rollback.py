"""What an operator reads after `mlloop rollback` and in `mlloop status`: the path taken and its time, what an
emergency skipped, and whether (to what, until when) a fast rollback is available."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlloop.cli.registry import APPROVED, PackageVersion
from mlloop.cli.render import Renderer
from mlloop.cli.serving import EndpointState, RollbackResult, Variant, fast_rollback_status

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _endpoint(standby_weight: float) -> EndpointState:
    return EndpointState(
        name="mlloop-prod-churn",
        status="InService",
        config_name="mlloop-prod-churn-v2-abc",
        variants=[
            Variant("primary", "mlloop-prod-churn-v2-abc", 1.0 - standby_weight, 2, 2),
            Variant("standby", "mlloop-prod-churn-v1-def", standby_weight, 1, 1),
        ],
    )


def _versions(until: str) -> list[PackageVersion]:
    metadata = {"standby_version": "v1", "fast_rollback_until": until}
    return [
        PackageVersion(2, "arn:2", APPROVED, NOW, metadata),
        PackageVersion(1, "arn:1", APPROVED, NOW, {}),
    ]


def test_status_offers_the_standby_until_the_window_ends_and_then_says_why_not(capsys: pytest.CaptureFixture) -> None:
    open_window = fast_rollback_status(_endpoint(0.0), _versions("2026-12-03T11:00:00Z"), now=NOW)
    closed = fast_rollback_status(_endpoint(0.0), _versions("2026-12-02T11:00:00Z"), now=NOW)
    taken = fast_rollback_status(_endpoint(1.0), _versions("2026-12-03T11:00:00Z"), now=NOW)
    out = Renderer(json_mode=False)
    for state in (open_window, closed, taken):
        out.fast_rollback(state)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "fast rollback: available to v1 until 2026-12-03T11:00:00Z (warm standby)"
    assert "not available (the fast-rollback window to v1 ended at 2026-12-02T11:00:00Z)" in lines[1]
    assert "guarded path" in lines[1]
    assert "the standby v1 already takes traffic" in lines[2]


def test_rollback_prints_the_path_the_time_and_what_an_emergency_skipped(capsys: pytest.CaptureFixture) -> None:
    out = Renderer(json_mode=False)
    out.rollback(
        RollbackResult(2, 1, 2.3, "fast", within_bound=True, deploy_response={"detail": "all traffic on the standby"})
    )
    out.rollback(
        RollbackResult(
            2,
            1,
            41.0,
            "emergency",
            fast_unavailable="the endpoint keeps no standby",
            skipped=["the 5 % canary step", "the 900 s bake per step"],
            deploy_response={"execution": "rollback-1", "status": "SUCCEEDED"},
        )
    )
    text = " ".join(capsys.readouterr().out.split())
    assert "fast rollback v2 -> v1 in 2.3 s (within the 60 s bound)" in text
    assert "emergency rollback v2 -> v1 in 41.0 s (deploy execution rollback-1)" in text
    assert "no fast rollback: the endpoint keeps no standby" in text
    assert "skipped: the 5 % canary step; the 900 s bake per step" in text
