"""Row checks against the data contract, vectorised over Arrow columns.

A chunk of raw rows (string columns for text formats, typed for Parquet) becomes typed curated rows and
quarantined rows, one reason per broken rule naming the column and the offending value. Every row ends
up in exactly one of the two tables.
"""

from __future__ import annotations

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.readers import MalformedRow
from functions.shared.contract import DataContract, Feature
from functions.shared.facts import fact_hashes

RULES: tuple[str, ...] = (
    "malformed_row",
    "type_mismatch",
    "null_not_allowed",
    "out_of_range",
    "unknown_category",
    "invalid_label",
    "future_timestamp",
    "stale_timestamp",
    "duplicate_key",
)
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
CHECK_WORKERS = 2
# A partition's rows are sliced when their runs average at least this many rows, else taken (one copy).
MIN_SLICE_ROWS = 64
MEMBER_TABLE_BITS = 16
# The seen keys' bit table: 4 MiB, a few percent of it set by a million keys.
SEEN_TABLE_BITS = 25
MAX_SEEN_RUNS = 8
_NUMBER = r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$"
_DATE_ONLY = r"^\s*(\d{4}-\d{2}-\d{2})\s*$"
_NAIVE_TIME = r"^\s*(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)\s*$"
_TRUE = ["true", "True", "TRUE", "1", "yes", "Yes", "YES"]
_FALSE = ["false", "False", "FALSE", "0", "no", "No", "NO"]
QUARANTINE_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("source_row", pa.int64()),
        ("rules", pa.string()),
        ("reason", pa.string()),
        ("contract_version", pa.string()),
        ("record", pa.string()),
    ]
)


def curated_schema(contract: DataContract) -> pa.Schema:
    types = {"integer": pa.int64(), "float": pa.float64(), "categorical": pa.string(), "boolean": pa.bool_()}
    return pa.schema(
        [
            (contract.entity_key, pa.string()),
            (contract.event_timestamp, TIMESTAMP_TYPE),
            *((f.name, types[f.type]) for f in contract.features),
            (contract.label.name, pa.int64()),
            ("contract_version", pa.string()),
            ("source_file", pa.string()),
        ]
    )


@dataclass
class FileTally:
    """What one file's chunks add up to; also remembers keys so duplicates are found across chunks."""

    rows_in: int = 0
    rows_curated: int = 0
    rows_quarantined: int = 0
    rule_counts: Counter[str] = field(default_factory=Counter)
    null_cells: int = 0
    feature_cells: int = 0
    newest_event: datetime | None = None
    _seen: SeenKeys = field(default_factory=lambda: SeenKeys())  # noqa: PLW0108  (defined below)

    def seen_before(self, hashes: np.ndarray) -> np.ndarray:
        return self._seen.contains(hashes)

    def remember(self, hashes: np.ndarray) -> None:
        self._seen.add(hashes)


class SeenKeys:
    """The key hashes of a file's earlier chunks: sorted runs, one per chunk (merged when they pile up), and a
    bit table of their low bits, so most hashes are known to be new with one lookup and only the rest are
    searched for."""

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []
        self._bits = np.zeros(0, dtype=np.uint8)

    @staticmethod
    def _slots(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        low = (hashes & np.uint64((1 << SEEN_TABLE_BITS) - 1)).astype(np.int64)
        return low >> 3, (np.uint8(1) << (low & 7).astype(np.uint8))

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        found = np.zeros(len(hashes), dtype=bool)
        if not self._runs or not len(hashes):
            return found
        byte, bit = self._slots(hashes)
        maybe = np.flatnonzero(self._bits[byte] & bit)
        candidates = hashes[maybe]
        hit = np.zeros(len(candidates), dtype=bool)
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, candidates), len(run) - 1)
            hit |= run[at] == candidates
        found[maybe] = hit
        return found

    def add(self, hashes: np.ndarray) -> None:
        if not len(self._bits):
            self._bits = np.zeros(1 << (SEEN_TABLE_BITS - 3), dtype=np.uint8)
        byte, bit = self._slots(hashes)
        np.bitwise_or.at(self._bits, byte, bit)
        self._runs.append(np.sort(hashes))
        if len(self._runs) > MAX_SEEN_RUNS:
            self._runs = [np.sort(np.concatenate(self._runs))]


