"""Training entry point in the SageMaker scikit-learn container contract; also runs locally in seconds.

    python -m training.train --train curated/churn --model-dir out/model [--output-data-dir out/output]
                             [--archive out/model.tar.gz] [--seed 7 ...]

Directories default to SageMaker's environment: SM_CHANNEL_TRAIN (a folder tree of curated Parquet),
SM_MODEL_DIR (becomes model.tar.gz), SM_OUTPUT_DATA_DIR (becomes output.tar.gz).

Hyperparameters (SageMaker passes each as a `--name value` string):
  dataset (churn)                 contract to train against, contracts/<dataset>/v<major>.json
  contract_version ("")           pin a contract version; empty = the highest major on disk
  seed (42)                       every random choice; same data + seed = same metrics and predictions
  candidate (hist_gradient_boosting)  hist_gradient_boosting | random_forest | logistic_regression, or your own
                                  factory `training.models.<module>:<function>` (docs/training.md), or a
                                  comma-separated list of these: the best on validation is the candidate
  candidate_params ({})           JSON object of the candidate estimator's keyword arguments (with a list:
                                  an object of such objects, keyed by candidate)
  baseline_c (1.0)                inverse regularisation of the logistic-regression baseline
  primary_metric (roc_auc)        the metric the candidate must win on, on the validation split
  min_improvement (0.005)         the candidate ships only if it beats the baseline by this margin
  max_single_feature_auc (0.9)    leakage check: a feature alone ranking the label above this fails training
  validation_fraction (0.2), test_fraction (0.2)   shares of the label-mature rows, by event time
  label_as_of ("")                ISO time labels are known up to; empty = the latest event time
  cost_false_positive (1.0), cost_false_negative (5.0)   the threshold minimises expected cost ...
  positive_budget ("")            ... within this share of rows called positive, if set
  target_precision, target_recall ("")   instead of costs: the most recall at this precision, or the reverse
                                  (the stage's `training.decision` in cdk.json sets all of these)
  min_slice_rows (200)            slices (category values) with fewer test rows are not scored
  calibration_bins (10)           bins for expected calibration error and the reliability plot
  latency_samples (200)           single-record calls timed through inference.py for the report
  max_threads (1)                 OpenMP threads while fitting; on a shared or small host more threads make
                                  gradient boosting slower (measured 30x on a busy 2-core machine)
  model_version, data_version, code_version ("")   lineage stamps; empty = derived from content hashes
"""

from __future__ import annotations

import sys
from pathlib import Path

# SageMaker runs this file as a script from the source bundle's root (training/, functions/shared/, contracts/);
# putting that root on the path lets the package imports below work there exactly as under `python -m`.
_BUNDLE_ROOT = str(Path(__file__).resolve().parents[1])
if _BUNDLE_ROOT not in sys.path:
    sys.path.insert(0, _BUNDLE_ROOT)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tarfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from importlib import metadata as package_metadata  # noqa: E402
from typing import Any  # noqa: E402

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from functions.shared.contract import DataContract, load_contract  # noqa: E402
from training import inference  # noqa: E402
from training.calibration import reliability_curve  # noqa: E402
from training.candidates import candidate_kinds  # noqa: E402
from training.data import (  # noqa: E402
    TimeSplit,
    check_leakage,
    frame_data_version,
    labels,
    load_curated,
    point_in_time_split,
)
from training.decision import ThresholdPolicy  # noqa: E402
from training.drift_profile import build_drift_baseline  # noqa: E402
from training.evaluate import (  # noqa: E402
    choose_threshold,
    evaluate_scores,
    measure_latency_ms,
    model_metrics_document,
    permutation_importances,
    ranking_and_calibration,
    slice_report,
)
from training.metric_directions import HIGHER_IS_BETTER  # noqa: E402
from training.pipeline import (  # noqa: E402
    build_pipeline,
    copy_estimator_code,
    export_fallback,
    make_baseline,
    make_candidate,
    model_input,
    positive_probabilities,
)
from training.plots import write_plots  # noqa: E402
from training.split_shares import TEST_FRACTION, VALIDATION_FRACTION  # noqa: E402

