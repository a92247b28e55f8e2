"""The training entry point: artifacts, baseline-first choice, reproducibility, the gate, the SageMaker contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pytest

from tests.unit.training_support import churn_frame, trained, training_config
from training.candidates import candidate_kinds
from training.data import TrainingDataError
from training.gate import GatePolicy, evaluate_gate
from training.pipeline import model_input, positive_probabilities
from training.train import EVALUATION_FILE, main, parse_args, run_training

pytestmark = pytest.mark.xdist_group("training")

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = {
    "model.joblib",
    "model_metadata.json",
    "evaluation.json",
    "fallback_model.json",
    "drift_baseline.json",
    "model_card.json",
    "plots/roc.svg",
    "plots/precision_recall.svg",
    "plots/calibration.svg",
    "plots/confusion_matrix.svg",
    "code/inference.py",
}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_given_generated_data_when_trained_then_the_model_dir_holds_every_artifact() -> None:
    model = trained()
    assert _files(model.model_dir) >= ARTIFACTS
    roc = ElementTree.parse(model.model_dir / "plots" / "roc.svg").getroot()
    assert roc.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(roc.findall("{http://www.w3.org/2000/svg}polyline")) == 2  # baseline and candidate


def test_given_generated_data_when_trained_then_the_model_passes_the_default_gate() -> None:
    evaluation = json.loads((trained().model_dir / EVALUATION_FILE).read_text())
    decision = evaluate_gate(evaluation, None, GatePolicy())
    assert decision.approved, decision.reasons
    assert evaluation["binary_classification_metrics"]["auc"]["value"] > 0.75


def test_given_a_trained_model_then_the_drift_baseline_weighs_features_by_their_permutation_importance() -> None:
    model_dir = trained().model_dir
    evaluation = json.loads((model_dir / EVALUATION_FILE).read_text())
    baseline = json.loads((model_dir / "drift_baseline.json").read_text())

    measured = evaluation["feature_importance"]["values"]
    shares = {f["name"]: f["importance"] for f in baseline["features"]}
    assert set(measured) == set(shares)
    assert sum(shares.values()) == pytest.approx(1.0)
    # The feature the model leans on most carries the largest share of drift weight.
    assert max(shares, key=shares.__getitem__) == max(measured, key=measured.__getitem__)


def test_given_both_models_when_trained_then_both_results_are_recorded_and_the_choice_follows_the_margin() -> None:
    evaluation = trained().result.evaluation
    comparison = evaluation["comparison"]
    assert set(evaluation["models"]) == {"baseline", "candidate"}
    gain = comparison["candidate"] - comparison["baseline"]
    assert comparison["candidate_wins"] == (gain >= comparison["min_improvement"])
    assert evaluation["chosen"] == ("candidate" if comparison["candidate_wins"] else "baseline")
    forced = trained("candidate").result
    assert forced.chosen == "candidate"
    assert forced.metadata["estimator"] == "HistGradientBoostingClassifier"


def test_given_a_trained_model_then_metadata_records_lineage_threshold_and_feature_order() -> None:
    model = trained()
    metadata = json.loads((model.model_dir / "model_metadata.json").read_text())
    assert metadata["contract_ref"] == "churn@1.0.0"
    assert metadata["feature_order"] == model.contract.feature_names
    assert metadata["seed"] == 7
    assert metadata["data_version"].startswith("sha256:")
    assert metadata["code_version"].startswith("sha256:")
    assert metadata["packages"]["scikit-learn"] == "1.9.1"
    assert 0.0 < metadata["threshold"] < 1.0
    card = json.loads((model.model_dir / "model_card.json").read_text())
    assert card["lineage"]["contract_version"] == "1.0.0"
    assert card["lineage"]["seed"] == 7


def test_given_the_cost_policy_when_trained_then_threshold_metrics_and_slices_are_reported() -> None:
    evaluation = trained().result.evaluation
    test = evaluation["metrics"]["test"]
    for key in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1"):
        assert np.isfinite(test[key])
    assert evaluation["threshold"]["cost_false_negative"] == 5.0
    # The decision is priced: the policy's costs per 1,000 decisions at the served threshold, in the card too.
    expected = 1000 * (5.0 * test["false_negatives"] + 1.0 * test["false_positives"]) / test["rows"]
    assert evaluation["threshold"]["expected_cost_per_1000"] == pytest.approx(expected, abs=1e-3)
    assert trained().result.model_card["decision_threshold"]["expected_cost_per_1000"] == pytest.approx(
        expected, abs=1e-3
    )
    assert set(evaluation["slices"]) == {"plan", "contract_type", "region", "payment_method"}
    assert evaluation["slices"]["plan"]["basic"]["rows"] >= 100
    assert evaluation["slices"]["payment_method"]["<missing>"]["skipped"]
    assert evaluation["latency"]["p50_ms"] > 0


def test_given_the_same_data_and_seed_when_trained_twice_then_metrics_and_predictions_are_identical() -> None:
    model = trained("candidate")
    again = run_training(model.frame, model.contract, training_config(min_improvement=-1.0))
    first, second = dict(model.result.evaluation), dict(again.evaluation)
    first.pop("latency")
    second.pop("latency")
    for section in (first, second):
        for report in section["models"].values():
            report.pop("fit_seconds")
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    features = model_input(model.frame, model.contract)
    assert np.array_equal(
        positive_probabilities(model.result.pipeline, features), positive_probabilities(again.pipeline, features)
    )


def test_given_sagemaker_environment_when_parsing_then_hyperparameter_strings_become_typed_settings() -> None:
    environ = {"SM_CHANNEL_TRAIN": "/opt/ml/input/data/train", "SM_MODEL_DIR": "/opt/ml/model"}
    config, paths = parse_args(
        [
            "--seed",
            "3",
            "--candidate_params",
            '{"max_iter": 50}',
            "--positive_budget",
            "0.1",
            "--min_improvement",
            "0.01",
            "--target_precision",
            "0.8",
        ],
        environ,
    )
    assert (config.seed, config.candidate_params, config.positive_budget, config.min_improvement) == (
        3,
        {"max_iter": 50},
        0.1,
        0.01,
    )
    assert config.threshold_policy.target == ("precision", 0.8)
    assert paths.train == Path("/opt/ml/input/data/train")
    assert paths.model_dir == Path("/opt/ml/model")


def _write_curated(root: Path, rows: int = 4000) -> None:
    frame = churn_frame(rows, 5)
    dates = frame["event_time"].dt.strftime("%Y-%m-%d")
    for month, part in frame.groupby(frame["event_time"].dt.strftime("%Y-%m")):
        folder = root / f"event_date={dates[part.index[0]]}"
        folder.mkdir(parents=True)
        part.to_parquet(folder / f"part-{month}.parquet", index=False)


@pytest.mark.slow
def test_given_curated_parquet_when_run_as_a_script_then_the_sagemaker_contract_is_met(tmp_path: Path) -> None:
    curated = tmp_path / "curated" / "churn"
    _write_curated(curated)
    env = {
        **os.environ,
        "SM_CHANNEL_TRAIN": str(curated),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output"),
        "PYTHONPATH": "",
    }
    # Run from elsewhere, as the container does: only train.py's own path fix makes the imports resolve.
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO / "training" / "train.py"),
            "--seed",
            "5",
            "--min_slice_rows",
            "50",
            "--latency_samples",
            "5",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout.strip().splitlines()[-1])
    assert summary["files"] == 12
    assert _files(tmp_path / "model") >= ARTIFACTS
    assert (tmp_path / "output" / "evaluation.json").exists()


def test_given_a_channel_without_data_when_run_then_the_reason_is_left_in_sm_output_dir_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "train").mkdir()
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "train"))
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    with pytest.raises(TrainingDataError):
        main([])
    assert (
        tmp_path / "output" / "failure"
    ).read_text() == f"TrainingDataError: no Parquet files under {tmp_path / 'train'}"


def test_given_a_local_run_when_asked_for_an_archive_then_model_tar_gz_has_the_files_at_its_root(
    tmp_path: Path,
) -> None:
    curated = tmp_path / "curated"
    _write_curated(curated, rows=3000)
    archive = tmp_path / "model.tar.gz"
    assert (
        main(
            [
                "--train",
                str(curated),
                "--model-dir",
                str(tmp_path / "model"),
                "--archive",
                str(archive),
                "--min_slice_rows",
                "50",
                "--latency_samples",
                "5",
                "--candidate",
                "logistic_regression",
            ]
        )
        == 0
    )
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert names >= ARTIFACTS


USER_FACTORY = "training.models.extra_trees:make_estimator"


def test_a_users_estimator_factory_is_trained_gated_and_served(tmp_path: Path) -> None:
    from functions.shared.contract import load_contract
    from training.inference import input_fn, model_fn, output_fn, predict_fn
    from training.train import write_artifacts

    contract = load_contract("churn")
    frame = churn_frame()
    result = run_training(frame, contract, training_config(candidate=USER_FACTORY, min_improvement=-1.0))
    write_artifacts(result, tmp_path / "model")

    assert result.metadata["estimator"] == "ExtraTreesClassifier"
    assert result.evaluation["comparison"]["candidate_kind"] == USER_FACTORY
    decision = evaluate_gate(result.evaluation, None, GatePolicy(min_primary=0.6, max_ece=0.2))
    assert decision.approved, decision.reasons
    serving = model_fn(str(tmp_path / "model"))
    assert serving.linear is None and serving.trees is None  # no fast path for this estimator: the generic one
    records = model_input(result.split.test.head(5), contract).to_dict(orient="records")
    body = json.dumps({"instances": [{k: (None if v != v else v) for k, v in r.items()} for r in records]})
    answer = json.loads(output_fn(predict_fn(input_fn(body, "application/json"), serving), "application/json"))
    expected = positive_probabilities(result.pipeline, model_input(result.split.test.head(5), contract))
    assert np.allclose([p["probability"] for p in answer["predictions"]], expected, atol=1e-9)


def test_several_candidates_are_fitted_and_the_best_on_validation_is_the_candidate() -> None:
    from functions.shared.contract import load_contract

    spec = f"logistic_regression,{USER_FACTORY}"
    result = run_training(churn_frame(), load_contract("churn"), training_config(candidate=spec))

    seen = result.evaluation["comparison"]["candidates"]
    assert set(seen) == {"logistic_regression", USER_FACTORY}
    assert result.evaluation["comparison"]["candidate"] == max(seen.values())
    assert set(result.evaluation["models"]) == {"baseline", "candidate"}


def test_a_factory_that_is_not_a_classifier_or_not_there_is_refused() -> None:
    from functions.shared.policy import PolicyError
    from training.pipeline import make_candidate

    with pytest.raises(PolicyError, match="neither one of"):
        candidate_kinds("my_module:make")
    with pytest.raises(ValueError, match="has no function 'nope'"):
        make_candidate("training.models.extra_trees:nope", seed=1)


def test_a_users_estimator_class_ships_with_the_model_code(tmp_path: Path) -> None:
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.pipeline import Pipeline

    from training.inference import MODEL_STEP
    from training.pipeline import copy_estimator_code

    users_class = type("UsersTrees", (ExtraTreesClassifier,), {"__module__": "training.models.extra_trees"})
    written = copy_estimator_code(Pipeline([(MODEL_STEP, users_class())]), tmp_path)

    assert written == [
        "code/training/__init__.py",
        "code/training/models/__init__.py",
        "code/training/models/extra_trees.py",
    ]
    assert (tmp_path / "training" / "models" / "extra_trees.py").read_text().startswith('"""An example')
