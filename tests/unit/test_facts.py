"""Fact identity and the latest-arrival rule, on plain Arrow tables."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from functions.shared.facts import latest_arrival_wins, merge_partition, string_hashes

T = pa.timestamp("us", tz="UTC")
DAY = datetime(2026, 5, 1, 8, tzinfo=UTC)


def _rows(ids: list[str], values: list[float | None], *, with_value: bool = True) -> pa.Table:
    columns = {"id": pa.array(ids), "at": pa.array([DAY] * len(ids), type=T)}
    if with_value:
        columns["value"] = pa.array(values, type=pa.float64())
    return pa.table(columns)


def test_equal_strings_hash_alike_whatever_their_layout() -> None:
    array = pa.array(["C1", None, "", "C1", "C10", "1C"] * 20_000)

    hashes = string_hashes(array)

    assert hashes[0] == hashes[3] and hashes[1] == hashes[2]
    assert len({hashes[0], hashes[4], hashes[5], hashes[1]}) == 4
    assert np.array_equal(string_hashes(pa.chunked_array([array.slice(0, 7), array.slice(7)])), hashes)
    assert np.array_equal(string_hashes(array.slice(5)), hashes[5:])


def test_a_copy_with_the_same_values_is_dropped_and_one_with_other_values_supersedes() -> None:
    earlier = {"a.parquet": _rows(["A", "B", "C"], [1.0, 2.0, None])}
    incoming = _rows(["A", "B", "D", "C"], [1.0, 9.0, 4.0, None])

    merged = merge_partition(incoming, earlier, ["id", "at", "value"], "id", "at")

    assert merged.fresh.column("id").to_pylist() == ["B", "D"]
    assert (merged.dropped, merged.superseded) == (2, 1)
    assert merged.rewrites["a.parquet"].column("id").to_pylist() == ["A", "C"]


def test_an_object_written_under_an_older_contract_is_compared_on_what_it_has() -> None:
    earlier = {"old.parquet": _rows(["A"], [], with_value=False)}

    merged = merge_partition(_rows(["A"], [3.0]), earlier, ["id", "at", "value"], "id", "at")

    assert merged.fresh.num_rows == 1 and merged.superseded == 1
    assert merged.rewrites["old.parquet"].num_rows == 0


def test_latest_arrival_wins_across_objects() -> None:
    first, second = _rows(["A", "B"], [1.0, 2.0]), _rows(["B", "C"], [5.0, 6.0])

    table, removed = latest_arrival_wins([first, second], "id", "at")

    assert removed == 1
    assert sorted(zip(table.column("id").to_pylist(), table.column("value").to_pylist(), strict=True)) == [
        ("A", 1.0),
        ("B", 5.0),
        ("C", 6.0),
    ]
