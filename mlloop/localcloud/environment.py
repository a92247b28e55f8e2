"""Overlay a function's or a container's environment on this process's os.environ, and restore it.

Restoring never deletes a variable: other threads (moto's request handlers, boto3 in the caller) iterate
os.environ while an overlay is active, and a key deleted between their listing and their read raises KeyError
there. A variable the overlay added therefore stays, with the value it last had, which no local code reads
outside its own overlay.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping


@contextlib.contextmanager
def overlay_environ(environment: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is not None:
                os.environ[key] = value
