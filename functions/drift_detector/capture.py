"""Read SageMaker data capture (JSON lines) into feature columns and prediction scores.

The fast path parses whole capture files with Arrow's multi-threaded JSON and CSV readers: once for the
capture envelope, once for all request bodies joined, once for all response bodies joined, so no Python
object is made per row and the joined bodies stay in Arrow buffers, never copied into Python bytes. Anything
the fast path cannot take (pretty-printed bodies, base64 payloads, values of an unexpected JSON type) goes
through a per-line Python parser over the same rules, so nothing is dropped.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from functions.drift_detector.logic import DriftDetector

_PAYLOAD = pa.struct([("data", pa.string()), ("encoding", pa.string()), ("observedContentType", pa.string())])
_ENVELOPE = pa.schema([("captureData", pa.struct([("endpointInput", _PAYLOAD), ("endpointOutput", _PAYLOAD)]))])
_SCORES = pa.schema([("predictions", pa.list_(pa.struct([("probability", pa.float64())])))])
_BLOCK_BYTES = 16 << 20
_ONE_INSTANCE_HEAD = b'{"instances":['
# The record's closing brace stays: only "]}" is cut off.
_ONE_INSTANCE_TAIL = b"}]}"
_NEWLINE = ord("\n")
_SCAN_BYTES = 1 << 20


@dataclass(frozen=True)
class FeatureSpec:
    """The request columns in contract order (CSV bodies carry no header) and their kinds."""

    names: tuple[str, ...]
    kinds: Mapping[str, str]  # name -> "numeric" | "categorical" | "boolean"

    @classmethod
    def from_baseline(cls, baseline: Mapping[str, Any]) -> FeatureSpec:
        kinds = {p["name"]: "boolean" if p.get("type") == "boolean" else str(p["kind"]) for p in baseline["features"]}
        return cls(names=tuple(kinds), kinds=kinds)

    def arrow_type(self, name: str, *, csv_body: bool) -> pa.DataType:
        kind = self.kinds[name]
        if kind == "numeric":
            return pa.float64()
        if kind == "boolean" and not csv_body:
            return pa.bool_()
        return pa.string()


@dataclass
class CaptureBatch:
    """Parsed traffic: per-feature column parts (Arrow arrays or Python lists), row count and scores."""

    columns: dict[str, list[Any]] = field(default_factory=dict)
    part_rows: list[int] = field(default_factory=list)
    scores: list[Any] = field(default_factory=list)
    records_skipped: int = 0

    def add_part(self, part: Mapping[str, Any], rows: int) -> None:
        for name, values in part.items():
            self.columns.setdefault(name, []).append(values)
        self.part_rows.append(rows)

    def extend(self, other: CaptureBatch) -> None:
        for index, rows in enumerate(other.part_rows):
            self.add_part({name: parts[index] for name, parts in other.columns.items()}, rows)
        self.scores.extend(other.scores)
        self.records_skipped += other.records_skipped

    def feed(self, detector: DriftDetector) -> None:
        """Hand every part (and the scores) to the detector."""
        for index, rows in enumerate(self.part_rows):
            detector.add_columns({name: parts[index] for name, parts in self.columns.items()}, rows)
        for scores in self.scores:
            detector.add_scores(scores)


def _read_json_lines(payload: bytes | pa.Buffer, schema: pa.Schema) -> pa.Table:
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    return pajson.read_json(
        pa.BufferReader(payload), read_options=pajson.ReadOptions(block_size=_BLOCK_BYTES), parse_options=options
    )


def _value_bytes(strings: pa.Array) -> pa.Buffer:
    """The bytes of all of a string or binary array's values, back to back, without a copy."""
    if not len(strings) or strings.buffers()[2] is None:
        return pa.py_buffer(b"")
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32, count=len(strings) + 1, offset=strings.offset * 4)
    start, stop = int(offsets[0]), int(offsets[-1])
    return strings.buffers()[2].slice(start, stop - start)


