"""Drift: the detector against Evidently's DataDriftPreset, alibi-detect's TabularDrift and the np.sort floor;
its peak memory; and the whole path from capture files against only parsing them.

Every contender checks one window against a reference prepared beforehand, as each is used in production: the
detector gets the drift baseline built at training time, alibi-detect a TabularDrift built on the reference,
Evidently the reference frame (its report has no prepared form). Baseline build time is reported as a fact.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from benchmarks.common import ROOT, ROUNDS, WARMUP, BenchResult, Size, missing_modules
from benchmarks.drift_data import (
    CATEGORICAL,
    DRIFTED,
    NUMERIC,
    SCORE_COLUMN,
    categories,
    drift_contract,
    ensure_capture_files,
    ensure_drift_files,
    read_frame,
)
from benchmarks.drift_scenarios import POWER_FROM_ROWS, run_suite
from benchmarks.peer_process import PeerWorker, peer_python, peers_enabled
from benchmarks.timing import Contender, Ratio, compare, peak_traced_bytes, ratio_over, speedup

DETECTOR_MODULES = ("functions.drift_detector.logic", "training.drift_profile")
CAPTURE_MODULE = "functions.drift_detector.service"
FEATURES = [*NUMERIC, *CATEGORICAL]


def _baseline(reference: pd.DataFrame) -> dict[str, Any]:
    from training.drift_profile import build_drift_baseline

    return build_drift_baseline(reference, drift_contract(), reference[SCORE_COLUMN].to_numpy())


def _detect(baseline: Mapping[str, Any], current: pd.DataFrame) -> dict[str, Any]:
    from functions.drift_detector.logic import DriftThresholds, detect_drift

    return detect_drift(baseline, current, current[SCORE_COLUMN].to_numpy(), DriftThresholds())


def _evidently_flags(snapshot: Any) -> list[str]:
    flagged = []
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        method, threshold, value = str(config.get("method", "")), config.get("threshold"), metric["value"]
        # Evidently's p-value methods drift below the threshold, its distances at or above it.
        drifted = value < threshold if "p_value" in method else value >= threshold
        if drifted:
            flagged.append(str(config["column"]))
    return flagged


def _evidently(reference: pd.DataFrame, current: pd.DataFrame, verdict: dict[str, Any]) -> Contender:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=list(NUMERIC), categorical_columns=list(CATEGORICAL))

    def run() -> None:
        ref = Dataset.from_pandas(reference[FEATURES], data_definition=definition)
        cur = Dataset.from_pandas(current[FEATURES], data_definition=definition)
        verdict["snapshot"] = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)

    return run


def _read_floor(current: pd.DataFrame, names: tuple[str, ...] | list[str] = FEATURES) -> Callable[[], int]:
    """One vectorised pass reading every value of the window once: each feature column's missing count (pandas
    isna + sum: a NaN test per float, a None/NaN test per category object), as the detector's first look."""
    columns = [current[name] for name in names]

    def floor() -> int:
        return sum(int(column.isna().sum()) for column in columns)

    return floor


def _read_bytes(paths: list[Path]) -> bytes:
    return b"".join(p.read_bytes() for p in paths)


def _join_lines(strings: pa.Array) -> bytes:
    # binary_join over a single list joins in Arrow, with no Python object per row.
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(strings)], pa.int32()), strings), "\n")
    return bytes(joined[0].as_py().encode()) if len(strings) else b""


def _parse_pyarrow(payload: bytes) -> int:
    """Every JSON document in the files decoded: each line's envelope, then the request and response bodies."""
    envelope = pajson.read_json(io.BytesIO(payload)).column("captureData").combine_chunks()
    rows = 0
    for side in ("endpointInput", "endpointOutput"):
        bodies = pc.struct_field(envelope, [side, "data"])
        rows += pajson.read_json(io.BytesIO(_join_lines(bodies))).num_rows
    return rows


def _parse_python(loads: Callable[[bytes | str], Any], payload: bytes) -> int:
    rows = 0
    for line in payload.splitlines():
        capture = loads(line)["captureData"]
        loads(capture["endpointInput"]["data"])
        loads(capture["endpointOutput"]["data"])
        rows += 1
    return rows


