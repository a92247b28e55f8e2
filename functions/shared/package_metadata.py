"""Values for a model package's CustomerMetadataProperties, made acceptable to SageMaker.

SageMaker's model (botocore `sagemaker` CustomerMetadataValue) allows 1-256 characters matching
`[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*`: letters, separators (the space, not tabs or newlines) and numbers of any script,
plus `_ . : / = + - @`. Anything else (`,` `(` `)` `'` ...) makes UpdateModelPackage fail with ValidationException,
so every writer passes its values through here; the full text goes where no such pattern applies (the
notification, ApprovalDescription).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from typing import Any

MAX_METADATA_VALUE = 256
_ALLOWED_SYMBOLS = frozenset("_.:/=+-@")


def _allowed(char: str) -> bool:
    return unicodedata.category(char)[0] in "LZN" or char in _ALLOWED_SYMBOLS


def metadata_value(value: Any, *, replacement: str = "-") -> str:
    """`value` as text SageMaker accepts: each disallowed character replaced, at most 256 characters, never empty."""
    text = "".join(char if _allowed(char) else replacement for char in str(value))
    if replacement == " ":
        text = " ".join(text.split())
    return text[:MAX_METADATA_VALUE].strip() or "-"


def evaluated_metric_key(metric: str) -> str:
    """The key under which registration records a candidate's test-set figure (e.g. `test_roc_auc`)."""
    return f"test_{metric}"


def evaluated_metric(metadata: Mapping[str, Any], metric: str) -> float | None:
    """The package's evaluated test-set figure, or None when it was not recorded (older packages)."""
    try:
        value = float(metadata[evaluated_metric_key(metric)])
    except (KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