MODEL_FILE = inference.MODEL_FILE
METADATA_FILE = inference.METADATA_FILE
EVALUATION_FILE = "evaluation.json"
FALLBACK_FILE = "fallback_model.json"
DRIFT_BASELINE_FILE = "drift_baseline.json"
MODEL_CARD_FILE = "model_card.json"
PACKAGES: tuple[str, ...] = ("scikit-learn", "numpy", "pandas", "scipy", "joblib")
_SOURCE_GLOBS: tuple[str, ...] = ("training/*.py", "functions/shared/*.py", "contracts/**/*.json")


@dataclass(frozen=True)
class TrainingConfig:
    dataset: str = "churn"
    contract_version: str = ""
    seed: int = 42
    candidate: str = "hist_gradient_boosting"
    candidate_params: dict[str, Any] = field(default_factory=dict)
    baseline_c: float = 1.0
    primary_metric: str = "roc_auc"
    min_improvement: float = 0.005
    max_single_feature_auc: float = 0.9
    validation_fraction: float = VALIDATION_FRACTION
    test_fraction: float = TEST_FRACTION
    label_as_of: str = ""
    cost_false_positive: float = 1.0
    cost_false_negative: float = 5.0
    positive_budget: float | None = None
    target_precision: float | None = None
    target_recall: float | None = None
    min_slice_rows: int = 200
    calibration_bins: int = 10
    latency_samples: int = 200
    max_threads: int = 1
    model_version: str = ""
    data_version: str = ""
    code_version: str = ""

    @property
    def threshold_policy(self) -> ThresholdPolicy:
        return ThresholdPolicy(
            self.cost_false_positive,
            self.cost_false_negative,
            self.positive_budget,
            self.target_precision,
            self.target_recall,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Paths:
    train: Path
    model_dir: Path
    output_dir: Path | None
    archive: Path | None


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text) if text.strip() else {}
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _optional_float(text: str) -> float | None:
    return float(text) if text.strip() else None


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[TrainingConfig, Paths]:
    defaults = TrainingConfig()
    parser = argparse.ArgumentParser(prog="training.train", description=__doc__.split("\n")[0])
    parser.add_argument("--train", default=environ.get("SM_CHANNEL_TRAIN"), help="folder of curated Parquet")
    parser.add_argument("--model-dir", "--model_dir", default=environ.get("SM_MODEL_DIR"))
    parser.add_argument("--output-data-dir", "--output_data_dir", default=environ.get("SM_OUTPUT_DATA_DIR"))
    parser.add_argument("--archive", default=None, help="also write model.tar.gz here (local runs)")
    parser.add_argument("--dataset", default=defaults.dataset)
    parser.add_argument("--contract_version", default=defaults.contract_version)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--candidate", default=defaults.candidate)
    parser.add_argument("--candidate_params", type=_json_object, default={})
    parser.add_argument("--baseline_c", type=float, default=defaults.baseline_c)
    parser.add_argument("--primary_metric", default=defaults.primary_metric)
    parser.add_argument("--min_improvement", type=float, default=defaults.min_improvement)
    parser.add_argument("--max_single_feature_auc", type=float, default=defaults.max_single_feature_auc)
    parser.add_argument("--validation_fraction", type=float, default=defaults.validation_fraction)
    parser.add_argument("--test_fraction", type=float, default=defaults.test_fraction)
    parser.add_argument("--label_as_of", default=defaults.label_as_of)
    parser.add_argument("--cost_false_positive", type=float, default=defaults.cost_false_positive)
    parser.add_argument("--cost_false_negative", type=float, default=defaults.cost_false_negative)
    parser.add_argument("--positive_budget", type=_optional_float, default=None)
    parser.add_argument("--target_precision", type=_optional_float, default=None)
    parser.add_argument("--target_recall", type=_optional_float, default=None)
    parser.add_argument("--min_slice_rows", type=int, default=defaults.min_slice_rows)
    parser.add_argument("--calibration_bins", type=int, default=defaults.calibration_bins)
    parser.add_argument("--latency_samples", type=int, default=defaults.latency_samples)
    parser.add_argument("--max_threads", type=int, default=defaults.max_threads)
    parser.add_argument("--model_version", default="")
    parser.add_argument("--data_version", default="")
    parser.add_argument("--code_version", default=environ.get("CODE_VERSION", ""))
    args = parser.parse_args(argv)
    if not args.train or not args.model_dir:
        parser.error("--train and --model-dir are required (or SM_CHANNEL_TRAIN and SM_MODEL_DIR)")
    config = TrainingConfig(
        **{k: v for k, v in vars(args).items() if k not in {"train", "model_dir", "output_data_dir", "archive"}}
    )
    paths = Paths(
        train=Path(args.train),
        model_dir=Path(args.model_dir),
        output_dir=Path(args.output_data_dir) if args.output_data_dir else None,
        archive=Path(args.archive) if args.archive else None,
    )
    return config, paths