def is_member(values: np.ndarray, ascending: np.ndarray) -> np.ndarray:
    """True for every value (uint64 hashes) found in `ascending`, a sorted and usually small set: a table of
    the set's low bits lets most values go with one lookup; only the rest are searched for."""
    found = np.zeros(len(values), dtype=bool)
    if not len(ascending):
        return found
    low_bits = np.zeros(1 << MEMBER_TABLE_BITS, dtype=bool)
    mask = np.uint64((1 << MEMBER_TABLE_BITS) - 1)
    low_bits[ascending & mask] = True
    maybe = np.flatnonzero(low_bits[values & mask])
    at = np.minimum(np.searchsorted(ascending, values[maybe]), len(ascending) - 1)
    found[maybe] = ascending[at] == values[maybe]
    return found


def repeated_in_order(hashes: np.ndarray) -> np.ndarray:
    """True for every value equal to an earlier one (the first occurrence is not a repeat)."""
    # A sort finds the repeated values; only rows holding one of them are ordered by first occurrence.
    ordered = np.sort(hashes)
    twins = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    repeated = np.zeros(len(hashes), dtype=bool)
    candidates = np.flatnonzero(is_member(hashes, twins))
    if len(candidates):
        _, first = np.unique(hashes[candidates], return_index=True)
        repeated[candidates] = True
        repeated[candidates[first]] = False
    return repeated


Finding = tuple[str, np.ndarray, pa.Array, str]


@dataclass
class ChunkResult:
    typed: pa.Table
    """Every row of the chunk (values that broke a rule are null); the stamp columns dictionary-encoded, one
    value each, so a chunk does not hold the source URI once per row."""
    schema: pa.Schema
    """The curated schema the rows are written in."""
    good: np.ndarray
    """The rows to curate; taking them per partition costs one copy instead of a filter and a sort."""
    quarantined: pa.Table

    @property
    def curated(self) -> pa.Table:
        return self.typed.filter(pa.array(self.good)).cast(self.schema)

    def rows(self, rows: np.ndarray) -> pa.Table:
        """These rows (ascending) as written: the curated schema with categories and stamps dictionary-encoded
        (Parquet stores them as the schema's strings). Rows in long runs, as a file in event-time order has
        them, are sliced out of the chunk without copying; others are taken."""
        breaks = (np.flatnonzero(np.diff(rows) != 1) + 1).tolist()
        if len(breaks) + 1 > len(rows) // MIN_SLICE_ROWS:
            return self.typed.take(pa.array(rows))
        bounds = [0, *breaks, len(rows)]
        firsts = rows[bounds[:-1]].tolist()
        return pa.concat_tables(
            [self.typed.slice(first, b - a) for first, a, b in zip(firsts, bounds[:-1], bounds[1:], strict=True)]
        )

    def take(self, rows: np.ndarray) -> pa.Table:
        """These rows (ascending) in the curated schema."""
        return self.rows(rows).cast(self.schema)


