"""The hot-path JSON encoder writes exactly what json.dumps with compact separators writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.shared.jsonenc import compact_json

VALUES: list[Any] = [
    {"a": 1, "b": [1.5, 0.1 + 0.2, -0.0, 1e300, True, False, None], "c": {"nested": 'é " \\ \n \u2028'}},
    "just a string",
    [],
    {},
    3,
    2.5,
    None,
    {"nan": float("nan"), "inf": float("inf")},
    {7: "int key", 2.5: "float key", True: "bool key", None: "none key"},
]


@pytest.mark.parametrize("value", VALUES)
def test_output_is_json_dumps_with_compact_separators(value: Any) -> None:
    assert compact_json(value) == json.dumps(value, separators=(",", ":"))


def test_what_json_cannot_encode_is_refused_as_json_dumps_refuses_it() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        compact_json({"when": object()})