def _parsers() -> dict[str, Callable[[bytes], int]]:
    """The JSON parsers this environment has; the fastest in this run is the floor."""
    parsers: dict[str, Callable[[bytes], int]] = {
        "parse_pyarrow.json": _parse_pyarrow,
        "parse_json_stdlib": lambda payload: _parse_python(json.loads, payload),
    }
    try:
        import orjson

        parsers["parse_orjson"] = lambda payload: _parse_python(orjson.loads, payload)
    except ImportError:
        pass
    try:
        import msgspec

        decoder = msgspec.json.Decoder()
        parsers["parse_msgspec"] = lambda payload: _parse_python(decoder.decode, payload)
    except ImportError:
        pass
    return parsers


class _LocalCaptureBucket:
    """S3 get_object over the local capture files, so the drift check's own reading path runs unchanged."""

    def get_object(self, **request: str) -> dict[str, Any]:
        return {"Body": io.BytesIO(Path(request["Key"]).read_bytes())}


def detect_from_capture(baseline: Mapping[str, Any], paths: list[Path]) -> dict[str, Any]:
    """What the scheduled drift check does with a window's capture objects: stream them through the detector."""
    from functions.drift_detector.capture import FeatureSpec
    from functions.drift_detector.logic import DriftDetector, DriftThresholds
    from functions.drift_detector.service import DEFAULT_PARSE_GROUP_BYTES, read_capture

    detector = DriftDetector(baseline)
    objects = [("capture", str(path), path.stat().st_size) for path in paths]
    spec = FeatureSpec.from_baseline(baseline)
    read_capture(_LocalCaptureBucket(), objects, spec, detector, DEFAULT_PARSE_GROUP_BYTES)
    return detector.evaluate(DriftThresholds())


def measure_memory(size: Size) -> dict[str, int]:
    """The detector's peak extra resident memory over one check, in a fresh process so no earlier pool hides it."""
    out = subprocess.run(
        [sys.executable, "-c", f"from benchmarks.bench_drift import _memory_probe; _memory_probe({size!r})"],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(ROOT),
    )
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _status_kib() -> dict[str, int]:
    with open("/proc/self/status") as status:
        return {line.split(":")[0]: int(line.split()[1]) for line in status if line.startswith(("VmRSS", "VmHWM"))}


def _memory_probe(size: Size) -> None:
    """Two views of the same check: resident pages added (sees every allocator, but memory freed while loading
    can be reused unseen) and tracemalloc's peak (sees numpy and Python allocations wherever they land)."""
    import gc

    files = ensure_drift_files(size)
    baseline = _baseline(read_frame(files.reference))
    current = read_frame(files.current)
    data_bytes = int(current[[*FEATURES, SCORE_COLUMN]].memory_usage(deep=True, index=False).sum())
    numeric_bytes = int(current[[*NUMERIC, SCORE_COLUMN]].memory_usage(index=False).sum())
    _detect(baseline, current.iloc[:1000])
    gc.collect()
    before = _status_kib()["VmRSS"]
    # Writing 5 resets the high-water mark (VmHWM) to the current resident size (Linux >= 4.0).
    Path("/proc/self/clear_refs").write_text("5")
    _detect(baseline, current)
    rss_extra = max(_status_kib()["VmHWM"] - before, 0) * 1024
    traced = peak_traced_bytes(lambda: _detect(baseline, current))
    figures = {
        "peak_extra_bytes": max(rss_extra, traced),
        "rss_extra_bytes": rss_extra,
        "tracemalloc_peak_bytes": traced,
        "data_bytes": data_bytes,
        "numeric_bytes": numeric_bytes,
    }
    print(json.dumps(figures))


