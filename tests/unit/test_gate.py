"""The promotion gate: absolute floors, then no worse than the champion; every reason is returned."""

from __future__ import annotations

from typing import Any

import pytest

from training.gate import GateInputError, GatePolicy, champion_since_change, evaluate_gate


def report(
    roc_auc: float = 0.82,
    ece: float = 0.02,
    slices: dict[str, dict[str, Any]] | None = None,
    called_positive: float = 0.2,
) -> dict[str, Any]:
    return {
        "metrics": {
            "test": {"roc_auc": roc_auc, "ece": ece, "log_loss": 0.35, "predicted_positive_rate": called_positive}
        },
        "slices": slices
        if slices is not None
        else {"plan": {"basic": {"roc_auc": 0.80, "ece": 0.03}, "premium": {"rows": 20, "skipped": "few rows"}}},
    }


def test_given_no_champion_and_a_model_above_the_floors_then_it_is_approved() -> None:
    decision = evaluate_gate(report(), None, GatePolicy())
    assert decision.approved
    assert any(reason.startswith("champion: no current champion") for reason in decision.reasons)


def test_given_a_model_below_every_floor_then_each_failure_is_a_reason() -> None:
    decision = evaluate_gate(report(roc_auc=0.6, ece=0.2), None, GatePolicy())
    assert not decision.approved
    assert [r.split(":")[0] for r in decision.reasons] == ["floor.roc_auc", "floor.ece"]
    assert decision.to_dict()["decision"] == "reject"


def test_given_a_champion_when_the_candidate_regresses_beyond_the_delta_then_it_is_rejected() -> None:
    decision = evaluate_gate(report(roc_auc=0.80), report(roc_auc=0.83), GatePolicy(max_primary_regression=0.01))
    assert not decision.approved
    assert decision.reasons[0].startswith("champion.roc_auc")


def test_given_a_champion_when_the_candidate_is_slightly_worse_within_the_delta_then_it_is_approved() -> None:
    assert evaluate_gate(report(roc_auc=0.825), report(roc_auc=0.83), GatePolicy(max_primary_regression=0.01)).approved


def test_given_a_champion_when_calibration_worsens_beyond_the_guardrail_then_it_is_rejected() -> None:
    decision = evaluate_gate(report(ece=0.045), report(ece=0.01), GatePolicy(max_ece_increase=0.02))
    assert not decision.approved
    assert decision.reasons == [next(r for r in decision.reasons if r.startswith("champion.ece"))]


def test_given_a_champion_when_one_slice_collapses_then_that_slice_is_named() -> None:
    worse = report(slices={"plan": {"basic": {"roc_auc": 0.70}}})
    decision = evaluate_gate(worse, report(), GatePolicy(max_slice_regression=0.05))
    assert not decision.approved
    assert decision.reasons[0].startswith("champion.slice.plan=basic")


def test_given_slices_only_one_report_scored_then_they_are_not_compared() -> None:
    candidate = report(slices={"plan": {"basic": {"rows": 10, "skipped": "few rows"}}})
    assert evaluate_gate(candidate, report(), GatePolicy()).approved


def test_given_an_absolute_slice_floor_then_each_slice_below_it_fails() -> None:
    decision = evaluate_gate(report(), None, GatePolicy(min_slice_primary=0.85))
    assert decision.reasons == ["floor.slice.plan=basic: roc_auc 0.8000 must be >= 0.85"]


def test_given_a_lower_is_better_primary_metric_then_directions_flip() -> None:
    policy = GatePolicy(primary_metric="log_loss", min_primary=0.4, max_primary_regression=0.01)
    slices: dict[str, dict[str, Any]] = {"plan": {"basic": {"log_loss": 0.36}}}
    champion = report(slices=slices)
    champion["metrics"]["test"]["log_loss"] = 0.30
    decision = evaluate_gate(report(slices=slices), champion, policy)
    assert not decision.approved
    assert decision.reasons[0].startswith("champion.log_loss")


def test_given_a_policy_from_workflow_json_then_unknown_fields_and_missing_metrics_are_named() -> None:
    assert GatePolicy.from_dict({"min_primary": 0.75}).min_primary == 0.75
    with pytest.raises(GateInputError, match="min_primery"):
        GatePolicy.from_dict({"min_primery": 0.75})
    with pytest.raises(GateInputError, match=r"candidate\.metrics\.test"):
        evaluate_gate({"metrics": {}}, None, GatePolicy())
    with pytest.raises(GateInputError, match=r"champion\.metrics\.test\.roc_auc"):
        evaluate_gate(report(), {"metrics": {"test": {"ece": 0.1}}}, GatePolicy())


def test_given_the_gate_module_then_it_loads_without_numpy() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = "import sys, training.gate; print(sorted({'numpy', 'pandas', 'sklearn'} & set(sys.modules)))"
    repo = Path(__file__).resolve().parents[2]
    completed = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


@pytest.mark.parametrize("called_positive", [0.0, 1.0])
def test_a_threshold_that_labels_every_row_one_way_is_refused_whatever_its_auc(called_positive: float) -> None:
    decision = evaluate_gate(report(roc_auc=0.9, called_positive=called_positive), None, GatePolicy())

    assert not decision.approved
    assert [r.split(":")[0] for r in decision.reasons] == ["decision.threshold"]


def test_a_candidate_trained_since_a_change_is_compared_with_the_champions_live_figures_since_it() -> None:
    # Given a champion whose registration scored 0.83 on the old world, and 0.77 live since the change
    champion = report(roc_auc=0.83, slices={"plan": {"basic": {"roc_auc": 0.90, "ece": 0.01}}})
    candidate = report(roc_auc=0.80, slices={"plan": {"basic": {"roc_auc": 0.78, "ece": 0.01}}})
    live = {"roc_auc": 0.77, "ece": 0.03, "labeled_predictions": 5000.0}

    # When the gate compares them on the old figures, and on the live ones
    old = evaluate_gate(candidate, champion, GatePolicy())
    now = evaluate_gate(candidate, champion_since_change(champion, live), GatePolicy())

    # Then the old figures reject the better model for today's world; the live ones approve it
    assert not old.approved
    assert now.approved
    assert not any(c.name.startswith("champion.slice") for c in now.checks)
    assert champion_since_change(champion, None) is champion
