"""The promotion gate: a pure function over evaluation reports (evaluation.json) that the training workflow calls.

Absolute floors first, then relative to the current champion (no worse by more than a delta on the primary metric,
guardrails on calibration and on every slice both reports evaluated). Every check is reported, passed or not, so a
rejection says everything that is wrong at once.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from functions.shared.policy import PolicyError, Range, policy_from_dict
from training.metric_directions import HIGHER_IS_BETTER, LOWER_IS_BETTER


class GateInputError(PolicyError):
    """An evaluation report or policy is missing what the gate needs; the message names the field."""


# Metric values (AUC, log loss, ECE) are non-negative; the caps only catch a misplaced decimal point.
_SCORE = Range(0, 100)
_SHARE = Range(0, 1)


@dataclass(frozen=True)
class GatePolicy:
    primary_metric: str = "roc_auc"
    min_primary: Annotated[float, _SCORE] = 0.70
    max_ece: Annotated[float, _SHARE] = 0.05
    max_log_loss: Annotated[float | None, _SCORE] = None
    max_primary_regression: Annotated[float, _SHARE] = 0.01
    max_ece_increase: Annotated[float, _SHARE] = 0.02
    max_slice_regression: Annotated[float, _SHARE] = 0.05
    min_slice_primary: Annotated[float | None, _SCORE] = None

    def __post_init__(self) -> None:
        if self.primary_metric not in HIGHER_IS_BETTER | LOWER_IS_BETTER:
            known = ", ".join(sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER))
            raise GateInputError(f"primary_metric: {self.primary_metric!r} is not a known metric (allowed: {known})")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> GatePolicy:
        try:
            return policy_from_dict(cls, raw)
        except PolicyError as exc:
            raise GateInputError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateCheck:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    approved: bool
    checks: tuple[GateCheck, ...]

    @property
    def reasons(self) -> list[str]:
        """Why the decision came out as it did: the failures when rejected, every check when approved."""
        failed = [c for c in self.checks if not c.passed]
        return [f"{c.name}: {c.detail}" for c in (failed or self.checks)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "approved": self.approved,
            "decision": "approve" if self.approved else "reject",
            "reasons": self.reasons,
            "checks": [asdict(c) for c in self.checks],
        }


def _test_metrics(report: Mapping[str, Any], who: str) -> Mapping[str, Any]:
    try:
        metrics = report["metrics"]["test"]
    except (KeyError, TypeError):
        raise GateInputError(f"{who}.metrics.test: missing from the evaluation report") from None
    if not isinstance(metrics, Mapping):
        raise GateInputError(f"{who}.metrics.test: expected an object")
    return metrics


def _metric(metrics: Mapping[str, Any], name: str, where: str) -> float:
    value = metrics.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise GateInputError(f"{where}.{name}: expected a number, got {value!r}")
    return float(value)


def _regression(candidate: float, champion: float, metric: str) -> float:
    """How much worse the candidate is (positive = worse), whichever direction the metric runs."""
    return champion - candidate if metric in HIGHER_IS_BETTER else candidate - champion


def _scored_slices(report: Mapping[str, Any]) -> dict[tuple[str, str], Mapping[str, Any]]:
    slices = report.get("slices") or {}
    return {
        (feature, value): metrics
        for feature, values in slices.items()
        for value, metrics in values.items()
        if isinstance(metrics, Mapping) and "skipped" not in metrics
    }


def evaluate_gate(candidate: Mapping[str, Any], champion: Mapping[str, Any] | None, policy: GatePolicy) -> GateDecision:
    """Approve the candidate for registration as the new champion, or reject it, with every reason."""
    metric = policy.primary_metric
    higher = metric in HIGHER_IS_BETTER
    cand = _test_metrics(candidate, "candidate")
    primary = _metric(cand, metric, "candidate.metrics.test")
    ece = _metric(cand, "ece", "candidate.metrics.test")
    checks: list[GateCheck] = []

    floor_ok = primary >= policy.min_primary if higher else primary <= policy.min_primary
    relation = ">=" if higher else "<="
    checks.append(
        GateCheck(f"floor.{metric}", floor_ok, f"{metric} {primary:.4f} must be {relation} {policy.min_primary}")
    )
    checks.append(GateCheck("floor.ece", ece <= policy.max_ece, f"ece {ece:.4f} must be <= {policy.max_ece}"))
    # A threshold that calls every row the same way makes no decision, whatever its AUC (e.g. costs that make
    # every positive call worth it): the served labels would be constant.
    called = _metric(cand, "predicted_positive_rate", "candidate.metrics.test")
    checks.append(
        GateCheck(
            "decision.threshold",
            0 < called < 1,
            f"the threshold calls {called:.1%} of test rows positive; it must label some rows each way",
        )
    )
    if policy.max_log_loss is not None:
        loss = _metric(cand, "log_loss", "candidate.metrics.test")
        checks.append(
            GateCheck(
                "floor.log_loss", loss <= policy.max_log_loss, f"log_loss {loss:.4f} must be <= {policy.max_log_loss}"
            )
        )
    cand_slices = _scored_slices(candidate)
    if policy.min_slice_primary is not None:
        for (feature, value), metrics in sorted(cand_slices.items()):
            score = _metric(metrics, metric, f"candidate.slices.{feature}.{value}")
            ok = score >= policy.min_slice_primary if higher else score <= policy.min_slice_primary
            checks.append(
                GateCheck(
                    f"floor.slice.{feature}={value}",
                    ok,
                    f"{metric} {score:.4f} must be {relation} {policy.min_slice_primary}",
                )
            )

    if champion is None:
        checks.append(GateCheck("champion", True, "no current champion: absolute floors only"))
    else:
        champ = _test_metrics(champion, "champion")
        champ_primary = _metric(champ, metric, "champion.metrics.test")
        worse = _regression(primary, champ_primary, metric)
        checks.append(
            GateCheck(
                f"champion.{metric}",
                worse <= policy.max_primary_regression,
                f"{metric} {primary:.4f} vs champion {champ_primary:.4f}: "
                f"regression {max(worse, 0.0):.4f} allowed up to {policy.max_primary_regression}",
            )
        )
        champ_ece = _metric(champ, "ece", "champion.metrics.test")
        checks.append(
            GateCheck(
                "champion.ece",
                ece - champ_ece <= policy.max_ece_increase,
                f"ece {ece:.4f} vs champion {champ_ece:.4f}: increase allowed up to {policy.max_ece_increase}",
            )
        )
        champ_slices = _scored_slices(champion)
        for key in sorted(set(cand_slices) & set(champ_slices)):
            feature, value = key
            score = _metric(cand_slices[key], metric, f"candidate.slices.{feature}.{value}")
            champ_score = _metric(champ_slices[key], metric, f"champion.slices.{feature}.{value}")
            slice_worse = _regression(score, champ_score, metric)
            checks.append(
                GateCheck(
                    f"champion.slice.{feature}={value}",
                    slice_worse <= policy.max_slice_regression,
                    f"{metric} {score:.4f} vs champion {champ_score:.4f}: "
                    f"regression {max(slice_worse, 0.0):.4f} allowed up to {policy.max_slice_regression}",
                )
            )
    return GateDecision(approved=all(c.passed for c in checks), checks=tuple(checks))


def champion_since_change(champion: Mapping[str, Any], live: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The champion as the gate compares a candidate trained since a change with it: its live AUC and calibration
    on the labels since the change (functions/label_quality, recorded in the run's manifest), not the test figures
    of its registration, which scored a world that is gone: after a concept change or a drift into a harder
    region the best model reachable can score under the old model's old test AUC while the old model scores
    worse still on today's data. Its slices were measured on the old world too and are left out. Without live
    figures the champion's own evaluation stands."""
    if not live or "roc_auc" not in live:
        return champion
    test = dict(_test_metrics(champion, "champion"))
    test.update({"roc_auc": float(live["roc_auc"]), "ece": float(live.get("ece", test.get("ece", 0.0)))})
    return {
        **champion,
        "metrics": {**champion["metrics"], "test": test},
        "slices": {},
        "compared_on": "live_since_change",
    }
