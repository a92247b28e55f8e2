"""Overlay a function's or a container's environment on this process's os.environ, and restore it.

Restoring never deletes a variable: other threads (moto's request handlers, boto3 in the caller) iterate
os.environ while an overlay is active, and a key deleted between their listing and their read raises KeyError
there. A variable an overlay added therefore stays, with the value it last had, until the local cloud has
stopped its threads and calls `drop_added_variables` (a later boto3 client in the same process would otherwise
still find, say, AWS_ENDPOINT_URL pointing at the stopped server).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

_added: set[str] = set()


@contextlib.contextmanager
def overlay_environ(environment: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in environment}
    _added.update(key for key, value in saved.items() if value is None)
    os.environ.update(environment)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is not None:
                os.environ[key] = value


def drop_added_variables() -> None:
    """Delete what overlays added; only once nothing runs that could be iterating os.environ."""
    for key in _added:
        os.environ.pop(key, None)
    _added.clear()
