"""Model server: inference.py (JSON in, JSON out; CSV in for batches) against the bare fitted model.

Single row: the p50 of input_fn -> predict_fn -> output_fn on one JSON record over the p50 of the fitted
estimator's predict_proba on a prebuilt, already-preprocessed numpy row, for the baseline and the candidate.
Batch: the same entry points on a CSV body over pipeline.predict_proba on a prebuilt DataFrame.
"""

from __future__ import annotations

import io
import json
from functools import partial
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.common import ROUNDS, WARMUP, BenchResult, Size, missing_modules
from benchmarks.models import json_record, trained
from benchmarks.timing import Ratio, Timing, compare, cycling, ratio_over

CONTENDER_MODULES = ("training.inference", "training.train", "mlloop.datagen")
SINGLE_CALLS: dict[Size, int] = {"tiny": 20, "full": 400}
SINGLE_ROUNDS: dict[Size, int] = {"tiny": 1, "full": 7}
BATCH_ROWS: dict[Size, int] = {"tiny": 500, "full": 100_000}
# Requests cycle through this many distinct records so no contender profits from one cached value.
DISTINCT_RECORDS = 64


def _serving_model(pipeline: Any, metadata: dict[str, Any]) -> Any:
    from training.inference import ServingModel

    return ServingModel(pipeline, metadata, str(metadata["model_version"]))


def _single(size: Size, result: BenchResult) -> list[Ratio]:
    from training.inference import JSON_CONTENT_TYPE, input_fn, output_fn, predict_fn
    from training.pipeline import model_input

    models = trained(size)
    features = model_input(models.frame.head(DISTINCT_RECORDS), models.contract)
    bodies = [json.dumps(json_record(r)) for r in features.astype(object).to_dict(orient="records")]
    per_model: list[Ratio] = []
    for role, pipeline in models.pipelines.items():
        serving = _serving_model(pipeline, models.result.metadata)
        estimator = pipeline[-1]
        rows = [np.ascontiguousarray(pipeline[:-1].transform(features.iloc[[i]])) for i in range(len(bodies))]

        def inference_single(body: str, serving: Any = serving) -> None:
            output_fn(predict_fn(input_fn(body, JSON_CONTENT_TYPE), serving), JSON_CONTENT_TYPE)

        names = (f"inference_single_{role}", f"bare_predict_proba_{role}")
        # A one-row prediction gains nothing from threads, and on a shared 2-core machine each OpenMP barrier can
        # wait milliseconds for a descheduled thread: both sides run single-threaded.
        with threadpool_limits(limits=1):
            timings = compare(
                {names[0]: cycling(inference_single, bodies), names[1]: cycling(estimator.predict_proba, rows)},
                rounds=SINGLE_ROUNDS[size],
                calls=SINGLE_CALLS[size],
                warmup=WARMUP[size],
            )
        result.timings.update(timings)
        result.facts[f"estimator_{role}"] = type(estimator).__name__
        per_model.append(ratio_over(f"predict_single_over_bare_{role}", timings, *names, 1.5))
    worst = max(per_model, key=lambda r: r.value)
    both = Ratio("predict_single_over_bare", worst.value, 1.5, "<=", worst.numerator, worst.denominator)
    return [both, *per_model]


def _batch(size: Size, result: BenchResult) -> list[Ratio]:
    from mlloop.datagen import generate_churn
    from training.inference import CSV_CONTENT_TYPE, JSON_CONTENT_TYPE, input_fn, output_fn, predict_fn
    from training.pipeline import model_input

    models = trained(size)
    frame = model_input(generate_churn(BATCH_ROWS[size], seed=9), models.contract)
    buffer = io.StringIO()
    frame.to_csv(buffer, header=False, index=False)
    body = buffer.getvalue()
    result.facts["batch"] = {"rows": len(frame), "csv_bytes": len(body)}
    ratios = []
    for role, pipeline in models.pipelines.items():
        serving = _serving_model(pipeline, models.result.metadata)

        def inference_batch(serving: Any = serving) -> None:
            output_fn(predict_fn(input_fn(body, CSV_CONTENT_TYPE), serving), JSON_CONTENT_TYPE)

        names = (f"inference_batch_csv_{role}", f"pipeline_predict_proba_{role}")
        timings: dict[str, Timing] = compare(
            {names[0]: inference_batch, names[1]: partial(pipeline.predict_proba, frame)},
            rounds=ROUNDS[size],
            warmup=WARMUP[size],
        )
        result.timings.update(timings)
        key = "predict_batch_over_pipeline" if role == "baseline" else f"predict_batch_over_pipeline_{role}"
        ratios.append(ratio_over(key, timings, *names, 1.2))
    return ratios


def run(size: Size) -> BenchResult:
    result = BenchResult("predict")
    absent = missing_modules(*CONTENDER_MODULES)
    if absent:
        result.skipped.append(f"model server: {', '.join(absent)} not written yet")
        return result
    result.ratios.extend(_single(size, result))
    result.ratios.extend(_batch(size, result))
    return result
