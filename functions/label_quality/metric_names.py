"""Metric names of the live-quality job; the monitoring stack's AUC alarm and dashboard use the same names.

Every metric is in the stage's namespace with the EndpointName dimension. Quality values are published only
when enough predictions have their labels; LabelQualityInsufficientData says when that happened.
"""

from __future__ import annotations

ENDPOINT_DIMENSION = "EndpointName"

LABELED_PREDICTIONS = "LabeledPredictions"
INSUFFICIENT_DATA = "LabelQualityInsufficientData"
LIVE_AUC = "LiveAUC"
LIVE_PRECISION = "LivePrecision"
LIVE_RECALL = "LiveRecall"
CALIBRATION_ERROR = "LiveCalibrationError"
BRIER_SCORE = "LiveBrierScore"
