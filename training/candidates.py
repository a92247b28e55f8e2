"""Which candidate estimators a training run fits: built-in kinds or users' factories. Pure Python, so synth can
check a stage's `training.candidate` without importing scikit-learn."""

from __future__ import annotations

import re
from pathlib import Path

from functions.shared.policy import PolicyError

CANDIDATE_KINDS: tuple[str, ...] = ("hist_gradient_boosting", "random_forest", "logistic_regression")
# Users' estimator factories live in this package, which the training bundle carries (docs/training.md).
USER_MODELS_PACKAGE = "training.models"
FACTORY_PATTERN = re.compile(r"^training\.models\.[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


def candidate_kinds(spec: str) -> list[str]:
    """`kind` or `kind,kind,...`: built-in names or `training.models.<module>:<function>` factories."""
    kinds = [kind.strip() for kind in spec.split(",") if kind.strip()]
    if not kinds:
        raise PolicyError("candidate: name at least one candidate")
    for kind in kinds:
        if kind not in CANDIDATE_KINDS and not FACTORY_PATTERN.match(kind):
            raise PolicyError(
                f"candidate: {kind!r} is neither one of {', '.join(CANDIDATE_KINDS)} nor a factory "
                f"'{USER_MODELS_PACKAGE}.<module>:<function>'"
            )
    if len(set(kinds)) != len(kinds):
        raise PolicyError(f"candidate: {spec!r} names a candidate twice")
    return kinds


def factory_module_file(kind: str, root: Path) -> Path | None:
    """Where a factory's module lives under `root` (the repository or the bundle); None for a built-in kind."""
    if not FACTORY_PATTERN.match(kind):
        return None
    return root.joinpath(*kind.partition(":")[0].split(".")).with_suffix(".py")