def source_code_version() -> str:
    """A content hash of the code and contracts that shaped the model, for when no commit id is passed in."""
    root = Path(_BUNDLE_ROOT)
    digest = hashlib.sha256()
    for pattern in _SOURCE_GLOBS:
        for path in sorted(root.glob(pattern)):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return f"sha256:{digest.hexdigest()[:16]}"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


@dataclass
class TrainingResult:
    pipeline: Any
    baseline_pipeline: Any
    chosen: str
    threshold: float
    metadata: dict[str, Any]
    evaluation: dict[str, Any]
    fallback: dict[str, Any]
    drift_baseline: dict[str, Any]
    model_card: dict[str, Any]
    test_scores: dict[str, np.ndarray]
    test_labels: np.ndarray
    split: TimeSplit
    timings: dict[str, float]


def _beats(candidate: float, baseline: float, metric: str, margin: float) -> bool:
    gain = candidate - baseline if metric in HIGHER_IS_BETTER else baseline - candidate
    return gain >= margin


def _latency(
    pipeline: Any, metadata: dict[str, Any], test: pd.DataFrame, contract: DataContract, samples: int
) -> dict[str, Any]:
    """Time the real serving path (inference.py, JSON in and out) on single test records."""
    serving = inference.ServingModel(pipeline, metadata, metadata["model_version"])
    records = model_input(test.head(samples), contract).astype(object).to_dict(orient="records")
    bodies = [json.dumps(_json_ready(r)) for r in records]

    def invoke(body: str) -> str:
        payload = inference.input_fn(body, inference.JSON_CONTENT_TYPE)
        return inference.output_fn(inference.predict_fn(payload, serving), inference.JSON_CONTENT_TYPE)

    return measure_latency_ms(invoke, bodies)


