"""The split path's pure parts: how large a file one invocation can ingest, and a CSV cut into byte ranges at
line boundaries, each range ingested as a file of its own (the header applied to it) and the range reports
merged into the file's one report.

Cut rule (docs/data-lake.md, "Files larger than one invocation"): the nominal range i covers bytes
[i * range_bytes, (i + 1) * range_bytes); it starts after the first newline at or after its nominal start
(the first range starts after the header line) and ends after the first newline at or after its nominal end
(the last range ends at the end of the file, with or without a final newline). So no row is split or lost, a
CRLF stays whole (the cut follows its LF), and a line longer than a range leaves the ranges it spans empty:
those are dropped. A newline inside a quoted CSV field is cut like any other: the reader's dialect does not
allow quoted newlines (`pyarrow.csv.ParseOptions.newlines_in_values` is False in `readers._parse_block`), so the
unsplit path ends the row there too and both paths see the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import BinaryIO

from functions.ingest.readers import CSV_SUFFIXES

MIB = 1 << 20
# docs/benchmarks.md: `ingest_peak_mem_over_file` measured 2.35 to 2.6 (peak extra memory over the CSV's
# size) after the Arrow rework; 2.8, the figure before it, is kept as the safe side.
PEAK_MEMORY_OVER_FILE = 2.8
# docs/benchmarks.md: `ingest` took 1.02 s on the 102 MiB, 1M-row CSV on 2 cores shared with other work (about
# 100 MiB/s), the same vCPU count as a 3008 MB Lambda function.
MEASURED_MIB_PER_SECOND = 102 / 1.02
# Headroom for the runtime, the download and a slower machine: a range is planned at most this share of
# what memory and time allow.
SAFETY = 0.7
SCAN_BYTES = 8 * MIB


def largest_single_file(memory_mb: int, timeout_seconds: float, ephemeral_mb: int) -> int:
    """Bytes one invocation can ingest: the least of memory over the peak ratio, the time limit at the measured
    throughput and the /tmp space the download lands in, with headroom."""
    by_memory = memory_mb * MIB / PEAK_MEMORY_OVER_FILE
    by_time = MEASURED_MIB_PER_SECOND * MIB * timeout_seconds
    by_disk = ephemeral_mb * MIB
    return int(SAFETY * min(by_memory, by_time, by_disk))


def should_split(file_name: str, size: int, split_bytes: int) -> bool:
    """Only CSVs are split (their rows are lines); a threshold of 0 turns splitting off."""
    return split_bytes > 0 and size > split_bytes and file_name.lower().endswith(CSV_SUFFIXES)


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, end) of the file, whose first line is the file's line `first_line` (the header is line 1)."""

    index: int
    start: int
    end: int
    first_line: int

    def as_dict(self) -> dict[str, int]:
        return {"index": self.index, "start": self.start, "end": self.end, "first_line": self.first_line}


def plan_ranges(blocks: Iterable[bytes], size: int, range_bytes: int) -> list[ByteRange]:
    """Cut a file of `size` bytes, read as consecutive `blocks`, into ranges of about `range_bytes`.

    One pass: the cut points and the number of newlines before each are found as the blocks stream by.
    """
    if range_bytes < 1:
        raise ValueError(f"range_bytes must be positive, got {range_bytes}")
    nominal = [i * range_bytes for i in range(1, -(-size // range_bytes))]
    cuts: list[tuple[int, int]] = []  # (offset after the newline, line number of the next line)
    header_end: tuple[int, int] | None = None
    offset, lines = 0, 1
    want = 0  # index into nominal of the next cut to find
    for block in blocks:
        position = 0
        while True:
            if header_end is None:
                target = 0
            elif want < len(nominal):
                target = max(nominal[want] - offset, position)
            else:
                break
            if target >= len(block):
                break
            lines += block.count(b"\n", position, target)
            newline = block.find(b"\n", target)
            if newline < 0:
                lines += block.count(b"\n", target)
                position = len(block)
                break
            lines += 1
            position = newline + 1
            cut = (offset + position, lines)
            if header_end is None:
                header_end = cut
            else:
                cuts.append(cut)
            # A long line (or the header) may carry the cut past the next nominal starts: those ranges are empty.
            while want < len(nominal) and nominal[want] < offset + position:
                want += 1
        lines += block.count(b"\n", position)
        offset += len(block)
    if header_end is None:
        return []
    bounds = [header_end, *cuts, (size, 0)]
    ranges: list[ByteRange] = []
    for (start, first_line), (end, _) in pairwise(bounds):
        if end > start:
            ranges.append(ByteRange(index=len(ranges), start=start, end=end, first_line=first_line))
    return ranges


def read_blocks(stream: BinaryIO, block_bytes: int = SCAN_BYTES) -> Iterable[bytes]:
    while block := stream.read(block_bytes):
        yield block
