"""The decision policy: what each kind of error costs, or the precision or recall the business needs.

Pure Python (no numpy), because synth reads it from a stage's configuration (`training.decision` in cdk.json)
and hands it to the training job as hyperparameters; training chooses the threshold from it on the validation
split (`training.evaluate.choose_threshold`) and reports the expected cost per 1,000 decisions at it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from functions.shared.policy import PolicyError, Range, policy_from_dict

_COST = Range(0, 1_000_000)
_SHARE = Range(0, 1)


@dataclass(frozen=True)
class ThresholdPolicy:
    """Costs of a false positive and a false negative (the threshold minimises expected cost), optionally within a
    positive-rate budget; or a target precision (the most recall that keeps precision at least that) or a target
    recall (the most precision that keeps recall at least that) instead of costs. Costs still price the errors
    in the report either way."""

    cost_false_positive: Annotated[float, _COST] = 1.0
    cost_false_negative: Annotated[float, _COST] = 5.0
    positive_budget: Annotated[float | None, _SHARE] = None
    target_precision: Annotated[float | None, _SHARE] = None
    target_recall: Annotated[float | None, _SHARE] = None

    def __post_init__(self) -> None:
        for name in ("cost_false_positive", "cost_false_negative"):
            if getattr(self, name) < 0:
                raise PolicyError(f"{name}: {getattr(self, name)} must be non-negative")
        only_costs = self.target is None and self.positive_budget is None
        if only_costs and self.cost_false_positive == self.cost_false_negative == 0:
            raise PolicyError("cost_false_negative: give a non-zero cost, a positive_budget or a target")
        if self.positive_budget is not None and not 0 < self.positive_budget <= 1:
            raise PolicyError(f"positive_budget: {self.positive_budget} must be in (0, 1]")
        if self.target_precision is not None and self.target_recall is not None:
            raise PolicyError("target_recall: target_precision and target_recall exclude each other; give one")
        for name in ("target_precision", "target_recall"):
            value = getattr(self, name)
            if value is not None and not 0 < value <= 1:
                raise PolicyError(f"{name}: {value} must be in (0, 1]")

    @property
    def target(self) -> tuple[str, float] | None:
        """("precision" | "recall", value) when the policy names a target instead of minimising cost."""
        if self.target_precision is not None:
            return ("precision", self.target_precision)
        if self.target_recall is not None:
            return ("recall", self.target_recall)
        return None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ThresholdPolicy:
        return policy_from_dict(cls, raw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hyperparameters(self) -> dict[str, str]:
        """The training job's hyperparameters for this policy (SageMaker passes strings; unset fields are left
        out so the script's defaults stay the single source of them)."""
        return {name: str(value) for name, value in self.to_dict().items() if value is not None}
