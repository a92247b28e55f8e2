"""Measure the drift detector on the benchmark's data: time, peak memory, verdict, and the Lambda memory it needs.

    .venv/bin/python scripts/measure_drift.py [--size tiny|full] [--repeat 3] [--skip-capture]

Prints one line per figure. `full` is 100k reference rows against 1M current rows of 20 numeric + 5 categorical
features (benchmarks/drift_data.py), the size issue 8 states the detector's memory for.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_drift import detect_from_capture
from benchmarks.drift_data import (
    CATEGORICAL,
    DRIFTED,
    NUMERIC,
    SCORE_COLUMN,
    drift_contract,
    ensure_capture_files,
    ensure_drift_files,
    read_frame,
)
from benchmarks.timing import peak_traced_bytes
from functions.drift_detector.capture import CaptureBatch, FeatureSpec, parse_capture
from functions.drift_detector.logic import DriftDetector, DriftThresholds, detect_drift
from training.drift_profile import build_drift_baseline

THRESHOLDS = DriftThresholds(min_samples=1000)


def _median_seconds(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _detect_from_capture(payloads: list[bytes], baseline: dict[str, Any]) -> dict[str, Any]:
    """As the Lambda does it: one capture file at a time into the detector, so memory follows the file size."""
    spec = FeatureSpec.from_baseline(baseline)
    detector = DriftDetector(baseline)
    for payload in payloads:
        parse_capture(payload, spec, CaptureBatch()).feed(detector)
    return detector.evaluate(THRESHOLDS)


def streaming_probe(size: str) -> None:
    """Peak resident memory of the Lambda's path: capture files streamed in parse groups into one detector."""
    files = ensure_drift_files(size)  # type: ignore[arg-type]
    reference = read_frame(files.reference)
    baseline = build_drift_baseline(reference, drift_contract(), reference[SCORE_COLUMN].to_numpy())
    del reference
    gc.collect()
    start = time.perf_counter()
    # The scheduled check's own reading path: capture objects grouped as read_capture groups them.
    report = detect_from_capture(baseline, ensure_capture_files(size))  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"streaming rows={report['sample_count']} flagged={report['drifted_features']} seconds={seconds:.1f}")
    print(f"streaming_peak_rss_mb={peak_mb:.0f} (whole process, imports and baseline included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=("tiny", "full"), default="full")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-capture", action="store_true")
    parser.add_argument("--streaming-only", action="store_true", help="only the Lambda path's time and peak memory")
    args = parser.parse_args()
    if args.streaming_only:
        streaming_probe(args.size)
        return

    files = ensure_drift_files(args.size)
    reference = read_frame(files.reference)
    current = read_frame(files.current)
    baseline = build_drift_baseline(reference, drift_contract(), reference[SCORE_COLUMN].to_numpy())
    scores = current[SCORE_COLUMN].to_numpy()
    numeric = np.load(files.current_numeric)
    data_bytes = int(current[[*NUMERIC, *CATEGORICAL]].memory_usage(deep=True).sum())
    print(f"rows={len(current)} features={len(NUMERIC) + len(CATEGORICAL)} in_memory_bytes={data_bytes}")

    report = detect_drift(baseline, current, scores, THRESHOLDS)
    flagged = report["drifted_features"]
    print(f"flagged={flagged} expected={list(DRIFTED)} exact={sorted(flagged) == sorted(DRIFTED)}")
    prediction_psi = report["prediction"]["psi"]
    print(f"max_psi={report['max_psi']:.3f} ({report['max_psi_feature']}) prediction_psi={prediction_psi:.4f}")

    detector_s = _median_seconds(lambda: detect_drift(baseline, current, scores, THRESHOLDS), args.repeat)
    # The file holds the numeric columns as features x rows, each column contiguous.
    sort_s = _median_seconds(lambda: np.sort(numeric, axis=1), args.repeat)
    print(f"detector_seconds={detector_s:.3f} sort_floor_seconds={sort_s:.3f} ratio={detector_s / sort_s:.2f}")
    peak = peak_traced_bytes(lambda: detect_drift(baseline, current, scores, THRESHOLDS))
    print(f"detector_peak_extra_bytes={peak} over_data={peak / data_bytes:.3f}")

    if args.skip_capture:
        return
    payloads = [path.read_bytes() for path in ensure_capture_files(args.size)]
    print(f"capture_files={len(payloads)} capture_bytes={sum(len(p) for p in payloads)}")
    del reference
    gc.collect()

    def parse_floor() -> None:
        for payload in payloads:
            for line in payload.splitlines():
                capture = json.loads(line)["captureData"]
                json.loads(capture["endpointInput"]["data"])
                json.loads(capture["endpointOutput"]["data"])

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    e2e_s = _median_seconds(lambda: _detect_from_capture(payloads, baseline), args.repeat)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    floor_s = _median_seconds(parse_floor, 1)
    e2e_report = _detect_from_capture(payloads, baseline)
    print(f"e2e_flagged={e2e_report['drifted_features']} sample_count={e2e_report['sample_count']}")
    print(f"e2e_seconds={e2e_s:.3f} stdlib_json_parse_seconds={floor_s:.3f} ratio={e2e_s / floor_s:.2f}")
    print(f"process_peak_rss_mb={rss_after / 1024:.0f} (grew {max(rss_after - rss_before, 0) / 1024:.0f} MB in e2e)")


if __name__ == "__main__":
    main()
