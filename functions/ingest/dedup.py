"""The lake holds each fact once. A curated row is the fact of its entity key at its event time; a copy that
arrives later (a re-upload, a new version, the same rows under another key) is dropped as a duplicate when
its values are the same, and replaces the earlier row when they differ: latest arrival wins.

Pure Arrow and numpy over one event-date partition; the caller lists, reads and writes the objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from functions.ingest.validation import key_hashes, true_mask
from functions.shared.contract import DataContract


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


def fact_hashes(table: pa.Table, contract: DataContract) -> np.ndarray:
    key = table.column(contract.entity_key).combine_chunks()
    times = table.column(contract.event_timestamp).combine_chunks()
    return key_hashes(key, times)


def _equal(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Element-wise equality where two nulls are equal."""
    both_null = pc.and_(a.is_null(), b.is_null())
    return true_mask(pc.or_(pc.fill_null(pc.equal(a, b), False), both_null))


def _same(incoming: pa.Table, earlier: pa.Table, columns: Sequence[str]) -> np.ndarray:
    same = np.ones(incoming.num_rows, dtype=bool)
    for name in columns:
        same &= _equal(incoming.column(name).combine_chunks(), earlier.column(name).combine_chunks())
    return same


def merge_partition(incoming: pa.Table, existing: Mapping[str, pa.Table], contract: DataContract) -> PartitionMerge:
    """Merge the incoming rows of one partition with the objects already curated there (other files' rows)."""
    tables = [(name, table) for name, table in existing.items() if table.num_rows]
    if not tables or not incoming.num_rows:
        return PartitionMerge(fresh=incoming)
    earlier = pa.concat_tables([table.select(contract.columns) for _, table in tables])
    owner = np.concatenate([np.full(table.num_rows, i, dtype=np.int64) for i, (_, table) in enumerate(tables)])
    row = np.concatenate([np.arange(table.num_rows, dtype=np.int64) for _, table in tables])

    earlier_hashes = fact_hashes(earlier, contract)
    order = np.argsort(earlier_hashes, kind="stable")
    ordered = earlier_hashes[order]
    at = np.minimum(np.searchsorted(ordered, fact_hashes(incoming, contract)), len(ordered) - 1)
    candidate = ordered[at] == fact_hashes(incoming, contract)
    new_index = np.flatnonzero(candidate)
    if not len(new_index):
        return PartitionMerge(fresh=incoming)
    old_index = order[at[candidate]]
    pair_new = incoming.take(pa.array(new_index))
    pair_old = earlier.take(pa.array(old_index))
    # A hash match is only a match when the fact's identity is equal too.
    identity = _same(pair_new, pair_old, [contract.entity_key, contract.event_timestamp])
    same_values = _same(pair_new, pair_old, contract.columns)
    identical = identity & same_values
    replaced = identity & ~same_values

    keep = np.ones(incoming.num_rows, dtype=bool)
    keep[new_index[identical]] = False
    rewrites: dict[str, pa.Table] = {}
    superseded = old_index[replaced]
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
