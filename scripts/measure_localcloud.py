"""Measure the local cloud: start, synth, deploy of a stage, one raw file through ingestion, stop.

    .venv/bin/python scripts/measure_localcloud.py --stage dev --rows 600

Prints one JSON object of seconds; the numbers depend on the machine's load.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from mlloop import assembly
from mlloop.datagen import generate_churn
from mlloop.localcloud import LocalCloud


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev")
    parser.add_argument("--rows", type=int, default=600, help="rows of the raw CSV (one month of churn data)")
    args = parser.parse_args()
    figures: dict[str, float | int | str] = {"stage": args.stage, "rows": args.rows}

    started = time.perf_counter()
    assembly.synthesize()
    figures["synth_or_freshness_check_s"] = time.perf_counter() - started

    started = time.perf_counter()
    cloud = LocalCloud.start()
    figures["start_s"] = time.perf_counter() - started
    try:
        started = time.perf_counter()
        deployment = cloud.deploy(args.stage, synthesize=False)
        figures["deploy_s"] = time.perf_counter() - started
        figures["resources"] = sum(len(resources) for resources in deployment.resources.values())
        figures["report_entries"] = len(deployment.report.entries)

        frame = generate_churn(args.rows, seed=5, months=1)
        started = time.perf_counter()
        cloud.client("s3").put_object(
            Bucket=deployment.physical_id("RawBucket"),
            Key=f"churn/measure-{uuid.uuid4().hex[:8]}.csv",
            Body=frame.to_csv(index=False).encode(),
        )
        cloud.wait_idle(timeout=600)
        figures["raw_file_to_curated_and_its_triggers_s"] = time.perf_counter() - started
    finally:
        started = time.perf_counter()
        cloud.stop()
        figures["stop_s"] = time.perf_counter() - started
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
