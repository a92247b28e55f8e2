"""Training time, test metrics, and inference.py latency against the bare estimator, on generated data.

    .venv/bin/python -m scripts.measure_training [--dataset churn|upsell] [--rows 50000] [--batch-rows 100000]
        [--repeats 5]

Single row: p50/p99 of inference.py (JSON in, input_fn -> predict_fn -> output_fn, JSON out) over
`estimator.predict_proba` on a prebuilt numpy row, for the logistic baseline and the candidate.
Batch: inference.py on CSV text over `pipeline.predict_proba` on a prebuilt DataFrame. Contenders alternate
within each repeat so machine noise hits both alike; the medians over repeats are reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from functions.shared.contract import load_contract
from mlloop.datagen import GENERATORS
from training import inference
from training.pipeline import model_input
from training.train import TrainingConfig, run_training, write_artifacts


def _timed_calls(fn: Callable[[int], object], calls: int) -> list[float]:
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - start)
    return samples


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _json_bodies(frame: pd.DataFrame, contract: Any) -> list[str]:
    records = model_input(frame, contract).astype(object).to_dict(orient="records")
    return [
        json.dumps({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}) for r in records
    ]


def serve_from_disk(result: Any, folder: Path) -> inference.ServingModel:
    """Write the model directory and load it through model_fn, exactly as the serving container does."""
    write_artifacts(result, folder)
    return inference.model_fn(str(folder))


def measure_single(
    serving: inference.ServingModel, frame: pd.DataFrame, contract: Any, *, calls: int, repeats: int
) -> dict[str, float]:
    pipeline = serving.pipeline
    bodies = _json_bodies(frame.head(256), contract)
    rows = pipeline.named_steps["preprocess"].transform(model_input(frame.head(256), contract))
    prebuilt = [np.ascontiguousarray(rows[i : i + 1]) for i in range(len(rows))]
    estimator = pipeline.named_steps["model"]

    def serve(i: int) -> object:
        payload = inference.input_fn(bodies[i % len(bodies)], "application/json")
        return inference.output_fn(inference.predict_fn(payload, serving), "application/json")

    def bare(i: int) -> object:
        return estimator.predict_proba(prebuilt[i % len(prebuilt)])

    _timed_calls(serve, 200)
    _timed_calls(bare, 200)
    served: list[float] = []
    baseline: list[float] = []
    for _ in range(repeats):
        served += _timed_calls(serve, calls)
        baseline += _timed_calls(bare, calls)
    return {
        "inference_p50_us": statistics.median(served) * 1e6,
        "inference_p99_us": _percentile(served, 0.99) * 1e6,
        "bare_p50_us": statistics.median(baseline) * 1e6,
        "predict_single_over_bare": statistics.median(served) / statistics.median(baseline),
    }


def measure_batch(
    serving: inference.ServingModel, frame: pd.DataFrame, contract: Any, *, repeats: int
) -> dict[str, float]:
    pipeline = serving.pipeline
    features = model_input(frame, contract)
    text = frame[contract.feature_names].to_csv(header=False, index=False)
    served, direct = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        inference.output_fn(inference.predict_fn(inference.input_fn(text, "text/csv"), serving), "application/json")
        served.append(time.perf_counter() - start)
        start = time.perf_counter()
        pipeline.predict_proba(features)
        direct.append(time.perf_counter() - start)
    return {
        "inference_csv_s": statistics.median(served),
        "pipeline_predict_proba_s": statistics.median(direct),
        "predict_batch_over_pipeline": statistics.median(served) / statistics.median(direct),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(GENERATORS), default="churn")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    contract = load_contract(args.dataset)
    generate = GENERATORS[args.dataset]
    frame = generate(args.rows, seed=1, start=datetime(2025, 1, 1, tzinfo=UTC), months=12)
    start = time.perf_counter()
    result = run_training(frame, contract, TrainingConfig(dataset=args.dataset, seed=7))
    training_seconds = time.perf_counter() - start
    timings = result.timings
    print(
        f"training: {len(frame)} {args.dataset} rows (positive rate {frame[contract.label.name].mean():.3f})"
        f" in {training_seconds:.2f} s"
        f" (fit baseline {timings['fit_baseline_seconds']:.2f} s, candidate {timings['fit_candidate_seconds']:.2f} s);"
        f" chosen = {result.chosen}"
    )
    for role, report in result.evaluation["models"].items():
        test = report["test"]
        scores = " ".join(f"{k} {test[k]:.4f}" for k in ("roc_auc", "pr_auc", "log_loss", "brier", "ece"))
        at_threshold = " ".join(f"{k} {test[k]:.3f}" for k in ("precision", "recall", "f1"))
        print(f"  {role:9s} {report['estimator']:32s} test {scores} @{report['threshold']:.3f} {at_threshold}")
    batch_frame = generate(args.batch_rows, seed=2, start=datetime(2025, 1, 1, tzinfo=UTC), months=12)
    # Margins of +1 and -1 on an AUC force each model to ship, so both are served from disk.
    forced = {
        role: run_training(frame, contract, TrainingConfig(dataset=args.dataset, seed=7, min_improvement=margin))
        for role, margin in (("baseline", 1.0), ("candidate", -1.0))
    }
    folder = Path(tempfile.mkdtemp(prefix="measure-training-"))
    for role, trained in forced.items():
        serving = serve_from_disk(trained, folder / role)
        single = measure_single(serving, trained.split.test, contract, calls=args.calls, repeats=args.repeats)
        batch = measure_batch(serving, batch_frame, contract, repeats=args.repeats)
        print(
            f"{role}: single row inference.py p50 {single['inference_p50_us']:.1f} us"
            f" p99 {single['inference_p99_us']:.1f} us, bare predict_proba p50 {single['bare_p50_us']:.1f} us"
            f" -> predict_single_over_bare {single['predict_single_over_bare']:.2f}"
        )
        print(
            f"{role}: {args.batch_rows} rows CSV inference.py {batch['inference_csv_s'] * 1000:.0f} ms,"
            f" pipeline.predict_proba {batch['pipeline_predict_proba_s'] * 1000:.0f} ms"
            f" -> predict_batch_over_pipeline {batch['predict_batch_over_pipeline']:.2f}"
        )


if __name__ == "__main__":
    main()
