"""One resolution of the configuration: cdk.json's context plus `-c key=value` overrides, seen by every tool.

The CDK CLI hands `cdk synth -c key=value` to the app as context. The project's own tools (the `mlloop` CLI, the
demo, the local cloud, the benchmarks) take the same `-c key=value` arguments and publish them in the
environment (`MLLOOP_CONTEXT`, a JSON object), so a value given once is seen by that tool, by the synthesis it
runs and by every process it starts. A key is either top-level (`model_name=churn`) or a dotted path to one
nested value (`stages.dev.gates.promotion.min_primary=0.75`), which CDK context alone cannot express. Values
are JSON when they parse as JSON (`0.75`, `true`, `{"a": 1}`), else strings, as typed on a command line.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from infra.config import ConfigError, StageConfig, load_stage_models, read_cdk_json_context

CONTEXT_ENV = "MLLOOP_CONTEXT"


def parse_context_arguments(pairs: Iterable[str]) -> dict[str, Any]:
    """`key=value` strings, as `-c` takes them, to a mapping of decoded values."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-c {pair!r}: expected key=value (e.g. stages.dev.gates.promotion.min_primary=0.75)")
        overrides[key.strip()] = decode_value(raw)
    return overrides


def decode_value(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def apply_context_overrides(context: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `context` with each override set; a dotted path must name keys that exist up to its last part."""
    resolved = copy.deepcopy(dict(context))
    for key, value in overrides.items():
        parts = key.split(".")
        if len(parts) == 1:
            resolved[key] = decode_value(value)
            continue
        inside = _open_model_entry(resolved, parts)
        node: MutableMapping[str, Any] = resolved
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None and inside is not None and depth >= inside - 1:
                # A model entry holds only what differs from the stage: any of its sections may be set here,
                # and the typed config refuses a key that is none of them, naming the full path.
                child = node[part] = {}
            if not isinstance(child, dict):
                known = ", ".join(sorted(k for k in node if isinstance(node[k], dict))) or "none"
                path = ".".join(parts[: depth + 1])
                raise ConfigError(f"-c {key}: {path} is not a section of the configuration (sections here: {known})")
            node = child
        leaf = parts[-1]
        # A stage's `models` (docs/models.md) is a key of the stage that cdk.json need not spell out.
        stage_models = len(parts) == 3 and parts[0] == "stages" and leaf == "models"
        if leaf not in node and inside is None and not stage_models:
            # A new key inside a known section is a typo far more often than a wish: the typed config would
            # ignore or refuse it later, so say so here, with what the section holds.
            raise ConfigError(f"-c {key}: {leaf} is not a key of {'.'.join(parts[:-1])} (keys: {', '.join(node)})")
        node[leaf] = decode_value(value)
    return resolved


def _open_model_entry(resolved: MutableMapping[str, Any], parts: list[str]) -> int | None:
    """For a path into one model's settings (`models.<name>.…`, `stages.<stage>.models.<name>.…`), the index of
    the part after the model's name, with the models mapping that path needs made present in `resolved` (the
    single-model shorthand spelled as a mapping); the model must be declared. None for any other path."""
    if parts[0] == "models" and len(parts) > 2:
        at = 1
    elif len(parts) > 4 and parts[0] == "stages" and parts[2] == "models":
        at = 3
    else:
        return None
    if isinstance(resolved.get("models"), str):
        resolved["models"] = decode_value(resolved["models"])
    declared = _declared_models(resolved)
    if at == 3:
        stage_models = decode_value(resolved.get("stages", {}).get(parts[1], {}).get("models"))
        declared += [n for n in stage_models or {} if n not in declared]
    name = parts[at]
    if name not in declared:
        raise ConfigError(f"-c {'.'.join(parts)}: {name} is not a model (models: {', '.join(declared) or 'none'})")
    if "models" not in resolved and isinstance(resolved.get("model_name"), str):
        # The single-model shorthand, spelled as the models mapping it stands for, so a model's key can be set.
        resolved["models"] = {resolved["model_name"]: {"dataset": resolved.get("dataset", resolved["model_name"])}}
    if at == 3:
        stage = resolved.get("stages", {}).get(parts[1])
        if isinstance(stage, dict):
            stage.setdefault("models", {})
    return at + 1


def _declared_models(resolved: Mapping[str, Any]) -> list[str]:
    models = decode_value(resolved.get("models"))
    if isinstance(models, dict):
        return list(models)
    return [resolved["model_name"]] if isinstance(resolved.get("model_name"), str) else []


def split_dotted(context: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plain context, dotted overrides): how `cdk synth -c a.b=1` reaches the app, as a key with dots in it."""
    plain = {k: v for k, v in context.items() if "." not in k or k.startswith("@")}
    dotted = {k: v for k, v in context.items() if "." in k and not k.startswith("@")}
    return plain, dotted


def context_overrides() -> dict[str, Any]:
    """The overrides published for this run (by a tool's `-c` arguments, or a parent process)."""
    raw = os.environ.get(CONTEXT_ENV, "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{CONTEXT_ENV}: not a JSON object ({exc})") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{CONTEXT_ENV}: not a JSON object")
    return value


def use_context_arguments(pairs: Iterable[str]) -> dict[str, Any]:
    """Publish `-c` arguments for this process and its children; returns the resolved context."""
    overrides = {**context_overrides(), **parse_context_arguments(pairs)}
    resolved = apply_context_overrides(read_cdk_json_context(), overrides)
    if overrides:
        os.environ[CONTEXT_ENV] = json.dumps(overrides, sort_keys=True)
    return resolved


def add_context_argument(parser: argparse.ArgumentParser) -> None:
    """The `-c KEY=VALUE` option, as the CDK CLI spells it, for every tool of the project."""
    parser.add_argument(
        "-c",
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a cdk.json context value for this run, e.g. -c stages.dev.gates.promotion.min_primary=0.75",
    )


def effective_context() -> dict[str, Any]:
    """cdk.json's context with this run's overrides applied: what synth, the CLI, the demo and the cloud read."""
    return apply_context_overrides(read_cdk_json_context(), context_overrides())


def stage_configs_from_app(app: Any) -> dict[str, list[StageConfig]]:
    """The stages a `cdk synth` builds, each with its models: `-c stage=<name>` picks one, otherwise every
    stage in cdk.json.

    Dotted `-c` keys given to the CDK CLI, and this run's published overrides, are applied as the tools apply them.
    """
    plain, dotted = split_dotted(app.node.get_all_context())
    context = apply_context_overrides(plain, {**dotted, **context_overrides()})
    chosen = context.get("stage")
    stages = [str(chosen)] if chosen else list(context.get("stages") or {})
    if not stages:
        raise ConfigError("stages: missing key (allowed: a mapping of dev, staging, prod)")
    return {stage: load_stage_models(context, stage) for stage in stages}