def run(size: Size) -> BenchResult:
    result = BenchResult("drift")
    absent = missing_modules(*DETECTOR_MODULES)
    if absent:
        result.skipped.append(f"detector: {', '.join(absent)} not written yet")
        return result
    files = ensure_drift_files(size)
    reference, current = read_frame(files.reference), read_frame(files.current)
    start = time.perf_counter()
    baseline = _baseline(reference)
    result.facts["baseline_build_s"] = time.perf_counter() - start
    result.facts["rows"] = {"reference": len(reference), "current": len(current)}
    columns_major = np.load(files.current_numeric)
    verdicts: dict[str, Any] = {}

    def detector() -> None:
        verdicts["detector"] = _detect(baseline, current)

    def detector_numeric() -> None:
        from functions.drift_detector.logic import DriftDetector

        numeric = DriftDetector(baseline)
        for name in NUMERIC:
            numeric.features[name].add(current[name])

    contenders: dict[str, Contender] = {
        "detector": detector,
        "np.sort_floor": lambda: np.sort(columns_major, axis=1),
        "read_floor": _read_floor(current),
        # Without a target: the numeric half alone, whose floor (a NaN test per float) is memory-bandwidth bound.
        "detector_numeric_columns": detector_numeric,
        "read_floor_numeric_columns": _read_floor(current, NUMERIC),
    }
    if not peers_enabled():
        result.skipped.append("evidently and alibi-detect: peers left out (MLLOOP_BENCH_PEERS=0)")
    elif missing_modules("evidently"):
        result.skipped.append("evidently: not installed (make bench installs the bench group)")
    else:
        contenders["evidently"] = _evidently(reference, current, verdicts)
    alibi_python = peer_python("alibi-detect")
    worker = None
    if alibi_python is None:
        if peers_enabled():
            result.skipped.append("alibi-detect: .venv-bench-alibi not installed (make bench installs it)")
    else:
        spec = {
            "reference": str(files.reference),
            "current": str(files.current),
            "numeric": list(NUMERIC),
            "categorical": {name: categories(i) for i, name in enumerate(CATEGORICAL)},
        }
        worker = PeerWorker(alibi_python, ROOT / "benchmarks" / "peers" / "alibi_tabular.py", spec)
        contenders["alibi-detect"] = worker.run
    try:
        # No warm-up round: Evidently takes minutes at full size, and the median of the rounds absorbs a slow first one.
        timings = compare(contenders, rounds=ROUNDS[size], warmup=0)
    finally:
        if worker is not None:
            worker.close()
    result.timings.update(timings)
    flagged = list(verdicts["detector"]["drifted_features"])
    result.facts["injected"] = list(DRIFTED)
    result.facts["detector_flagged"] = flagged
    result.facts["detector_flags_exactly_injected"] = sorted(flagged) == sorted(DRIFTED)
    ratios: list[Ratio] = [
        ratio_over("drift_time_over_sort_floor", timings, "detector", "np.sort_floor", 3),
        ratio_over("drift_time_over_read_floor", timings, "detector", "read_floor", 3),
    ]
    if "evidently" in timings:
        result.facts["evidently_flagged"] = _evidently_flags(verdicts["snapshot"])
        ratios.append(speedup("drift_speedup_vs_evidently", timings, "detector", "evidently", 50))
    if worker is not None:
        result.facts["alibi_flagged"] = worker.last.get("flagged")
        ratios.append(speedup("drift_speedup_vs_alibi", timings, "detector", "alibi-detect", 4))
    verdicts_line = ", ".join(
        f"{who} {sorted(result.facts[key])}"
        for who, key in (
            ("detector", "detector_flagged"),
            ("Evidently", "evidently_flagged"),
            ("alibi", "alibi_flagged"),
        )
        if key in result.facts
    )
    result.notes.append(f"injected {list(DRIFTED)}; flagged: {verdicts_line}")
    result.notes.append(f"baseline build (once, at training): {result.facts['baseline_build_s']:.2f} s")
    numeric_over_read = timings["detector_numeric_columns"].median / timings["read_floor_numeric_columns"].median
    result.facts["numeric_columns_over_read_floor"] = numeric_over_read
    result.notes.append(
        f"numeric columns alone (binning on the baseline's grid vs a NaN count of the same 20 columns): "
        f"{numeric_over_read:.1f}x; the 25-column read floor is dominated by pandas' missing test over category objects"
    )
    memory = measure_memory(size)
    result.facts["memory"] = memory
    mib = {key: value / 2**20 for key, value in memory.items()}
    result.notes.append(
        f"detector peak extra memory {mib['peak_extra_bytes']:.1f} MiB (RSS {mib['rss_extra_bytes']:.1f},"
        f" tracemalloc {mib['tracemalloc_peak_bytes']:.1f}) over {mib['data_bytes']:.0f} MiB of data"
    )
    ratios.append(
        Ratio(
            "drift_peak_mem_over_data",
            memory["peak_extra_bytes"] / memory["data_bytes"],
            0.5,
            "<=",
            "detector peak extra memory (max of RSS and tracemalloc)",
            "current data in memory (deep)",
        )
    )
    result.ratios.extend(ratios)
    _run_end_to_end(size, baseline, result)
    _run_scenarios(size, result)
    return result


