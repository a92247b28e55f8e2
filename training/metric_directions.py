"""Which way each evaluation metric runs. Free of numpy and scikit-learn, so the promotion gate that uses it loads
in the training workflow's Lambda, where neither is installed."""

from __future__ import annotations

HIGHER_IS_BETTER: frozenset[str] = frozenset({"roc_auc", "pr_auc", "precision", "recall", "f1", "accuracy"})
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "brier", "ece", "expected_cost_per_row"})
