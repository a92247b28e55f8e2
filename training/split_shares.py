"""The training split's default shares of the label-mature rows (by event time), without the scientific stack: the
snapshot step's window rule (functions/prepare_training_data/change.min_split_span_days) needs them at synth."""

from __future__ import annotations

VALIDATION_FRACTION = 0.2
TEST_FRACTION = 0.2
