"""Read a raw file (CSV, JSON lines, Parquet) as a stream of Arrow tables of at most `chunk_rows` rows.

CSV and JSON lines arrive as string columns, so every value can be checked and, when bad, quarantined
exactly as it was written. Rows the parser cannot split into the header's columns, and lines holding bytes
that are not UTF-8, come back as `MalformedRow`s instead of failing the file. A file that cannot be read at
all raises `RejectedFileError` saying what failed.
"""

from __future__ import annotations

import collections
import csv
import functools
import itertools
import json
import mmap
import shutil
import struct
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

CSV_SUFFIXES = (".csv",)
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
PARQUET_SUFFIXES = (".parquet", ".pq")
NULL_TOKENS = ["", "NA", "N/A", "null", "NULL", "None", "NaN", "nan"]
OTHER_DELIMITERS = (";", "\t", "|")
CSV_BLOCK_BYTES = 1 << 20
CSV_WORKERS = 2
# Blocks parsed ahead of validation: about one chunk of the default size (200k rows of ~100 bytes), so the next
# chunk is read while one is checked; fewer leave the parsers waiting on the checks.
READAHEAD_BLOCKS = 24
# The UTF-8 scan reads this much at a time; a line longer than a block is still found whole.
SCAN_BLOCK_BYTES = 4 << 20
SCAN_WORKERS = 2
HEADER_MAX_BYTES = 1 << 20


class RejectedFileError(Exception):
    """The file as a whole cannot be ingested: `rule` names why, `reason` says it to a person; `copyable` is
    False when the raw object itself cannot be read, so quarantine records the reason without a copy."""

    def __init__(self, rule: str, reason: str, *, copyable: bool = True) -> None:
        super().__init__(f"{rule}: {reason}")
        self.rule = rule
        self.reason = reason
        self.copyable = copyable


@dataclass(frozen=True)
class MalformedRow:
    line: int | None
    text: str
    reason: str


@dataclass
class RawChunk:
    table: pa.Table
    malformed: list[MalformedRow] = field(default_factory=list)


@dataclass
class RawFile:
    format: str
    columns: list[str]
    chunks: Iterator[RawChunk]


def detect_format(file_name: str) -> str:
    lower = file_name.lower()
    for fmt, suffixes in (("csv", CSV_SUFFIXES), ("jsonl", JSON_SUFFIXES), ("parquet", PARQUET_SUFFIXES)):
        if lower.endswith(suffixes):
            return fmt
    allowed = ", ".join((*CSV_SUFFIXES, *JSON_SUFFIXES, *PARQUET_SUFFIXES))
    raise RejectedFileError("unsupported_file_type", f"{file_name!r} is not a supported file type (allowed: {allowed})")


@dataclass(frozen=True)
class Origin:
    """Where the local file's data lines sit in the raw file: a byte range of a split file is read as the header
    followed by the range, and its line numbers and byte offsets are reported as the raw file's own."""

    line_shift: int = 0
    byte_shift: int = 0


def open_raw_file(path: Path, file_name: str, chunk_rows: int, origin: Origin | None = None) -> RawFile:
    fmt = detect_format(file_name)
    if path.stat().st_size == 0:
        raise RejectedFileError("empty_file", "the file is empty (0 bytes)")
    if fmt == "csv":
        return _open_csv(path, chunk_rows, origin or Origin())
    if origin is not None:
        raise ValueError(f"only CSV files are read by byte range, not {fmt}")
    opener: Callable[[Path, int], RawFile] = {"jsonl": _open_jsonl, "parquet": _open_parquet}[fmt]
    return opener(path, chunk_rows)


def _rechunk(batches: Iterator[pa.RecordBatch], schema: pa.Schema, chunk_rows: int) -> Iterator[pa.Table]:
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in batches:
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= chunk_rows:
            table = pa.Table.from_batches(pending, schema=schema)
            # One contiguous copy per chunk, and the batches it came from let go before the chunk is checked.
            head = table.slice(0, chunk_rows).combine_chunks()
            rest = table.slice(chunk_rows)
            del table
            pending, pending_rows = rest.to_batches(), rest.num_rows
            del rest
            yield head
            del head
    if pending_rows:
        tail = pa.Table.from_batches(pending, schema=schema).combine_chunks()
        pending = []
        yield tail