def _has_newline(strings: pa.Array) -> bool:
    # A vectorised scan of the values costs a tenth of a per-row substring search. It goes a slice at a time: a
    # mask over all the values at once would be as large as they are, and its fresh pages cost more than the scan.
    values = np.frombuffer(_value_bytes(strings), dtype=np.uint8)
    return any(bool(np.any(values[i : i + _SCAN_BYTES] == _NEWLINE)) for i in range(0, values.size, _SCAN_BYTES))


def _join_lines(strings: pa.Array) -> pa.Buffer:
    """Newline-terminated concatenation of single-line strings, built in Arrow without a Python object per row."""
    binary = strings.cast(pa.binary())
    return _value_bytes(pc.binary_join_element_wise(binary, pa.scalar(b"\n"), pa.scalar(b"")))


def _records_fast(bodies: pa.Array, spec: FeatureSpec) -> tuple[dict[str, Any], int]:
    fields = [(n, spec.arrow_type(n, csv_body=False)) for n in spec.names]
    binary = bodies.cast(pa.binary())
    # The front door sends one record wrapped as {"instances":[{...}]}. Cut off every body, the wrapper leaves a flat
    # record, which parses in about two thirds of the time of a list of structs. Only when every body is wrapped: a
    # body of another shape would parse as a record of nulls. Several instances in one body leave "{...},{...}",
    # which fails to parse or changes the row count, and takes the general schema instead.
    wrapped = pc.and_(pc.starts_with(binary, _ONE_INSTANCE_HEAD), pc.ends_with(binary, _ONE_INSTANCE_TAIL))
    if pc.all(wrapped).as_py():
        cut = pc.binary_slice(binary, len(_ONE_INSTANCE_HEAD), -len(_ONE_INSTANCE_TAIL) + 1)
        try:
            table = _read_json_lines(_join_lines(cut), pa.schema(fields))
            if table.num_rows == len(bodies):
                return {name: table.column(name) for name in spec.names}, table.num_rows
        except pa.ArrowInvalid:
            pass
    record = pa.struct(fields)
    table = _read_json_lines(_join_lines(binary), pa.schema([*fields, ("instances", pa.list_(record))]))
    instances = table.column("instances").combine_chunks()
    single = pc.is_null(instances)
    nested = pc.list_flatten(instances)
    columns: dict[str, Any] = {}
    for i, name in enumerate(spec.names):
        direct = table.column(name).combine_chunks().filter(single)
        columns[name] = pa.chunked_array([direct, nested.field(i)], type=fields[i][1])
    rows = int(pc.sum(single.cast(pa.int64())).as_py() or 0) + len(nested)
    return columns, rows


def _csv_fast(bodies: pa.Array, spec: FeatureSpec) -> tuple[dict[str, Any], int]:
    joined = _join_lines(pc.utf8_rtrim(bodies, characters="\r\n"))
    options = pacsv.ConvertOptions(
        column_types={n: spec.arrow_type(n, csv_body=True) for n in spec.names},
        strings_can_be_null=True,
        null_values=[""],
    )
    table = pacsv.read_csv(
        pa.BufferReader(joined),
        read_options=pacsv.ReadOptions(column_names=list(spec.names), block_size=_BLOCK_BYTES),
        convert_options=options,
    )
    return {n: table.column(n) for n in spec.names}, table.num_rows


def _scores_fast(bodies: pa.Array) -> Any:
    table = _read_json_lines(_join_lines(bodies), _SCORES)
    return pc.struct_field(pc.list_flatten(table.column("predictions")), [0])


def _decode(payload: Mapping[str, Any] | None) -> tuple[str, str]:
    """(text, content type) of a capture payload, whatever its encoding."""
    if not payload:
        return "", ""
    data = str(payload.get("data") or "")
    if payload.get("encoding") == "BASE64":
        data = base64.b64decode(data).decode("utf-8")
    return data, str(payload.get("observedContentType") or "")


def _body_records(text: str, content_type: str, spec: FeatureSpec) -> list[dict[str, Any]]:
    stripped = text.strip()
    if not stripped:
        return []
    if "csv" in content_type or not stripped.startswith(("{", "[")):
        rows = csv.reader(io.StringIO(stripped))
        return [{n: (v if v != "" else None) for n, v in zip(spec.names, row, strict=False)} for row in rows if row]
    doc = json.loads(stripped)
    if isinstance(doc, dict) and isinstance(doc.get("instances"), list):
        doc = doc["instances"]
    items = doc if isinstance(doc, list) else [doc]
    return [item for item in items if isinstance(item, dict)]


