"""Training time, test metrics, and inference.py latency against the bare estimator, on generated churn data.

    .venv/bin/python -m scripts.measure_training [--rows 50000] [--batch-rows 100000] [--repeats 5]

Single row: p50/p99 of inference.py (JSON in, input_fn -> predict_fn -> output_fn, JSON out) over
`estimator.predict_proba` on a prebuilt numpy row, for the logistic baseline and the candidate.
Batch: inference.py on CSV text over `pipeline.predict_proba` on a prebuilt DataFrame. Contenders alternate
within each repeat so machine noise hits both alike; the medians over repeats are reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from functions.shared.contract import load_contract
from mlloop.datagen import generate_churn
from training import inference
from training.pipeline import model_input
from training.train import TrainingConfig, run_training


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


def measure_single(
    pipeline: Any, metadata: dict[str, Any], frame: pd.DataFrame, contract: Any, *, calls: int, repeats: int
) -> dict[str, float]:
    serving = inference.ServingModel(pipeline, metadata, metadata["model_version"])
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
    pipeline: Any, metadata: dict[str, Any], frame: pd.DataFrame, contract: Any, *, repeats: int
) -> dict[str, float]:
    serving = inference.ServingModel(pipeline, metadata, metadata["model_version"])
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
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch-rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    contract = load_contract("churn")
    frame = generate_churn(args.rows, seed=1, start=datetime(2025, 1, 1, tzinfo=UTC), months=12)
    start = time.perf_counter()
    result = run_training(frame, contract, TrainingConfig(seed=7))
    training_seconds = time.perf_counter() - start
    print(
        f"training: {len(frame)} rows in {training_seconds:.2f} s (fit baseline {result.timings['fit_baseline_seconds']:.2f} s, "
        f"candidate {result.timings['fit_candidate_seconds']:.2f} s); chosen = {result.chosen}"
    )
    for role, report in result.evaluation["models"].items():
        test = report["test"]
        print(
            f"  {role:9s} {report['estimator']:32s} test roc_auc {test['roc_auc']:.4f} pr_auc {test['pr_auc']:.4f} "
            f"log_loss {test['log_loss']:.4f} brier {test['brier']:.4f} ece {test['ece']:.4f} "
            f"@{report['threshold']:.3f} precision {test['precision']:.3f} recall {test['recall']:.3f} f1 {test['f1']:.3f}"
        )
    batch_frame = generate_churn(args.batch_rows, seed=2, start=datetime(2025, 1, 1, tzinfo=UTC), months=12)
    pipelines = {"baseline": result.baseline_pipeline}
    if result.chosen == "candidate":
        pipelines["candidate"] = result.pipeline
    else:
        forced = run_training(frame, contract, TrainingConfig(seed=7, min_improvement=-1.0))
        pipelines["candidate"] = forced.pipeline
    for role, pipeline in pipelines.items():
        single = measure_single(
            pipeline, result.metadata, result.split.test, contract, calls=args.calls, repeats=args.repeats
        )
        batch = measure_batch(pipeline, result.metadata, batch_frame, contract, repeats=args.repeats)
        print(
            f"{role}: single row inference.py p50 {single['inference_p50_us']:.1f} us p99 {single['inference_p99_us']:.1f} us, "
            f"bare predict_proba p50 {single['bare_p50_us']:.1f} us -> predict_single_over_bare {single['predict_single_over_bare']:.2f}"
        )
        print(
            f"{role}: {args.batch_rows} rows CSV inference.py {batch['inference_csv_s'] * 1000:.0f} ms, pipeline.predict_proba "
            f"{batch['pipeline_predict_proba_s'] * 1000:.0f} ms -> predict_batch_over_pipeline {batch['predict_batch_over_pipeline']:.2f}"
        )


if __name__ == "__main__":
    main()