def _read_csv_header(path: Path) -> list[str]:
    with path.open("rb") as handle:
        line = handle.readline(HEADER_MAX_BYTES)
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RejectedFileError(
            "unreadable_file",
            f"the CSV header (line 1) is not UTF-8: byte 0x{line[exc.start]:02x} at byte offset {exc.start}",
        ) from exc
    try:
        header = next(csv.reader([text]), [])
    except csv.Error as exc:
        raise RejectedFileError("unreadable_file", f"the CSV header cannot be read ({exc})") from exc
    columns = list(header)
    if not columns or columns == [""]:
        raise RejectedFileError("unreadable_file", "the CSV has no header row")
    if len(columns) == 1:
        for delimiter in OTHER_DELIMITERS:
            if delimiter in columns[0]:
                raise RejectedFileError(
                    "wrong_delimiter",
                    f"the header is one column {columns[0][:80]!r}: the file is separated by {delimiter!r}, not commas",
                )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise RejectedFileError("duplicate_columns", f"the header repeats column(s) {', '.join(duplicated)}")
    return columns


def _not_utf8(line: bytes, line_number: int, line_offset: int) -> MalformedRow:
    """The line as a quarantined row: the first byte that is not UTF-8, by its offset in the file."""
    try:
        line.decode("utf-8")
        bad = 0
    except UnicodeDecodeError as exc:
        bad = exc.start
    return MalformedRow(
        line=line_number,
        text=line.rstrip(b"\r\n").decode("utf-8", errors="backslashreplace"),
        reason=f"has a byte that is not UTF-8 (0x{line[bad]:02x} at byte offset {line_offset + bad})",
    )


def _is_utf8(data: bytes) -> bool:
    """Arrow's UTF-8 validation of the whole block, without building a Python string."""
    offsets = pa.py_buffer(struct.pack("<ii", 0, len(data)))
    try:
        pa.Array.from_buffers(pa.binary(), 1, [None, offsets, pa.py_buffer(data)]).cast(pa.string())
    except pa.ArrowInvalid:
        return False
    return True


def _line_cuts(path: Path, size: int, start: int, block: int) -> list[int]:
    """Offsets that cut bytes [start, size) of the file into blocks of about `block` bytes, each cut just after
    a newline (a line longer than a block stays whole)."""
    cuts = [start]
    with path.open("rb") as handle:
        while cuts[-1] + block < size:
            handle.seek(cuts[-1] + block)
            cuts.append(min(handle.tell() + len(handle.readline()), size))
    if cuts[-1] < size:
        cuts.append(size)
    return cuts