@dataclass
class _Violations:
    n: int
    reasons: dict[int, list[str]] = field(default_factory=dict)
    rules: dict[int, list[str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    bad: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.bad = np.zeros(self.n, dtype=bool)

    def add(self, rule: str, mask: np.ndarray, raw: pa.Array, message: str) -> None:
        """Record `rule` on the rows in `mask`; `message` is formatted with the column's raw value."""
        if not mask.any():
            return
        index = np.flatnonzero(mask)
        self.bad |= mask
        self.counts[rule] += len(index)
        values = raw.take(pa.array(index)).to_pylist()
        for row, value in zip(index.tolist(), values, strict=True):
            self.reasons.setdefault(row, []).append(f"{rule}: {message.format(value=_show(value))}")
            self.rules.setdefault(row, []).append(rule)


def _show(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value)


def contiguous(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array: its only chunk as is (combine_chunks would copy even that), else combined."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def true_mask(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Arrow booleans (nulls count as False) as a numpy mask."""
    filled = pc.fill_null(array, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def _as_strings(raw: pa.Array) -> pa.Array:
    return raw if pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type) else pc.cast(raw, pa.string())


def valid_mask(array: pa.Array) -> np.ndarray:
    """True where the array holds a value."""
    return np.ones(len(array), dtype=bool) if not array.null_count else true_mask(array.is_valid())


def null_mask(array: pa.Array) -> np.ndarray:
    """True where the array holds no value."""
    return np.zeros(len(array), dtype=bool) if not array.null_count else true_mask(array.is_null())


def _nulled(values: pa.Array, bad: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(bad), pa.scalar(None, values.type), values) if bad.any() else values


def _numbers(raw: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """float64 values (null where absent or unparseable), the mask of present-but-unparseable values, and the
    values as numpy (NaN where absent; not finite where unparseable)."""
    if pa.types.is_boolean(raw.type):
        return pa.nulls(len(raw), pa.float64()), valid_mask(raw), np.full(len(raw), np.nan)
    numeric = pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type) or pa.types.is_decimal(raw.type)
    text = raw if numeric else _as_strings(raw)
    if numeric:
        values = pc.cast(raw, pa.float64())
    else:
        try:
            # Clean columns parse in one cast; only a column with a bad value pays for the per-value pattern.
            values = pc.cast(text, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            ok = pc.match_substring_regex(text, _NUMBER)
            cleaned = pc.if_else(ok, pc.utf8_trim_whitespace(text), pa.scalar(None, pa.string()))
            values = pc.cast(cleaned, pa.float64())
    floats = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    bad = valid_mask(text) & ~np.isfinite(floats)
    return _nulled(values, bad), bad, floats


def parse_number(raw: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """float64 values (null where absent or unparseable) and the mask of present-but-unparseable values."""
    values, bad, _ = _numbers(raw)
    return values, bad


_BOOLEAN_TEXTS = pa.array([*_TRUE, *_FALSE])


def parse_boolean(raw: pa.Array) -> tuple[pa.Array, np.ndarray]:
    if pa.types.is_boolean(raw.type):
        return raw, np.zeros(len(raw), dtype=bool)
    text = _as_strings(raw)
    # Values written without spaces around them are found as they are; only a column with another value is trimmed.
    index = pc.index_in(text, value_set=_BOOLEAN_TEXTS)
    if index.null_count > text.null_count:
        index = pc.index_in(pc.utf8_trim_whitespace(text), value_set=_BOOLEAN_TEXTS)
    values = pc.less(index, pa.scalar(len(_TRUE), index.type))
    return values, valid_mask(text) & ~valid_mask(index)


def parse_timestamp(raw: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """UTC timestamps; ISO-8601 text with or without a zone (no zone means UTC), or typed Parquet timestamps."""
    if pa.types.is_timestamp(raw.type):
        typed = raw if raw.type.tz else pc.assume_timezone(raw, "UTC")
        return pc.cast(typed, TIMESTAMP_TYPE), np.zeros(len(raw), dtype=bool)
    if pa.types.is_date(raw.type):
        return pc.cast(pc.cast(raw, pa.timestamp("us")), TIMESTAMP_TYPE), np.zeros(len(raw), dtype=bool)
    text = _as_strings(raw)
    try:
        values = pc.cast(text, TIMESTAMP_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        values = _parse_timestamp_text(text)
    return values, true_mask(pc.and_(text.is_valid(), values.is_null()))


def _parse_timestamp_text(text: pa.Array) -> pa.Array:
    zoned = pc.replace_substring_regex(text, _DATE_ONLY, r"\1T00:00:00Z")
    zoned = pc.replace_substring_regex(zoned, _NAIVE_TIME, r"\1Z")
    try:
        return pc.cast(zoned, TIMESTAMP_TYPE)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # Some value is not ISO-8601: parse value by value, unparseable ones become null (off the hot path).
        import pandas as pd

        parsed = pd.to_datetime(pd.Series(zoned.to_pylist(), dtype=object), errors="coerce", utc=True, format="ISO8601")
        return pa.array(parsed, type=TIMESTAMP_TYPE, from_pandas=True)


class ChunkValidator:
    """Validates the chunks of one file against one contract, at one `now`."""

    def __init__(self, contract: DataContract, *, now: datetime, source_file: str) -> None:
        self.contract = contract
        self.source_file = source_file
        self.schema = curated_schema(contract)
        self.newest_allowed = now + timedelta(minutes=contract.freshness.max_future_skew_minutes)
        self.oldest_allowed = now - timedelta(days=contract.freshness.max_event_age_days)
        self.tally = FileTally()

    def validate(self, table: pa.Table, malformed: list[MalformedRow], *, first_row: int) -> ChunkResult:
        contract = self.contract
        n = table.num_rows
        found = _Violations(n)
        typed: dict[str, pa.Array] = {}

        key_raw = contiguous(table.column(contract.entity_key))
        key = _as_strings(key_raw)
        key_missing = true_mask(pc.or_kleene(key.is_null(), pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(key)), 0)))
        found.add("null_not_allowed", key_missing, key_raw, f"{contract.entity_key} is empty")
        typed[contract.entity_key] = key

        time_raw = contiguous(table.column(contract.event_timestamp))
        times, time_bad = parse_timestamp(time_raw)
        ts = contract.event_timestamp
        found.add("type_mismatch", time_bad, time_raw, f"{ts}={{value}} is not an ISO-8601 timestamp")
        found.add("null_not_allowed", null_mask(time_raw), time_raw, f"{ts} is empty")
        future = true_mask(pc.greater(times, pa.scalar(self.newest_allowed, TIMESTAMP_TYPE)))
        found.add("future_timestamp", future, time_raw, f"{ts}={{value}} is later than now + allowed skew")
        stale = true_mask(pc.less(times, pa.scalar(self.oldest_allowed, TIMESTAMP_TYPE)))
        days = contract.freshness.max_event_age_days
        found.add("stale_timestamp", stale, time_raw, f"{ts}={{value}} is older than {days:g} days")
        typed[ts] = times

        # Arrow compute releases the GIL: the features are checked side by side, their findings added in order.
        raws = [contiguous(table.column(feature.name)) for feature in contract.features]
        with ThreadPoolExecutor(max_workers=CHECK_WORKERS) as pool:
            checked = list(pool.map(self._check_feature, contract.features, raws))
        for feature, raw, (values, findings) in zip(contract.features, raws, checked, strict=True):
            for finding in findings:
                found.add(*finding)
            typed[feature.name] = values
            self.tally.null_cells += raw.null_count
        self.tally.feature_cells += n * len(contract.features)

        label_raw = contiguous(table.column(contract.label.name))
        label_values, label_bad = parse_number(label_raw)
        label = contract.label
        allowed = pc.is_in(label_values, value_set=pa.array([0.0, float(label.positive_value)]))
        found.add("null_not_allowed", null_mask(label_raw), label_raw, f"{label.name} is empty")
        invalid = label_bad | true_mask(pc.and_(label_values.is_valid(), pc.invert(allowed)))
        found.add("invalid_label", invalid, label_raw, f"{label.name}={{value}} is not 0 or {label.positive_value}")
        typed[label.name] = pc.cast(pc.if_else(allowed, label_values, pa.scalar(None, pa.float64())), pa.int64())

        keyed = ~key_missing & true_mask(times.is_valid())
        hashes = fact_hashes(key, times)[keyed]
        repeated = repeated_in_order(hashes) | self.tally.seen_before(hashes)
        self.tally.remember(hashes)
        duplicate = np.zeros(n, dtype=bool)
        duplicate[np.flatnonzero(keyed)[repeated]] = True
        found.add(
            "duplicate_key", duplicate, key_raw, f"({contract.entity_key}={{value}}, {ts}) repeats an earlier row"
        )

        good = ~found.bad
        same = pa.array(np.zeros(n, dtype=np.int32))
        typed["contract_version"] = pa.DictionaryArray.from_arrays(same, pa.array([contract.version]))
        typed["source_file"] = pa.DictionaryArray.from_arrays(same, pa.array([self.source_file]))
        typed_table = pa.Table.from_arrays([typed[name] for name in self.schema.names], names=self.schema.names)
        quarantined = self._quarantine(table, found, malformed, first_row)

        curated_rows = int(good.sum())
        self.tally.rows_in += n + len(malformed)
        self.tally.rows_curated += curated_rows
        self.tally.rows_quarantined += quarantined.num_rows
        self.tally.rule_counts.update(found.counts)
        if malformed:
            self.tally.rule_counts["malformed_row"] += len(malformed)
        if curated_rows:
            newest = pc.max(pc.filter(times, pa.array(good))).as_py()
            if self.tally.newest_event is None or newest > self.tally.newest_event:
                self.tally.newest_event = newest
        return ChunkResult(typed=typed_table, schema=self.schema, good=good, quarantined=quarantined)

    @staticmethod
    def _check_feature(feature: Feature, raw: pa.Array) -> tuple[pa.Array, list[Finding]]:
        """The feature's typed values and what it broke, as (rule, rows, raw values, message) in check order."""
        name = feature.name
        findings: list[Finding] = []
        if not feature.nullable:
            findings.append(("null_not_allowed", null_mask(raw), raw, f"{name} is empty"))
        if feature.type == "categorical":
            text = _as_strings(raw)
            categories = pa.array(list(feature.categories), pa.string())
            # Coded against the contract's categories: Parquet writes the codes as they are, without hashing.
            codes = pc.cast(pc.index_in(text, value_set=categories), pa.int32())
            unknown = valid_mask(text) & null_mask(codes)
            allowed = "|".join(feature.categories)
            findings.append(("unknown_category", unknown, raw, f"{name}={{value}} is not one of {allowed}"))
            return pa.DictionaryArray.from_arrays(codes, categories), findings
        if feature.type == "boolean":
            values, bad = parse_boolean(raw)
            findings.append(("type_mismatch", bad, raw, f"{name}={{value}} is not a boolean"))
            return values, findings
        values, bad, floats = _numbers(raw)
        if feature.type == "integer":
            with np.errstate(invalid="ignore"):
                fractional = np.isfinite(floats) & (floats != np.floor(floats))
            findings.append(("type_mismatch", bad | fractional, raw, f"{name}={{value}} is not an integer"))
            bad = bad | fractional
        else:
            findings.append(("type_mismatch", bad, raw, f"{name}={{value}} is not a number"))
        outside = np.zeros(len(raw), dtype=bool)
        if feature.min is not None:
            outside |= floats < feature.min
        if feature.max is not None:
            outside |= floats > feature.max
        lo = "-inf" if feature.min is None else f"{feature.min:g}"
        hi = "inf" if feature.max is None else f"{feature.max:g}"
        unit = f" {feature.unit}" if feature.unit else ""
        findings.append(("out_of_range", outside & ~bad, raw, f"{name}={{value}} is outside [{lo}, {hi}]{unit}"))
        clean = _nulled(values, bad)
        return (pc.cast(clean, pa.int64()) if feature.type == "integer" else clean), findings

    def _quarantine(
        self, table: pa.Table, found: _Violations, malformed: list[MalformedRow], first_row: int
    ) -> pa.Table:
        index = np.flatnonzero(found.bad)
        records = table.take(pa.array(index)).to_pylist() if len(index) else []
        rows = index.tolist()
        source_rows: list[int | None] = [first_row + i for i in rows]
        rules = [",".join(dict.fromkeys(found.rules[i])) for i in rows]
        reasons = ["; ".join(found.reasons[i]) for i in rows]
        texts = [json.dumps(r, default=str, separators=(",", ":")) for r in records]
        for bad_row in malformed:
            source_rows.append(None)
            rules.append("malformed_row")
            where = f"line {bad_row.line}" if bad_row.line is not None else "a line"
            reasons.append(f"malformed_row: {where} {bad_row.reason}")
            texts.append(json.dumps({"line": bad_row.line, "text": bad_row.text}, separators=(",", ":")))
        count = len(source_rows)
        return pa.Table.from_arrays(
            [
                pa.repeat(pa.scalar(self.source_file), count),
                pa.array(source_rows, type=pa.int64()),
                pa.array(rules, type=pa.string()),
                pa.array(reasons, type=pa.string()),
                pa.repeat(pa.scalar(self.contract.version), count),
                pa.array(texts, type=pa.string()),
            ],
            schema=QUARANTINE_SCHEMA,
        )
