"""Metric names the drift detector publishes; the monitoring stack's alarms and dashboard use the same names.

Every metric is in the stage's namespace with the EndpointName dimension; the per-feature ones add Feature.
Drift values are published only when the window holds enough samples, so an alarm on them never fires on
too little traffic; DriftInsufficientData says when that happened.
"""

from __future__ import annotations

# Where each run's drift_report.json (and .html) goes: <prefix>/<endpoint>/yyyy/mm/dd/hh/ in the artifacts bucket.
REPORTS_PREFIX = "drift-reports"
REPORT_NAME = "drift_report.json"

ENDPOINT_DIMENSION = "EndpointName"
FEATURE_DIMENSION = "Feature"

SAMPLE_COUNT = "DriftSampleCount"
INSUFFICIENT_DATA = "DriftInsufficientData"
DRIFTED_SHARE = "DriftedFeatureShare"
DRIFTED_COUNT = "DriftedFeatureCount"
MAX_PSI = "MaxFeaturePSI"
PREDICTION_PSI = "PredictionPSI"
FEATURE_PSI = "FeaturePSI"
FEATURE_DRIFTED = "FeatureDrifted"
# Severities are in units of the tests' thresholds: >= 1 means drifted beyond what the window's noise explains.
MAX_FEATURE_SEVERITY = "MaxFeatureDriftSeverity"
WEIGHTED_SEVERITY = "WeightedDriftSeverity"
PREDICTION_SEVERITY = "PredictionDriftSeverity"
FEATURE_SEVERITY = "FeatureDriftSeverity"
DEPLOYED_MODEL_VERSION = "DeployedModelVersion"
