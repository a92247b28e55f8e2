"""A curated row is a fact: its entity's state at its event time. The lake holds each fact once; a copy that
arrives later (a re-upload, a new version, the same rows under another key) is dropped as a duplicate when
its values are the same, and replaces the earlier row when they differ: latest arrival wins.

Used by ingestion (against what is already curated in a partition) and by the training snapshot (across the
objects of a partition, should two ingestions have raced). Pure Arrow and numpy; callers move the bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_PRIME = np.uint64(0x100000001B3)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
HASH_SLICE_ROWS = 1 << 16


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return np.asarray(x ^ (x >> np.uint64(31)), dtype=np.uint64)


@functools.cache
def _prime_powers_upto(n: int) -> np.ndarray:
    factors = np.full(n, _PRIME, dtype=np.uint64)
    factors[0] = 1
    with np.errstate(over="ignore"):
        return np.cumprod(factors, dtype=np.uint64)


def _prime_powers(n: int) -> np.ndarray:
    """PRIME**i for i < n (mod 2**64), from a table sized in powers of two so it is built a few times at most."""
    return _prime_powers_upto(max(64, 1 << max(0, n - 1).bit_length()))


def string_hashes(strings: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A 64-bit hash of every string (null hashes as empty), computed on Arrow's buffers without Python objects."""
    array = strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = array.cast(pa.large_string())
    if array.null_count:
        array = pc.fill_null(array, "")
    # Per-byte temporaries are 8 bytes a byte: hash a bounded slice at a time.
    step = HASH_SLICE_ROWS
    return np.concatenate(
        [_slice_hashes(array.slice(i, step)) for i in range(0, len(array), step)] or [np.empty(0, dtype=np.uint64)]
    )


def _slice_hashes(array: pa.Array) -> np.ndarray:
    _, offsets_buffer, data_buffer = array.buffers()
    width = np.dtype(np.int64 if pa.types.is_large_string(array.type) else np.int32)
    offsets = np.frombuffer(offsets_buffer, dtype=width, count=len(array) + 1, offset=array.offset * width.itemsize)
    offsets = offsets.astype(np.int64)
    lo, hi = int(offsets[0]), int(offsets[-1])
    starts = offsets[:-1] - lo
    lengths = np.diff(offsets)
    hashes = np.zeros(len(array), dtype=np.uint64)
    size = int(lengths[0]) if len(lengths) else 0
    if size and hi - lo == size * len(array):
        # Every string has the same length (identifiers usually do): the same sum, one column of bytes at a time.
        rows = np.frombuffer(data_buffer, dtype=np.uint8)[lo:hi].reshape(len(array), size)
        powers = _prime_powers(size)
        with np.errstate(over="ignore"):
            for i in range(size):
                hashes += (rows[:, i].astype(np.uint64) + np.uint64(1)) * powers[i]
    elif hi > lo:
        data = np.frombuffer(data_buffer, dtype=np.uint8)[lo:hi].astype(np.uint64) + np.uint64(1)
        position = np.arange(hi - lo, dtype=np.int64) - np.repeat(starts, lengths)
        with np.errstate(over="ignore"):
            terms = data * _prime_powers(int(lengths.max()))[position]
        present = lengths > 0
        hashes[present] = np.add.reduceat(terms, starts[present])
    with np.errstate(over="ignore"):
        return _mix(hashes ^ (lengths.astype(np.uint64) * _GOLDEN))