def _read_block(path: Path, start: int, end: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(start)
        return handle.read(end - start)


def _block_is_utf8(path: Path, start: int, end: int) -> bool:
    return _is_utf8(_read_block(path, start, end))


def scan_utf8(path: Path) -> list[tuple[int, int, int]]:
    """(line number, first byte offset, end offset) of every line holding bytes that are not UTF-8.

    Blocks cut at line ends are validated side by side (reads and Arrow's validation release the GIL); only
    when a block has a bad byte are lines counted, and that block looked at line by line."""
    cuts = _line_cuts(path, path.stat().st_size, 0, SCAN_BLOCK_BYTES)
    with ThreadPoolExecutor(max_workers=SCAN_WORKERS) as pool:
        valid = list(pool.map(functools.partial(_block_is_utf8, path), cuts[:-1], cuts[1:]))
    bad: list[tuple[int, int, int]] = []
    if all(valid):
        return bad
    line_number = 1
    last_bad = len(valid) - 1 - valid[::-1].index(False)
    for start, end, ok in zip(cuts[: last_bad + 1], cuts[1 : last_bad + 2], valid, strict=False):
        data = _read_block(path, start, end)
        if ok:
            line_number += data.count(b"\n")
            continue
        at = 0
        while at < len(data):
            stop = data.find(b"\n", at) + 1 or len(data)
            try:
                data[at:stop].decode("utf-8")
            except UnicodeDecodeError:
                bad.append((line_number, start + at, start + stop))
            at = stop
            line_number += 1
    return bad


def _without_lines(path: Path, lines: list[tuple[int, int, int]], origin: Origin) -> tuple[Path, list[MalformedRow]]:
    """A copy of the file with each listed line emptied (the parser skips empty lines), and those lines as rows."""
    cleaned = path.with_name(path.name + ".utf8")
    rows = []
    with path.open("rb") as source, cleaned.open("wb") as target:
        position = 0
        for number, start, end in lines:
            shutil.copyfileobj(_Limited(source, start - position), target)
            line = source.read(end - start)
            rows.append(_not_utf8(line, number + origin.line_shift, start + origin.byte_shift))
            target.write(b"\n" if line.endswith(b"\n") else b"")
            position = end
        shutil.copyfileobj(source, target)
    return cleaned, rows


class _Limited:
    """At most `size` bytes of a binary stream, for shutil.copyfileobj."""

    def __init__(self, stream: Any, size: int) -> None:
        self.stream, self.left = stream, size

    def read(self, n: int = -1) -> bytes:
        want = self.left if n < 0 else min(n, self.left)
        chunk = self.stream.read(want) if want > 0 else b""
        self.left -= len(chunk)
        return chunk


def _open_csv(path: Path, chunk_rows: int, origin: Origin) -> RawFile:
    columns = _read_csv_header(path)
    malformed: list[MalformedRow] = []
    not_utf8 = scan_utf8(path)
    if not_utf8:
        path, malformed = _without_lines(path, not_utf8, origin)
    with path.open("rb") as handle:
        data_start = len(handle.readline(HEADER_MAX_BYTES))
    schema = pa.schema([(c, pa.string()) for c in columns])
    blocks = _parsed_blocks(path, data_start, schema)
    try:
        # The first block is parsed before the file is accepted, as a reader that opens the file would.
        first = next(blocks, None)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise RejectedFileError("unreadable_file", f"the CSV cannot be parsed ({exc})") from exc
    lines = LineFinder(path, origin.line_shift)

    def batches() -> Iterator[pa.RecordBatch]:
        for table, rejected in itertools.chain([] if first is None else [first], _guard(blocks)):
            malformed.extend(rejected)
            yield from table.to_batches()

    def chunks() -> Iterator[RawChunk]:
        try:
            for table in _rechunk(batches(), schema, chunk_rows):
                taken, malformed[:] = lines.number(malformed), []
                chunk = RawChunk(table=table, malformed=taken)
                del table  # only the consumer holds a chunk while the next one is read
                yield chunk
                del chunk
            if malformed:
                yield RawChunk(table=schema.empty_table(), malformed=lines.number(malformed))
        finally:
            blocks.close()
            lines.close()

    return RawFile(format="csv", columns=columns, chunks=chunks())


def _parse_block(path: Path, start: int, end: int, schema: pa.Schema) -> tuple[pa.Table, list[MalformedRow]]:
    """Lines [start, end) of the file as string columns, and the rows that do not split into the columns."""
    rejected: list[MalformedRow] = []

    def keep_malformed(row: Any) -> str:
        # Found in the file by LineFinder: a row's number here would count from the block's start.
        reason = f"expected {row.expected_columns} columns, found {row.actual_columns}"
        rejected.append(MalformedRow(line=None, text=row.text, reason=reason))
        return "skip"

    data = _read_block(path, start, end)
    table = pacsv.read_csv(
        pa.BufferReader(data),
        # One block, one thread: the blocks themselves are parsed side by side.
        read_options=pacsv.ReadOptions(column_names=schema.names, block_size=len(data) + 1, use_threads=False),
        parse_options=pacsv.ParseOptions(invalid_row_handler=keep_malformed),
        convert_options=pacsv.ConvertOptions(
            column_types=schema,
            null_values=NULL_TOKENS,
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            # scan_utf8 checked every byte already, and lines with bad ones were set aside.
            check_utf8=False,
        ),
    )
    return table, rejected


def _parsed_blocks(
    path: Path, start: int, schema: pa.Schema
) -> Generator[tuple[pa.Table, list[MalformedRow]], None, None]:
    """The file from `start` in blocks cut at line ends, parsed on CSV_WORKERS threads (Arrow's streaming reader
    parses on one), in file order, at most READAHEAD_BLOCKS parsed or in progress ahead of the consumer."""
    cuts = _line_cuts(path, path.stat().st_size, start, CSV_BLOCK_BYTES)
    spans = itertools.pairwise(cuts)
    pool = ThreadPoolExecutor(max_workers=CSV_WORKERS, thread_name_prefix="csv-block")
    ahead: collections.deque[Future[tuple[pa.Table, list[MalformedRow]]]] = collections.deque()
    try:
        for begin, stop in itertools.islice(spans, READAHEAD_BLOCKS):
            ahead.append(pool.submit(_parse_block, path, begin, stop, schema))
        while ahead:
            parsed = ahead.popleft().result()
            for begin, stop in itertools.islice(spans, 1):
                ahead.append(pool.submit(_parse_block, path, begin, stop, schema))
            yield parsed
    finally:
        for future in ahead:
            future.cancel()
        pool.shutdown(wait=True)


class LineFinder:
    """Line numbers for rejected rows known by their text: each is found in the file after the previous one,
    so repeated texts get successive lines. Maps the file only when a row needs it (rejected rows are rare)."""

    def __init__(self, path: Path, line_shift: int = 0) -> None:
        self.path = path
        self.line_shift = line_shift
        self._map: mmap.mmap | None = None
        self._taken: set[int] = set()
        self._at, self._line = 0, 1

    def number(self, rows: list[MalformedRow]) -> list[MalformedRow]:
        return [row if row.line is not None else replace(row, line=self._shifted(self._find(row.text))) for row in rows]

    def _shifted(self, line: int | None) -> int | None:
        return None if line is None else line + self.line_shift

    def _find(self, text: str) -> int | None:
        if self._map is None:
            with self.path.open("rb") as handle:
                self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        data, line = self._map, b"\n" + text.encode()
        last = len(data) - len(line)  # the file's last line may lack its newline
        for start in (self._at, 0):
            found = data.find(line + b"\n", max(start - 1, 0))
            while found >= 0 and found + 1 in self._taken:
                found = data.find(line + b"\n", found + 1)
            if found < 0 and last >= max(start - 1, 0) and last + 1 not in self._taken and data[last:] == line:
                found = last
            if found >= 0:
                offset = found + 1
                self._taken.add(offset)
                if offset < self._at:
                    self._at, self._line = 0, 1
                self._line += data[self._at : offset].count(b"\n")
                self._at = offset
                return self._line
        return None

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None


def _guard(batches: Any) -> Iterator[pa.RecordBatch]:
    try:
        yield from batches
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise RejectedFileError("unreadable_file", f"reading stopped part-way: {exc}") from exc


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, separators=(",", ":"))


