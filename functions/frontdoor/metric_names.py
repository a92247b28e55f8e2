"""Metric names the front door publishes; the serving stack's alarms and the dashboard use the same names.

Every metric carries Powertools' `service` dimension (the function's POWERTOOLS_SERVICE_NAME) in the stage's
namespace; the *_BY_* metrics add one more dimension named in their constant.
"""

from __future__ import annotations

# One sample per answered request: its SampleCount is the request count.
PREDICT_LATENCY = "PredictLatency"
ENDPOINT_LATENCY = "EndpointLatency"
# Emitted only when non-zero; readers fill missing periods with 0.
FALLBACK_ANSWERS = "FallbackAnswers"
UNAVAILABLE_ANSWERS = "UnavailableAnswers"
FALLBACK_BY_REASON = "FallbackAnswersByReason"
FALLBACK_REASON_DIMENSION = "reason"
VALIDATION_ERRORS = "ValidationErrors"
VALIDATION_ERRORS_BY_FIELD = "ValidationErrorsByField"
VALIDATION_FIELD_DIMENSION = "field"
PREDICTION_LOG_FAILURES = "PredictionLogFailures"
# One count per circuit-breaker state change in one execution environment, e.g. transition=closed_to_open.
CIRCUIT_TRANSITIONS = "CircuitTransitions"
CIRCUIT_TRANSITION_DIMENSION = "transition"
