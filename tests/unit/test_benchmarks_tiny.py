"""Every benchmark at tiny size, so none of them rots: `make bench` is the full run, outside the test suite.

Peers are left out: alibi-detect needs its own venv, and Evidently's import alone takes 6-20 s here; `make bench`
runs both. A benchmark whose contender module is not written
yet is skipped with the missing module named; a partly measured benchmark warns with what it left out.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest

from benchmarks import bench_platform, common
from benchmarks.run import BENCHMARKS, main

pytestmark = pytest.mark.xdist_group("benchmarks")

KEYS = {
    "drift": {
        "drift_speedup_vs_evidently",
        "drift_time_over_sort_floor",
        "drift_speedup_vs_alibi",
        "drift_peak_mem_over_data",
        "drift_e2e_over_parse_floor",
        "drift_time_over_read_floor",
        "drift_power_min_2000",
        "drift_false_alarm_rate",
        "drift_power_monotone",
    },
    "predict": {
        "predict_single_over_bare",
        "predict_single_over_bare_baseline",
        "predict_single_over_bare_candidate",
        "predict_batch_over_pipeline",
        "predict_batch_over_pipeline_candidate",
    },
    "frontdoor": {"frontdoor_p50_over_floor", "frontdoor_speedup_vs_naive", "fallback_p50_over_floor"},
    "imports": {"frontdoor_import_over_floor"},
    "ingest": {"ingest_time_over_floor", "ingest_time_over_arrow_floor", "ingest_peak_mem_over_file"},
    "platform": set(),
    "recovery": {"recovery_ratio_concept_change", "recovery_ratio_feature_drift", "days_to_recover"},
}


@pytest.fixture(autouse=True)
def tiny_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "DATA_DIR", tmp_path_factory.getbasetemp() / "bench-data")
    monkeypatch.setenv("MLLOOP_BENCH_PEERS", "0")


def test_every_benchmark_is_covered() -> None:
    assert set(BENCHMARKS) == set(KEYS)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_runs_at_tiny_size(name: str) -> None:
    # Given the tiny size / When the benchmark runs
    result = BENCHMARKS[name]("tiny")

    # Then every ratio it measured is a finite number under one of the keys
    if not result.ratios and result.skipped:
        pytest.skip("; ".join(result.skipped))
    for reason in result.skipped:
        warnings.warn(f"benchmark {name}: {reason}", stacklevel=1)
    measured = {r.key for r in result.ratios}
    assert measured <= KEYS[name]
    for ratio in result.ratios:
        assert math.isfinite(ratio.value) and ratio.value >= 0, ratio
    for timing in result.timings.values():
        assert timing.samples and all(s >= 0 for s in timing.samples)
    if name == "drift":
        assert result.facts["detector_flags_exactly_injected"], result.facts["detector_flagged"]
        if "detector_from_capture_flagged" in result.facts:
            assert sorted(result.facts["detector_from_capture_flagged"]) == sorted(result.facts["injected"])
        rates = result.facts["scenarios"]["detection_rate"]
        assert set(rates["clean"].values()) == {0.0}, rates
        assert all(by_size[20_000] == 1.0 for by_size in rates.values() if by_size is not rates["clean"]), rates
    if name == "frontdoor":
        assert all(codes == [200] for codes in result.facts["status_codes"].values()), result.facts
    if name == "imports":
        assert result.facts["front_door_loads_forbidden"] == []


def test_run_writes_the_json_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a partial tiny run / When it is asked for a JSON output
    output = tmp_path / "bench.json"
    assert main(["--size", "tiny", "--only", "platform", "--output", str(output)]) == 0

    # Then the document holds the run's facts and the table is printed
    doc = json.loads(output.read_text())
    assert doc["size"] == "tiny"
    assert set(doc["benchmarks"]) == {"platform"}
    assert doc["versions"]["numpy"] and doc["machine"]["cpus"]
    assert "| key | value | target |" in capsys.readouterr().out


def test_local_cloud_figures_are_read_from_the_scripts_json() -> None:
    # Given the local-cloud script's output: one indented JSON object of seconds between Lambdas' JSON log lines
    log = '{"level": "INFO", "message": "training trigger handled"}\n'
    stdout = f'{log}{{\n  "stage": "dev",\n  "start_s": 1.5,\n  "deploy_s": 4.25\n}}\n{log}'

    # When / Then the harness reads the object whole
    assert bench_platform._parse_figures(stdout) == {"stage": "dev", "start_s": 1.5, "deploy_s": 4.25}