def fact_hashes(keys: pa.Array | pa.ChunkedArray, times: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """One 64-bit hash per (entity key, event time)."""
    time_bits = np.asarray(pc.fill_null(pc.cast(times, pa.int64()), 0).to_numpy(), dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        return _mix(string_hashes(keys) ^ _mix(time_bits + _GOLDEN))


def table_fact_hashes(table: pa.Table, entity_key: str, event_timestamp: str) -> np.ndarray:
    return fact_hashes(table.column(entity_key), table.column(event_timestamp))


def _true(array: Any) -> np.ndarray:
    filled = pc.fill_null(array, False)
    if isinstance(filled, pa.ChunkedArray):
        filled = filled.combine_chunks()
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=bool)


def _equal(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Element-wise equality where two nulls are equal."""
    return _true(pc.or_(pc.fill_null(pc.equal(a, b), False), pc.and_(a.is_null(), b.is_null())))


def same_rows(left: pa.Table, right: pa.Table, columns: Sequence[str]) -> np.ndarray:
    same = np.ones(left.num_rows, dtype=bool)
    for name in columns:
        if name not in left.column_names or name not in right.column_names:
            return np.zeros(left.num_rows, dtype=bool)
        same &= _equal(left.column(name).combine_chunks(), right.column(name).combine_chunks())
    return same


@dataclass
class PartitionMerge:
    fresh: pa.Table
    """The incoming rows still to write."""
    dropped: int = 0
    """Incoming rows whose fact is already curated with the same values."""
    superseded: int = 0
    """Earlier rows replaced by an incoming row with other values."""
    rewrites: dict[str, pa.Table] = field(default_factory=dict)
    """Existing object key -> its rows without the superseded ones."""


def merge_partition(
    incoming: pa.Table, existing: Mapping[str, pa.Table], columns: Sequence[str], entity_key: str, event_timestamp: str
) -> PartitionMerge:
    """Merge the incoming rows of one partition with the objects already curated there (other files' rows);
    `columns` are the values that make two copies of a fact the same."""
    identity = (entity_key, event_timestamp)
    tables = [
        (name, table)
        for name, table in existing.items()
        if table.num_rows and all(c in table.column_names for c in identity)
    ]
    if not tables or not incoming.num_rows:
        return PartitionMerge(fresh=incoming)
    # Objects written under an older contract may lack a column: it reads as null there.
    earlier = pa.concat_tables(
        [table.select([c for c in columns if c in table.column_names]) for _, table in tables],
        promote_options="permissive",
    )
    owner = np.concatenate([np.full(table.num_rows, i, dtype=np.int64) for i, (_, table) in enumerate(tables)])
    row = np.concatenate([np.arange(table.num_rows, dtype=np.int64) for _, table in tables])

    earlier_hashes = table_fact_hashes(earlier, entity_key, event_timestamp)
    incoming_hashes = table_fact_hashes(incoming, entity_key, event_timestamp)
    order = np.argsort(earlier_hashes, kind="stable")
    ordered = earlier_hashes[order]
    at = np.minimum(np.searchsorted(ordered, incoming_hashes), len(ordered) - 1)
    candidate = ordered[at] == incoming_hashes
    new_index = np.flatnonzero(candidate)
    if not len(new_index):
        return PartitionMerge(fresh=incoming)
    old_index = order[at[candidate]]
    pair_new = incoming.select(columns).take(pa.array(new_index))
    pair_old = earlier.take(pa.array(old_index))
    # A hash match is a match only when the fact's identity is equal too.
    same_fact = same_rows(pair_new, pair_old, identity)
    same_values = same_rows(pair_new, pair_old, columns)
    identical = same_fact & same_values
    superseded = old_index[same_fact & ~same_values]

    keep = np.ones(incoming.num_rows, dtype=bool)
    keep[new_index[identical]] = False
    rewrites: dict[str, pa.Table] = {}
    for i, (name, table) in enumerate(tables):
        gone = row[superseded][owner[superseded] == i]
        if len(gone):
            survive = np.ones(table.num_rows, dtype=bool)
            survive[gone] = False
            rewrites[name] = table.filter(pa.array(survive))
    return PartitionMerge(
        fresh=incoming.filter(pa.array(keep)),
        dropped=int(identical.sum()),
        superseded=len(np.unique(superseded)),
        rewrites=rewrites,
    )


def latest_arrival_wins(tables: Sequence[pa.Table], entity_key: str, event_timestamp: str) -> tuple[pa.Table, int]:
    """The rows of `tables` (given in arrival order) with each fact once, from its latest arrival; and how many
    earlier copies were removed."""
    combined = pa.concat_tables(tables, promote_options="permissive")
    hashes = table_fact_hashes(combined, entity_key, event_timestamp)
    # The first occurrence in reversed order is the latest arrival.
    _, first_reversed = np.unique(hashes[::-1], return_index=True)
    keep = np.sort(len(hashes) - 1 - first_reversed)
    return combined.take(pa.array(keep)), combined.num_rows - len(keep)
