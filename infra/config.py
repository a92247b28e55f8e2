"""StageConfig: the typed, validated per-stage settings. The only reader of CDK context.

What differs between dev, staging and prod is data in cdk.json, parsed here. A bad value stops synth
with one line naming the key and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

STAGES: tuple[str, ...] = ("dev", "staging", "prod")
CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


class ConfigError(ValueError):
    """One line: the full key path, the bad value and what is allowed."""


def _spec(lo: float | None = None, hi: float | None = None) -> Any:
    return field(metadata={"min": lo, "max": hi})


@dataclass(frozen=True)
class LakeConfig:
    raw_infrequent_access_days: int = _spec(30, 3650)
    raw_glacier_days: int = _spec(31, 3650)
    noncurrent_expiry_days: int = _spec(1, 3650)
    ingest_chunk_rows: int = _spec(1000, 5_000_000)


@dataclass(frozen=True)
class TrainingConfig:
    instance_type: str = _spec()
    instance_count: int = _spec(1, 20)
    max_runtime_seconds: int = _spec(60, 432_000)
    use_spot: bool = _spec()
    schedule: str = _spec()
    retrain_on_new_data: bool = _spec()
    cooldown_minutes: int = _spec(0, 10_080)
    window_days: int = _spec(1, 3650)


@dataclass(frozen=True)
class EndpointConfig:
    instance_type: str = _spec()
    instance_count: int = _spec(1, 40)
    data_capture_percent: int = _spec(0, 100)


@dataclass(frozen=True)
class DeploymentConfig:
    mode: Literal["CANARY", "LINEAR", "ALL_AT_ONCE"] = _spec()
    canary_percent: int = _spec(1, 50)
    linear_step_percent: int = _spec(5, 50)
    wait_seconds: int = _spec(0, 3600)
    termination_wait_seconds: int = _spec(0, 3600)
    max_execution_seconds: int = _spec(600, 28_800)


@dataclass(frozen=True)
class FrontDoorConfig:
    max_batch_records: int = _spec(1, 1000)
    throttle_rate: int = _spec(1, 10_000)
    throttle_burst: int = _spec(1, 5000)
    endpoint_timeout_ms: int = _spec(50, 60_000)
    endpoint_retries: int = _spec(0, 5)
    circuit_failures: int = _spec(1, 1000)
    circuit_window_seconds: int = _spec(1, 3600)
    circuit_cooldown_seconds: int = _spec(1, 3600)
    prediction_log_sample_percent: int = _spec(0, 100)


@dataclass(frozen=True)
class MonitoringConfig:
    drift_schedule: str = _spec()
    drift_window_hours: int = _spec(1, 720)
    min_drift_samples: int = _spec(10, 10_000_000)
    psi_threshold: float = _spec(0.01, 10)
    drifted_share_threshold: float = _spec(0.01, 1)
    prediction_psi_threshold: float = _spec(0.01, 10)
    latency_p99_ms: int = _spec(1, 60_000)
    errors_5xx: int = _spec(1, 100_000)
    fallback_rate_percent: float = _spec(0.1, 100)
    validation_error_rate_percent: float = _spec(0.1, 100)
    quarantine_rate_percent: float = _spec(0.1, 100)
    min_live_auc: float = _spec(0.5, 1)
    retraining_needs_approval: bool = _spec()


@dataclass(frozen=True)
class StageConfig:
    stage: str
    project: str
    model_name: str
    dataset: str
    account: str | None = _spec()
    region: str = _spec()
    removal_policy: Literal["destroy", "retain"] = _spec()
    approval: Literal["auto", "manual"] = _spec()
    lake: LakeConfig
    training: TrainingConfig
    endpoint: EndpointConfig
    deployment: DeploymentConfig
    frontdoor: FrontDoorConfig
    monitoring: MonitoringConfig

    @property
    def prefix(self) -> str:
        """Prefix of every physical name in this stage, e.g. `mlloop-dev`."""
        return f"{self.project}-{self.stage}"

    @property
    def model_package_group(self) -> str:
        return f"{self.prefix}-{self.model_name}"

    @property
    def endpoint_name(self) -> str:
        return f"{self.prefix}-{self.model_name}"

    @property
    def metrics_namespace(self) -> str:
        return f"MLLoop/{self.stage}"


T = TypeVar("T")


def _describe_allowed(tp: Any, meta: typing.Mapping[str, Any]) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if tp is bool:
        return "true or false"
    lo, hi = meta.get("min"), meta.get("max")
    kind = "an integer" if tp is int else "a number" if tp is float else "a string"
    if lo is not None and hi is not None:
        return f"{kind} from {lo} to {hi}"
    return kind


def _check_value(path: str, tp: Any, meta: typing.Mapping[str, Any], value: Any) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        tp = next(o for o in options if o is not type(None))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {value!r}")
        return _build(tp, value, path)  # type: ignore[arg-type]
    allowed = _describe_allowed(tp, meta)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{path}: {value!r} is not allowed (allowed: {allowed})")
        return value
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str) and bool(value)
    if not ok:
        raise ConfigError(f"{path}: {value!r} has the wrong type (allowed: {allowed})")
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(f"{path}: {value!r} is out of range (allowed: {allowed})")
    return value


def _build(cls: type[T], raw: dict[str, Any], path: str, **given: Any) -> T:
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.name not in given]  # type: ignore[arg-type]
    names = {f.name for f in fields}
    for key in raw:
        if key not in names:
            raise ConfigError(f"{path}.{key}: unknown key (allowed: {', '.join(sorted(names))})")
    values = dict(given)
    for f in fields:
        key = f"{path}.{f.name}"
        if f.name not in raw and type(None) in get_args(hints[f.name]):
            # CDK context drops JSON nulls on its way through jsii, so an optional key may arrive absent.
            values[f.name] = None
            continue
        if f.name not in raw:
            raise ConfigError(f"{key}: missing key (allowed: {_describe_allowed(hints[f.name], f.metadata)})")
        values[f.name] = _check_value(key, hints[f.name], f.metadata, raw[f.name])
    return cls(**values)


def load_stage_config(context: typing.Mapping[str, Any], stage: str) -> StageConfig:
    """Parse one stage out of the CDK context (a plain mapping, so tests need no CDK app)."""
    stages = context.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise ConfigError("stages: missing key (allowed: a mapping of dev, staging, prod)")
    if stage not in STAGES or stage not in stages:
        raise ConfigError(
            f"stage: {stage!r} is not a known stage (allowed: {', '.join(s for s in STAGES if s in stages)})"
        )
    for key in ("project", "model_name", "dataset"):
        if not isinstance(context.get(key), str) or not context.get(key):
            raise ConfigError(f"{key}: missing key (allowed: a non-empty string)")
    return _build(
        StageConfig,
        stages[stage],
        f"stages.{stage}",
        stage=stage,
        project=context["project"],
        model_name=context["model_name"],
        dataset=context["dataset"],
    )


def load_all_stages(context: typing.Mapping[str, Any]) -> list[StageConfig]:
    stages = context.get("stages")
    if not isinstance(stages, dict):
        raise ConfigError("stages: missing key (allowed: a mapping of dev, staging, prod)")
    return [load_stage_config(context, s) for s in stages]


def read_cdk_json_context(path: str | Path = CDK_JSON) -> dict[str, Any]:
    """The context block of cdk.json, for code that runs outside `cdk synth` (the local cloud, the CLI)."""
    return dict(json.loads(Path(path).read_text())["context"])


def stage_configs_from_app(app: Any) -> list[StageConfig]:
    """The stages a `cdk synth` builds: `-c stage=<name>` picks one, otherwise every stage in cdk.json."""
    context = {key: app.node.try_get_context(key) for key in ("project", "model_name", "dataset", "stages")}
    chosen = app.node.try_get_context("stage")
    if chosen:
        return [load_stage_config(context, str(chosen))]
    return load_all_stages(context)
