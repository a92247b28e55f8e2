"""An example of a user's estimator factory: extremely randomised trees.

The contract a factory honours (docs/training.md): called as `make(*, seed, **params)` with the stage's
`candidate_params`, it returns an unfitted scikit-learn binary classifier with `predict_proba`; the platform
puts its own preprocessing (from the data contract) in front of it and does everything around it.
"""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import ExtraTreesClassifier


def make_estimator(*, seed: int, **params: Any) -> ExtraTreesClassifier:
    options = {"n_estimators": 200, "min_samples_leaf": 20, "n_jobs": 1, **params}
    return ExtraTreesClassifier(random_state=seed, **options)
