"""Values for a model package's CustomerMetadataProperties, made acceptable to SageMaker.

SageMaker's model (botocore `sagemaker` CustomerMetadataValue) allows 1-256 characters matching
`[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*`: letters, separators (the space, not tabs or newlines) and numbers of any script,
plus `_ . : / = + - @`. Anything else (`,` `(` `)` `'` ...) makes UpdateModelPackage fail with ValidationException,
so every writer passes its values through here; the full text goes where no such pattern applies (the
notification, ApprovalDescription).
"""

from __future__ import annotations

import unicodedata
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
