"""Prints the split path's figures for docs/data-lake.md: the largest file one ingest invocation accepts at the
deployed settings (and what bounds it), and the range planner's scan rate over an in-memory CSV.

    PYTHONPATH=. .venv/bin/python -m benchmarks.split_figures
"""

from __future__ import annotations

import io
import time

from functions.ingest.ranges import (
    MEASURED_MIB_PER_SECOND,
    MIB,
    PEAK_MEMORY_OVER_FILE,
    largest_single_file,
    plan_ranges,
    read_blocks,
)
from infra.config import load_all_stages, read_cdk_json_context
from infra.stacks.data_lake import INGEST_EPHEMERAL_MB, INGEST_MEMORY_MB, INGEST_TIMEOUT, SPLIT_MAX_CONCURRENCY

# Step Functions' limit on an execution's input (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html).
EXECUTION_INPUT_BYTES = 256 * 1024
RANGE_ENTRY_BYTES = 80


def main() -> None:
    seconds = INGEST_TIMEOUT.to_seconds()
    print(
        f"memory: {INGEST_MEMORY_MB} MB / {PEAK_MEMORY_OVER_FILE} = {INGEST_MEMORY_MB / PEAK_MEMORY_OVER_FILE:.0f} MiB"
    )
    print(f"time: {MEASURED_MIB_PER_SECOND:.1f} MiB/s x {seconds:.0f} s = {MEASURED_MIB_PER_SECOND * seconds:.0f} MiB")
    print(f"/tmp: {INGEST_EPHEMERAL_MB} MiB")
    # The lake is the stage's: one line per stage, whatever its models.
    for stage in {c.stage: c for c in load_all_stages(read_cdk_json_context())}.values():
        threshold = stage.lake.ingest_split_bytes or largest_single_file(INGEST_MEMORY_MB, seconds, INGEST_EPHEMERAL_MB)
        ranges = (EXECUTION_INPUT_BYTES - 1024) // RANGE_ENTRY_BYTES
        print(
            f"{stage.stage}: one invocation up to {threshold / MIB:.0f} MiB; split: up to {ranges} ranges "
            f"({ranges * threshold / MIB / 1024 / 1024:.1f} TiB), {SPLIT_MAX_CONCURRENCY} at once"
        )
    data = (b"c" * 95 + b",1,2\n") * (1 << 20)
    started = time.perf_counter()
    plan_ranges(read_blocks(io.BytesIO(data)), len(data), 8 * MIB)
    elapsed = time.perf_counter() - started
    print(f"planner scan: {len(data) / MIB / elapsed:.0f} MiB/s over {len(data) / MIB:.0f} MiB in memory")


if __name__ == "__main__":
    main()
