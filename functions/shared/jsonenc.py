"""Compact JSON for hot paths: the bytes `json.dumps(value, separators=(",", ":"))` writes, for less.

`JSONEncoder.encode` builds a fresh C encoder (and a circular-reference memo) on every call, about a
microsecond per request-path document. Without the circular check the C encoder holds no state between
calls, so one is built for the process; the values encoded here are the platform's own plain data.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any

_REFERENCE = json.JSONEncoder(separators=(",", ":"))


def _compact_encoder() -> Callable[[Any], str]:
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return _REFERENCE.encode
    encode_chunks = make(
        None,  # markers: no circular-reference check
        _REFERENCE.default,
        json.encoder.encode_basestring_ascii,
        None,  # indent
        ":",
        ",",
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan, as json.dumps
    )

    def compact_json(value: Any) -> str:
        return "".join(encode_chunks(value, 0))

    return compact_json


compact_json = _compact_encoder()