def _run_scenarios(size: Size, result: BenchResult) -> None:
    """Detection rate per drift scenario and window size, false alarms on clean windows (drift_scenarios.py)."""
    start = time.perf_counter()
    suite = run_suite(size)
    result.facts["scenarios"] = {
        "windows": suite.windows,
        "detection_rate": {name: dict(rates) for name, rates in suite.rates.items()},
        "attributed_to_broken_feature": suite.attributed,
        "seconds": time.perf_counter() - start,
    }
    sizes = sorted(suite.windows)
    rates = "; ".join(f"{name} " + "/".join(f"{suite.rates[name][rows]:.2f}" for rows in sizes) for name in suite.rates)
    windows = "/".join(f"{suite.windows[rows]}" for rows in sizes)
    result.notes.append(
        f"scenarios, share of windows alarmed at {'/'.join(f'{r:,}' for r in sizes)} rows ({windows} windows): {rates}"
    )
    result.ratios += [
        Ratio(
            "drift_power_min_2000",
            suite.power_min,
            0.9,
            ">=",
            f"lowest detection rate over the scenarios at {POWER_FROM_ROWS:,} rows and more",
            "windows",
        ),
        Ratio(
            "drift_false_alarm_rate",
            suite.false_alarm_rate,
            0.01,
            "<=",
            "highest share of clean windows with an alarm-raising verdict, over the window sizes",
            "windows",
        ),
        Ratio(
            "drift_power_monotone",
            1.0 if suite.power_monotone else 0.0,
            1,
            ">=",
            "1 when no scenario is detected less often on a larger window",
            "scenarios",
        ),
    ]


def _run_end_to_end(size: Size, baseline: Mapping[str, Any], result: BenchResult) -> None:
    if missing_modules(CAPTURE_MODULE):
        result.skipped.append(f"drift end to end: {CAPTURE_MODULE} not written yet")
        return
    paths = ensure_capture_files(size)
    result.facts["capture"] = {"files": len(paths), "bytes": sum(p.stat().st_size for p in paths)}
    verdicts: dict[str, Any] = {}

    def end_to_end() -> None:
        verdicts["e2e"] = detect_from_capture(baseline, paths)

    # Screen the parsers on the first file, then alternate only the fastest with the detector: the slower
    # parsers would triple the run and cannot be the floor.
    sample = paths[0].read_bytes()
    screen = compare({name: partial(parse, sample) for name, parse in _parsers().items()}, rounds=1)
    fastest = min(screen, key=lambda name: screen[name].median)
    parse = _parsers()[fastest]
    screen_s = {name: t.median for name, t in screen.items()}
    result.facts["parse_screen_first_file_s"] = screen_s
    result.facts["parse_floor"] = fastest
    contenders: dict[str, Contender] = {
        "detector_from_capture": end_to_end,
        fastest: lambda: parse(_read_bytes(paths)),
    }
    timings = compare(contenders, rounds=ROUNDS[size], warmup=WARMUP[size])
    result.timings.update(timings)
    result.facts["detector_from_capture_flagged"] = list(verdicts["e2e"]["drifted_features"])
    screened = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in sorted(screen_s.items(), key=lambda kv: kv[1]))
    capture_mib = result.facts["capture"]["bytes"] / 2**20
    result.notes.append(f"capture: {len(paths)} files, {capture_mib:.0f} MiB; parsers on the first file: {screened}")
    result.notes.append(f"detector from capture flagged {sorted(result.facts['detector_from_capture_flagged'])}")
    result.ratios.append(ratio_over("drift_e2e_over_parse_floor", timings, "detector_from_capture", fastest, 1.5))
