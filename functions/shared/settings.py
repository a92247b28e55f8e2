"""Function settings from environment variables: one typed dataclass per function, read when an event arrives.

Each field `some_name` reads `SOME_NAME` (str, int, float or bool); a field with a default may be absent.
A missing or malformed variable raises SettingsError naming it, so a miswired stack fails loudly.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")
# Names a function's model in a stage with several models (set by the stacks; absent for a stage's only model).
MODEL_VARIABLE = "MLLOOP_MODEL"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false"}


class SettingsError(RuntimeError):
    """A function's environment lacks a variable or holds a value of the wrong type."""


def _convert(name: str, raw: str, kind: Any) -> Any:
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise ValueError(raw)
            return lowered in _TRUE
        if kind in (int, float):
            return kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}: {raw!r} is not {_KIND_NAMES[kind]}") from exc
    return raw


def load_settings(cls: type[T], env: Mapping[str, str] | None = None, **given: Any) -> T:
    """Build `cls` from the environment; `given` supplies fields that do not come from variables."""
    source = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = dict(given)
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if field.name in given:
            continue
        name = field.name.upper()
        raw = source.get(name)
        if raw is None or raw == "":
            has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
            if has_default:
                continue
            raise SettingsError(f"{name}: missing environment variable")
        values[field.name] = _convert(name, raw, hints[field.name])
    return cls(**values)