def _as_number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _parse_lines_slow(lines: Sequence[bytes], spec: FeatureSpec, batch: CaptureBatch) -> None:
    records: list[dict[str, Any]] = []
    for line in lines:
        if not line.strip():
            continue
        try:
            capture = json.loads(line)["captureData"]
            records.extend(_body_records(*_decode(capture.get("endpointInput")), spec))
            out_text, _ = _decode(capture.get("endpointOutput"))
            predictions = json.loads(out_text).get("predictions", []) if out_text.strip().startswith("{") else []
            batch.scores.append([_as_number(p.get("probability")) for p in predictions if isinstance(p, dict)])
        except (ValueError, KeyError, TypeError, AttributeError):
            batch.records_skipped += 1
    if not records:
        return
    part = {
        n: np.array([_as_number(r.get(n)) for r in records])
        if spec.kinds[n] == "numeric"
        else [r.get(n) for r in records]
        for n in spec.names
    }
    batch.add_part(part, len(records))


def _parse_envelopes(envelope: pa.StructArray, spec: FeatureSpec, parsed: CaptureBatch) -> npt.NDArray[np.bool_]:
    """Parse what the fast path can take into ``parsed``; returns which rows it left to the per-line parser."""
    data = pc.struct_field(envelope, ["endpointInput", "data"])
    encoding = pc.struct_field(envelope, ["endpointInput", "encoding"])
    ctype = pc.struct_field(envelope, ["endpointInput", "observedContentType"])
    out_data = pc.struct_field(envelope, ["endpointOutput", "data"])
    out_encoding = pc.struct_field(envelope, ["endpointOutput", "encoding"])
    # Bodies holding a newline would split when joined into lines; rare, so rows are checked only if any has one.
    plain = pc.is_valid(data)
    if _has_newline(data):
        plain = pc.and_(plain, pc.invert(pc.match_substring(data, "\n")))
    out_plain = pc.equal(out_encoding, "JSON")
    if _has_newline(out_data):
        out_plain = pc.and_(out_plain, pc.invert(pc.match_substring(out_data, "\n")))
    # A row goes wholly through one path, so no request or score is counted twice or lost.
    usable = pc.fill_null(pc.and_(plain, out_plain), False)
    says_csv = pc.fill_null(pc.match_substring(ctype, "csv"), False)
    is_csv = pc.and_(usable, says_csv)
    is_json = pc.and_(usable, pc.and_(pc.invert(says_csv), pc.fill_null(pc.equal(encoding, "JSON"), False)))
    fast = pc.or_(is_csv, is_json)
    for mask, reader in ((is_json, _records_fast), (is_csv, _csv_fast)):
        bodies = data.filter(mask)
        if len(bodies):
            part, rows = reader(bodies, spec)
            parsed.add_part(part, rows)
    parsed.scores.append(_scores_fast(out_data.filter(fast)))
    left: npt.NDArray[np.bool_] = pc.invert(fast).to_numpy(zero_copy_only=False)
    return left


def parse_capture(payload: bytes, spec: FeatureSpec, batch: CaptureBatch | None = None) -> CaptureBatch:
    """Parse capture JSON lines (one or more files' bytes, concatenated) into ``batch``."""
    batch = batch or CaptureBatch()
    if not payload or payload.isspace():
        return batch
    parsed = CaptureBatch()
    try:
        envelopes = _read_json_lines(payload, _ENVELOPE).column("captureData")
        # Block by block, as the reader returns them: joining the blocks first would copy every body once more.
        left = np.concatenate([_parse_envelopes(chunk, spec, parsed) for chunk in envelopes.chunks])
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        _parse_lines_slow(payload.splitlines(), spec, batch)
        return batch
    batch.extend(parsed)
    slow = np.flatnonzero(left)
    if slow.size:
        nonblank = [line for line in payload.splitlines() if line.strip()]
        _parse_lines_slow([nonblank[i] for i in slow], spec, batch)
    return batch
