"""One Logger, Tracer and Metrics for every function; service name and namespace come from the environment
that PlatformFunction sets (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger()
tracer = Tracer()
metrics = Metrics()
