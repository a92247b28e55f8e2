"""Threshold policies as data: the data gate's and the promotion gate's, set per stage in cdk.json.

A policy is a frozen dataclass whose numeric fields carry their allowed bounds (`Annotated[float, Range(0, 1)]`).
Synth checks a stage's values against those bounds (infra/config.py) and writes the whole policy as JSON into
the function's environment, where `policy_from_dict` reads it back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Range:
    """Inclusive bounds of a numeric setting, attached with Annotated[int, Range(lo, hi)]."""

    min: float
    max: float


class PolicyError(ValueError):
    """A policy field is unknown or its value is unacceptable; the message starts with the field's name."""


def policy_from_dict(cls: type[T], raw: Mapping[str, Any]) -> T:
    """`cls` with the fields `raw` sets and the defaults of the rest; an unknown field is refused by name."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(raw) - known)
    if unknown:
        raise PolicyError(f"{unknown[0]}: unknown policy field (allowed: {', '.join(sorted(known))})")
    return cls(**dict(raw))
