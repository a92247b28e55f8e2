"""One stage at a glance: registry versions, what the endpoint runs, and last-window health."""

from __future__ import annotations

from typing import Any

from functions.drift_detector import metric_names as drift_metrics
from functions.frontdoor import metric_names as frontdoor_metrics
from mlloop.cli.observe import alarm_states, metric_over_window, recent_executions
from mlloop.cli.platform import Platform
from mlloop.cli.registry import list_versions
from mlloop.cli.serving import describe_endpoint, fast_rollback_status

FRONTDOOR_SERVICE = "frontdoor"


def stage_status(platform: Platform, *, executions: int, window_hours: int) -> dict[str, Any]:
    frontdoor = {"service": f"{platform.config.project}-{FRONTDOOR_SERVICE}"}
    requests = metric_over_window(
        platform, frontdoor_metrics.PREDICT_LATENCY, statistic="SampleCount", hours=window_hours, dimensions=frontdoor
    )
    # Published only when non-zero: no data in the window means no fallback answers.
    fallbacks = metric_over_window(
        platform, frontdoor_metrics.FALLBACK_ANSWERS, hours=window_hours, dimensions=frontdoor
    )
    drift = metric_over_window(
        platform,
        drift_metrics.MAX_PSI,
        statistic="Maximum",
        hours=window_hours,
        dimensions={drift_metrics.ENDPOINT_DIMENSION: platform.config.endpoint_name},
    )
    versions = list_versions(platform)
    endpoint = describe_endpoint(platform)
    return {
        "stage": platform.config.stage,
        "versions": versions,
        "endpoint": endpoint,
        "fast_rollback": fast_rollback_status(endpoint, versions),
        "alarms": alarm_states(platform),
        "executions": recent_executions(platform, executions),
        "health": {
            "window_hours": window_hours,
            "requests": requests,
            "fallback_rate": (fallbacks or 0.0) / requests if requests else None,
            "max_feature_psi": drift,
        },
    }