def _json_ready(record: Mapping[str, Any]) -> dict[str, Any]:
    """Plain JSON types: numpy scalars to Python, NaN to null (what a client sends for a missing value)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            out[key] = None
        elif isinstance(value, np.generic):
            out[key] = value.item()
        else:
            out[key] = value
    return out


def run_training(
    frame: pd.DataFrame, contract: DataContract, config: TrainingConfig, *, data_version: str | None = None
) -> TrainingResult:
    """Split, check leakage, fit baseline and candidate, choose, evaluate, and build every artifact in memory."""
    with threadpool_limits(limits=config.max_threads):
        return _train_and_evaluate(frame, contract, config, data_version)


def _train_and_evaluate(
    frame: pd.DataFrame, contract: DataContract, config: TrainingConfig, data_version: str | None
) -> TrainingResult:
    started = time.perf_counter()
    as_of = pd.Timestamp(config.label_as_of) if config.label_as_of else None
    split = point_in_time_split(
        frame,
        contract,
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
        label_as_of=as_of,
    )
    single_feature_auc = check_leakage(split.train, contract, max_single_feature_auc=config.max_single_feature_auc)
    x_train, x_val, x_test = (model_input(part, contract) for part in (split.train, split.validation, split.test))
    y_train, y_val, y_test = (labels(part, contract) for part in (split.train, split.validation, split.test))
    policy = config.threshold_policy
    bins = config.calibration_bins

    fitted: dict[str, Any] = {}
    fit_seconds: dict[str, float] = {}
    validation: dict[str, dict[str, Any]] = {}
    scores_val: dict[str, np.ndarray] = {}
    kinds = candidate_kinds(config.candidate)
    estimators = {"baseline": make_baseline(seed=config.seed, regularization=config.baseline_c)}
    for kind in kinds:
        params = config.candidate_params if len(kinds) == 1 else config.candidate_params.get(kind, {})
        estimators[kind] = make_candidate(kind, seed=config.seed, params=params)
    for role, estimator in estimators.items():
        start = time.perf_counter()
        fitted[role] = build_pipeline(contract, estimator).fit(x_train, y_train)
        fit_seconds[role] = time.perf_counter() - start
        scores_val[role] = positive_probabilities(fitted[role], x_val)
        validation[role] = ranking_and_calibration(y_val, scores_val[role], bins=bins)

    metric = config.primary_metric
    # Several candidates: the best on validation is "the candidate" the baseline must be beaten by; the others
    # are recorded and dropped, so what follows (threshold, test report, packaging) sees two models as always.
    best = max(kinds, key=lambda kind: validation[kind][metric] * (1 if metric in HIGHER_IS_BETTER else -1))
    candidates_seen = {kind: validation[kind][metric] for kind in kinds}
    tables: tuple[dict[str, Any], ...] = (fitted, fit_seconds, scores_val, validation)
    for by_role in tables:
        by_role["candidate"] = by_role.pop(best)
        for kind in kinds:
            by_role.pop(kind, None)
    candidate_wins = _beats(
        validation["candidate"][metric], validation["baseline"][metric], metric, config.min_improvement
    )
    chosen = "candidate" if candidate_wins else "baseline"
    thresholds = {role: choose_threshold(y_val, scores_val[role], policy) for role in fitted}
    threshold = thresholds[chosen]

    scores_test = {role: positive_probabilities(p, x_test) for role, p in fitted.items()}
    models_report: dict[str, dict[str, Any]] = {
        role: {
            "estimator": type(fitted[role].named_steps[inference.MODEL_STEP]).__name__,
            "fit_seconds": round(fit_seconds[role], 3),
            "threshold": thresholds[role],
            "validation": evaluate_scores(y_val, scores_val[role], thresholds[role], policy, bins=bins),
            "test": evaluate_scores(y_test, scores_test[role], thresholds[role], policy, bins=bins),
        }
        for role in fitted
    }
    test_metrics = models_report[chosen]["test"]

    data_version = config.data_version or data_version or frame_data_version(frame)
    code_version = config.code_version or source_code_version()
    model_version = (
        config.model_version or f"{contract.dataset}-{data_version[7:15]}-{code_version[7:15]}-s{config.seed}"
    )
    pipeline = fitted[chosen]
    metadata: dict[str, Any] = {
        "model_name": contract.dataset,
        "model_version": model_version,
        "contract": contract.to_dict(),
        "contract_ref": contract.ref,
        "threshold": threshold,
        "threshold_policy": policy.to_dict(),
        "feature_order": contract.feature_names,
        "chosen": chosen,
        "estimator": models_report[chosen]["estimator"],
        "seed": config.seed,
        "data_version": data_version,
        "code_version": code_version,
        "packages": package_versions(),
        "hyperparameters": config.to_dict(),
        "split": split.summary(),
        "primary_metric": metric,
        "test_metrics": {
            k: test_metrics[k] for k in ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "precision", "recall", "f1")
        },
    }
    # The held-out splits stand in for live traffic: the model never fitted them, so its scores there are
    # distributed as serving will see them (training-split scores of a boosted model are overconfident).
    held_out = pd.concat([split.validation, split.test], ignore_index=True)
    # How much each feature matters to the chosen model weighs its drift in the detector's window verdict.
    importances = permutation_importances(pipeline, x_val, y_val, seed=config.seed)
    drift_baseline = build_drift_baseline(
        held_out,
        contract,
        np.concatenate([scores_val[chosen], scores_test[chosen]]),
        created_at=None,
        importances=importances,
    )
    fallback = export_fallback(
        fitted["baseline"], threshold=thresholds["baseline"], model_version=model_version, contract=contract
    )
    evaluation: dict[str, Any] = {
        **model_metrics_document(test_metrics),
        "model_version": model_version,
        "contract_ref": contract.ref,
        "primary_metric": metric,
        "chosen": chosen,
        "comparison": {
            "metric": metric,
            "split": "validation",
            "baseline": validation["baseline"][metric],
            "candidate": validation["candidate"][metric],
            "min_improvement": config.min_improvement,
            "candidate_wins": candidate_wins,
            "candidate_kind": best,
            "candidates": candidates_seen,
        },
        "threshold": {
            **policy.to_dict(),
            "value": threshold,
            "chosen_on": "validation",
            # What the policy's costs add up to per 1,000 decisions at this threshold, on the held-out test split.
            "expected_cost_per_1000": round(1000 * test_metrics["expected_cost_per_row"], 4),
            "predicted_positive_rate": test_metrics["predicted_positive_rate"],
        },
        "metrics": {"validation": models_report[chosen]["validation"], "test": test_metrics},
        "models": models_report,
        "slices": slice_report(
            split.test,
            y_test,
            scores_test[chosen],
            contract,
            threshold=threshold,
            policy=policy,
            min_rows=config.min_slice_rows,
            bins=bins,
        ),
        "calibration": {"bins": bins, "reliability": reliability_curve(y_test, scores_test[chosen], bins=bins)},
        "feature_importance": {"method": "permutation, ROC AUC drop on the validation split", "values": importances},
        "leakage": {"max_single_feature_auc": config.max_single_feature_auc, "single_feature_auc": single_feature_auc},
        "split": split.summary(),
        "seed": config.seed,
        "data_version": data_version,
    }
    evaluation["latency"] = _latency(pipeline, metadata, split.test, contract, config.latency_samples)
    training_seconds = time.perf_counter() - started
    model_card = build_model_card(metadata, evaluation, training_seconds)
    return TrainingResult(
        pipeline=pipeline,
        baseline_pipeline=fitted["baseline"],
        chosen=chosen,
        threshold=threshold,
        metadata=metadata,
        evaluation=evaluation,
        fallback=fallback,
        drift_baseline=drift_baseline,
        model_card=model_card,
        test_scores=scores_test,
        test_labels=y_test,
        split=split,
        timings={"training_seconds": training_seconds, **{f"fit_{k}_seconds": v for k, v in fit_seconds.items()}},
    )


def build_model_card(metadata: dict[str, Any], evaluation: dict[str, Any], training_seconds: float) -> dict[str, Any]:
    contract = metadata["contract"]
    skipped = [
        f"{feature}={value}"
        for feature, values in evaluation["slices"].items()
        for value, metrics in values.items()
        if "skipped" in metrics
    ]
    return {
        "model_name": metadata["model_name"],
        "model_version": metadata["model_version"],
        "intended_use": contract["description"],
        "prediction": {
            "label": contract["label"]["name"],
            "definition": contract["label"]["definition"],
            "window_days": contract["label"]["window_days"],
            "output": "probability of the positive label and a 0/1 label at the threshold",
        },
        "model": {
            "chosen": metadata["chosen"],
            "estimator": metadata["estimator"],
            "comparison": evaluation["comparison"],
        },
        "decision_threshold": evaluation["threshold"],
        "training_data": {"data_version": metadata["data_version"], "split": metadata["split"]},
        "evaluation": {"test": metadata["test_metrics"], "slices_not_scored": skipped},
        "lineage": {
            "contract_ref": metadata["contract_ref"],
            "contract_version": contract["version"],
            "data_version": metadata["data_version"],
            "code_version": metadata["code_version"],
            "packages": metadata["packages"],
            "seed": metadata["seed"],
        },
        "training_seconds": round(training_seconds, 3),
        "limitations": [
            "Scores are calibrated on the validation period; recheck calibration after drift alarms.",
            "Slices listed under slices_not_scored had too few rows or one outcome only in the test period.",
        ],
    }


def write_artifacts(result: TrainingResult, model_dir: Path, output_dir: Path | None = None) -> list[str]:
    """Lay out SM_MODEL_DIR as the model package expects it; mirror the reports into SM_OUTPUT_DATA_DIR."""
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(result.pipeline, model_dir / MODEL_FILE)
    documents = {
        METADATA_FILE: result.metadata,
        EVALUATION_FILE: result.evaluation,
        FALLBACK_FILE: result.fallback,
        DRIFT_BASELINE_FILE: result.drift_baseline,
        MODEL_CARD_FILE: result.model_card,
    }
    for name, document in documents.items():
        (model_dir / name).write_text(json.dumps(document, indent=2, sort_keys=True, allow_nan=False))
    plots = write_plots(
        model_dir / "plots",
        result.test_labels,
        result.test_scores,
        threshold=result.threshold,
        chosen=result.chosen,
        reliability=result.evaluation["calibration"]["reliability"],
    )
    code_dir = model_dir / "code"
    code_dir.mkdir(exist_ok=True)
    shutil.copyfile(Path(inference.__file__), code_dir / "inference.py")
    # A user's estimator class must be importable where the model is unpickled: the serving container puts code/
    # on the import path, so the class's module goes there under its own package path.
    code_files = ["code/inference.py", *copy_estimator_code(result.pipeline, code_dir)]
    if output_dir is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        for name in (EVALUATION_FILE, MODEL_CARD_FILE):
            shutil.copyfile(model_dir / name, output_dir / name)
    return [MODEL_FILE, *documents, *(f"plots/{p}" for p in plots), *code_files]


def write_model_archive(model_dir: Path, archive: Path) -> Path:
    """model.tar.gz with the files at its root, as SageMaker packs SM_MODEL_DIR (for local runs)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
    return archive


