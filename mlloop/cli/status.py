"""One stage at a glance: registry versions, what the endpoint runs, and last-window health."""

from __future__ import annotations

from typing import Any

from mlloop.cli.observe import alarm_states, metric_over_window, recent_executions
from mlloop.cli.platform import Platform
from mlloop.cli.registry import list_versions
from mlloop.cli.serving import describe_endpoint

FRONTDOOR_SERVICE = "frontdoor"


def stage_status(platform: Platform, *, executions: int, window_hours: int) -> dict[str, Any]:
    service = {"service": f"{platform.config.project}-{FRONTDOOR_SERVICE}"}
    requests = metric_over_window(platform, "PredictRequests", hours=window_hours, dimensions=service)
    fallbacks = metric_over_window(platform, "FallbackAnswers", hours=window_hours, dimensions=service)
    drift = metric_over_window(
        platform,
        "MaxFeaturePSI",
        statistic="Maximum",
        hours=window_hours,
        dimensions={"service": f"{platform.config.project}-drift_detector"},
    )
    return {
        "stage": platform.config.stage,
        "versions": list_versions(platform),
        "endpoint": describe_endpoint(platform),
        "alarms": alarm_states(platform),
        "executions": recent_executions(platform, executions),
        "health": {
            "window_hours": window_hours,
            "requests": requests,
            "fallback_rate": (fallbacks / requests) if requests and fallbacks is not None else None,
            "max_feature_psi": drift,
        },
    }
