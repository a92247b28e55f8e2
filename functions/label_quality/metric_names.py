"""Metric names of the live-quality job; the monitoring stack's AUC alarm and dashboard use the same names.

Every metric is in the stage's namespace with the EndpointName dimension, and again with EndpointName and
ModelVersion for each version that served the labelled predictions. Quality values are published only
when enough predictions have their labels; LabelQualityInsufficientData says when that happened.
"""

from __future__ import annotations

# Where each run's quality_report.json goes: <prefix>/<endpoint>/yyyy/mm/dd/hh/ in the artifacts bucket.
REPORTS_PREFIX = "monitoring/quality"
REPORT_NAME = "quality_report.json"

ENDPOINT_DIMENSION = "EndpointName"
# The same quality metrics per model version too (EndpointName + ModelVersion): each version on its own answers.
MODEL_VERSION_DIMENSION = "ModelVersion"

LABELED_PREDICTIONS = "LabeledPredictions"
INSUFFICIENT_DATA = "LabelQualityInsufficientData"
LIVE_AUC = "LiveAUC"
# The serving version's evaluated test AUC (its model package) minus its live AUC: > 0 means it got worse.
LIVE_AUC_DROP = "LiveAUCDrop"
LIVE_PRECISION = "LivePrecision"
LIVE_RECALL = "LiveRecall"
CALIBRATION_ERROR = "LiveCalibrationError"
BRIER_SCORE = "LiveBrierScore"