def write_failure_reason(error: BaseException, environ: Mapping[str, str]) -> None:
    """SageMaker's way for a script to say why it failed: SM_OUTPUT_DIR/failure becomes the job's FailureReason.

    The training toolkit writes that file only if the script has not (sagemaker_training.files.write_failure_file),
    and the scikit-learn container does not capture the script's stderr, so without it the reason would say
    nothing but the exit code.
    """
    output_dir = environ.get("SM_OUTPUT_DIR")
    if output_dir:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        (Path(output_dir) / "failure").write_text(f"{type(error).__name__}: {error}"[:1024])


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _train(argv)
    except Exception as error:
        write_failure_reason(error, os.environ)
        raise


def _train(argv: Sequence[str] | None) -> int:
    config, paths = parse_args(argv, os.environ)
    contract = load_contract(config.dataset, config.contract_version or None)
    loaded = load_curated(paths.train, contract)
    result = run_training(loaded.frame, contract, config, data_version=loaded.data_version)
    write_artifacts(result, paths.model_dir, paths.output_dir)
    if paths.archive is not None:
        write_model_archive(paths.model_dir, paths.archive)
    summary = {
        "model_version": result.metadata["model_version"],
        "chosen": result.chosen,
        "threshold": result.threshold,
        "test": result.metadata["test_metrics"],
        "rows": result.split.summary()["rows"],
        "files": loaded.files,
        "training_seconds": round(result.timings["training_seconds"], 2),
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
