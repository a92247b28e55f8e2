"""The training entry point: artifacts, baseline-first choice, reproducibility, the gate, the SageMaker contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from tests.unit.training_support import churn_frame, trained, training_config
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
    "plots/roc.png",
    "plots/precision_recall.png",
    "plots/calibration.png",
    "plots/confusion_matrix.png",
    "code/inference.py",
}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_given_generated_data_when_trained_then_the_model_dir_holds_every_artifact() -> None:
    model = trained()
    assert _files(model.model_dir) >= ARTIFACTS
    assert (model.model_dir / "plots" / "roc.png").read_bytes()[:4] == b"\x89PNG"


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
        ],
        environ,
    )
    assert (config.seed, config.candidate_params, config.positive_budget, config.min_improvement) == (
        3,
        {"max_iter": 50},
        0.1,
        0.01,
    )
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