def _open_jsonl(path: Path, chunk_rows: int) -> RawFile:
    handle = path.open("rb")
    first: list[tuple[int, int, bytes]] = []
    columns: list[str] = []
    offset = 0
    for number, line in enumerate(handle, start=1):
        if line.strip():
            first.append((number, offset, line))
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if isinstance(record, dict):
                columns = [str(k) for k in record]
                break
        offset += len(line)
    if not columns:
        handle.close()
        raise RejectedFileError("unreadable_file", "no line of the file is a JSON object")
    resume = first[-1][1] + len(first[-1][2])

    def lines() -> Iterator[tuple[int, int, bytes]]:
        yield from first
        at = resume
        try:
            for number, line in enumerate(handle, start=first[-1][0] + 1):
                if line.strip():
                    yield number, at, line
                at += len(line)
        finally:
            handle.close()

    def chunks() -> Iterator[RawChunk]:
        known = set(columns)
        values: dict[str, list[str | None]] = {c: [] for c in columns}
        malformed: list[MalformedRow] = []
        rows = 0
        for number, at, raw in lines():
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                malformed.append(_not_utf8(raw, number, at))
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                malformed.append(MalformedRow(line=number, text=line.rstrip("\n"), reason=f"invalid JSON ({exc.msg})"))
                continue
            if not isinstance(record, dict):
                malformed.append(MalformedRow(line=number, text=line.rstrip("\n"), reason="the line is not an object"))
                continue
            extra = sorted(set(record) - known)
            if extra:
                malformed.append(
                    MalformedRow(line=number, text=line.rstrip("\n"), reason=f"unexpected field(s) {', '.join(extra)}")
                )
                continue
            for column in columns:
                values[column].append(_json_text(record.get(column)))
            rows += 1
            if rows == chunk_rows:
                yield RawChunk(table=_string_table(values), malformed=malformed)
                values = {c: [] for c in columns}
                malformed, rows = [], 0
        if rows or malformed:
            yield RawChunk(table=_string_table(values), malformed=malformed)

    return RawFile(format="jsonl", columns=columns, chunks=chunks())


def _string_table(values: dict[str, list[str | None]]) -> pa.Table:
    return pa.table({c: pa.array(v, type=pa.string()) for c, v in values.items()})


def _open_parquet(path: Path, chunk_rows: int) -> RawFile:
    try:
        parquet = pq.ParquetFile(str(path))
    except (pa.ArrowInvalid, OSError) as exc:
        raise RejectedFileError("unreadable_file", f"not a readable Parquet file ({exc})") from exc
    schema = parquet.schema_arrow
    # pandas writes its index as an extra column; it is not data.
    index_columns = set(json.loads((schema.metadata or {}).get(b"pandas", b"{}")).get("index_columns", []))
    columns = [name for name in schema.names if name not in index_columns]

    def chunks() -> Iterator[RawChunk]:
        for batch in _guard(parquet.iter_batches(batch_size=chunk_rows, columns=columns)):
            yield RawChunk(table=pa.Table.from_batches([batch]))

    return RawFile(format="parquet", columns=columns, chunks=chunks())
