"""StageConfig: the typed, validated per-stage settings. The only reader of CDK context.

What differs between dev, staging and prod is data in cdk.json, parsed here. A bad value stops synth
with one line naming the key and what is allowed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from functions.check_data_gate.logic import DataGatePolicy
from functions.drift_detector.logic import DriftThresholds
from functions.shared.policy import PolicyError, Range
from infra.aws_limits import LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY, LAMBDA_NEW_ACCOUNT_CONCURRENCY_QUOTA
from training.candidates import candidate_kinds, factory_module_file
from training.decision import ThresholdPolicy
from training.gate import GatePolicy

STAGES: tuple[str, ...] = ("dev", "staging", "prod")
REPO_ROOT = Path(__file__).resolve().parents[1]
CDK_JSON = REPO_ROOT / "cdk.json"


class ConfigError(ValueError):
    """One line: the full key path, the bad value and what is allowed."""


@dataclass(frozen=True)
class LakeConfig:
    raw_infrequent_access_days: Annotated[int, Range(30, 3650)]
    raw_glacier_days: Annotated[int, Range(31, 3650)]
    noncurrent_expiry_days: Annotated[int, Range(1, 3650)]
    ingest_chunk_rows: Annotated[int, Range(1000, 5_000_000)]
    # Files larger than this are split into byte ranges ingested in parallel (docs/data-lake.md); 0: the largest
    # file one ingest invocation holds, computed from its memory, time limit and /tmp (functions/ingest/ranges.py).
    ingest_split_bytes: Annotated[int, Range(0, 1 << 40)] = 0


@dataclass(frozen=True)
class TrainingConfig:
    instance_type: str
    instance_count: Annotated[int, Range(1, 20)]
    max_runtime_seconds: Annotated[int, Range(60, 432_000)]
    use_spot: bool
    schedule: str
    retrain_on_new_data: bool
    cooldown_minutes: Annotated[int, Range(0, 10_080)]
    window_days: Annotated[int, Range(1, 3650)]
    # What a false positive and a false negative cost (or a target precision/recall): sets the served threshold.
    decision: ThresholdPolicy = dataclasses.field(default_factory=ThresholdPolicy)
    # The estimator(s) the baseline must be beaten by: built-in kinds or `training.models.<module>:<function>`.
    candidate: str = "hist_gradient_boosting"

    def __post_init__(self) -> None:
        for kind in candidate_kinds(self.candidate):
            module = factory_module_file(kind, REPO_ROOT)
            if module is not None and not module.is_file():
                raise PolicyError(f"candidate: {kind} names {module.relative_to(REPO_ROOT)}, which does not exist")


@dataclass(frozen=True)
class EndpointConfig:
    instance_type: str
    instance_count: Annotated[int, Range(1, 40)]
    data_capture_percent: Annotated[int, Range(0, 100)]


@dataclass(frozen=True)
class DeploymentConfig:
    mode: Literal["CANARY", "LINEAR", "ALL_AT_ONCE"]
    canary_percent: Annotated[int, Range(1, 50)]
    linear_step_percent: Annotated[int, Range(5, 50)]
    wait_seconds: Annotated[int, Range(0, 3600)]
    termination_wait_seconds: Annotated[int, Range(0, 3600)]
    max_execution_seconds: Annotated[int, Range(600, 28_800)]


@dataclass(frozen=True)
class RollbackConfig:
    """Fast rollback: the previous champion kept warm on the endpoint as a weight-0 `standby` variant.

    `standby` costs `standby_instance_count` instances of the endpoint's type for as long as it is on (see
    docs/serving.md); `window_hours` after each promotion a rollback to it is a weights-only switch, later it
    takes the guarded redeploy path.
    """

    standby: bool = False
    window_hours: Annotated[int, Range(1, 720)] = 24
    standby_instance_count: Annotated[int, Range(1, 40)] = 2


@dataclass(frozen=True)
class ConcurrencyConfig:
    """The Lambda concurrency quota of the account the stage deploys to, and the reservations it can afford.

    A function listed in `reserved` gets that many reserved concurrent executions, which is also its limit; a
    function not listed shares the unreserved pool. Lambda refuses a reservation that leaves fewer than 10
    unreserved (infra/aws_limits.py), so with a new account's quota of 10 nothing can be reserved: declare
    `account_quota` only as what the account really has (Service Quotas, "Concurrent executions").
    """

    account_quota: Annotated[int, Range(LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY, 1_000_000)] = (
        LAMBDA_NEW_ACCOUNT_CONCURRENCY_QUOTA
    )
    reserved: dict[str, Annotated[int, Range(1, 100_000)]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        known = sorted(p.parent.name for p in (REPO_ROOT / "functions").glob("*/handler.py"))
        for name in self.reserved:
            if name not in known:
                raise PolicyError(f"reserved.{name}: unknown function (allowed: {', '.join(known)})")
        total = sum(self.reserved.values())
        affordable = self.account_quota - LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY
        if total > affordable:
            raise PolicyError(
                f"reserved: {total} reserved concurrent executions leave {self.account_quota - total} of "
                f"account_quota {self.account_quota} unreserved, below Lambda's minimum of "
                f"{LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY} (allowed: at most {affordable} in total; the deploy would "
                "fail with \"Specified ReservedConcurrentExecutions for function decreases account's "
                f'UnreservedConcurrentExecution below its minimum value of [{LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY}].")'
            )

    def for_function(self, name: str) -> int | None:
        return self.reserved.get(name)


def _whole_instance_percents(instance_count: int, lowest: int) -> list[int]:
    """Traffic percentages SageMaker can shift on `instance_count` instances: whole instances, `lowest`-50 %."""
    return [
        k * 100 // instance_count
        for k in range(1, instance_count + 1)
        if (k * 100) % instance_count == 0 and lowest <= k * 100 // instance_count <= 50
    ]


def _check_deployment_fits(deployment: DeploymentConfig, endpoint: EndpointConfig, rollback: RollbackConfig) -> None:
    """SageMaker sizes a canary or linear step in whole instances of the variant, at most half of them (and at
    least 10 % for linear steps; API_TrafficRoutingConfig: "Value must be less than or equal to 50% of the
    variant's total instance count"): a percentage that is not a whole number of instances would shift another
    share of traffic than the stage says, and on one instance none is possible. Every variant of the endpoint
    config goes through the blue/green update, so a warm standby variant must fit the step too."""
    if deployment.mode == "ALL_AT_ONCE":
        return
    field, percent, lowest = (
        ("canary_percent", deployment.canary_percent, 1)
        if deployment.mode == "CANARY"
        else ("linear_step_percent", deployment.linear_step_percent, 10)
    )
    variants = [("endpoint", endpoint.instance_count)]
    if rollback.standby:
        variants.append(("standby", rollback.standby_instance_count))
    for variant, count in variants:
        allowed = _whole_instance_percents(count, lowest)
        if percent not in allowed:
            choices = ", ".join(map(str, allowed)) if allowed else "none: use ALL_AT_ONCE or at least 2 instances"
            raise PolicyError(
                f"deployment.{field}: {percent} is not a whole number of the {variant}'s {count} "
                f"instance(s) up to half of them, which is how SageMaker shifts {deployment.mode} traffic "
                f"(allowed: {choices})"
            )


@dataclass(frozen=True)
class FrontDoorConfig:
    max_batch_records: Annotated[int, Range(1, 1000)]
    throttle_rate: Annotated[int, Range(1, 10_000)]
    throttle_burst: Annotated[int, Range(1, 5000)]
    endpoint_timeout_ms: Annotated[int, Range(50, 60_000)]
    endpoint_retries: Annotated[int, Range(0, 5)]
    # The circuit breaker (functions/frontdoor/circuit.py): failure rate over a time window, resilience4j-style.
    circuit_minimum_calls: Annotated[int, Range(1, 1000)]
    circuit_failure_rate_percent: Annotated[int, Range(1, 100)]
    circuit_half_open_probes: Annotated[int, Range(1, 100)]
    circuit_window_seconds: Annotated[int, Range(1, 3600)]
    circuit_cooldown_seconds: Annotated[int, Range(1, 3600)]
    prediction_log_sample_percent: Annotated[int, Range(0, 100)]
    # Requests one client IP may send in 5 minutes before the API's WAF web ACL blocks it; absent = no web ACL.
    # AWS WAF allows 10 to 2,000,000,000 (RateBasedStatement.Limit, 300 s evaluation window).
    waf_rate_limit_per_ip: Annotated[int | None, Range(10, 2_000_000_000)] = None

    def function_environment(self) -> dict[str, str]:
        """The front-door function's tuning, as the variables its FrontDoorSettings reads."""
        tuning = (
            "max_batch_records",
            "endpoint_timeout_ms",
            "endpoint_retries",
            "circuit_minimum_calls",
            "circuit_failure_rate_percent",
            "circuit_half_open_probes",
            "circuit_window_seconds",
            "circuit_cooldown_seconds",
            "prediction_log_sample_percent",
        )
        return {name.upper(): str(getattr(self, name)) for name in tuning}


@dataclass(frozen=True)
class MonitoringConfig:
    drift_schedule: str
    drift_window_hours: Annotated[int, Range(1, 720)]
    min_drift_samples: Annotated[int, Range(10, 10_000_000)]
    psi_threshold: Annotated[float, Range(0.01, 10)]
    drifted_share_threshold: Annotated[float, Range(0.01, 1)]
    prediction_psi_threshold: Annotated[float, Range(0.01, 10)]
    # Drift thresholds beyond PSI (functions/drift_detector/logic.DriftThresholds says what each measures).
    wasserstein_threshold: Annotated[float, Range(0.01, 10)]
    out_of_range_threshold: Annotated[float, Range(0.001, 1)]
    weighted_drift_threshold: Annotated[float, Range(0.01, 1)]
    prediction_wasserstein_threshold: Annotated[float, Range(0.01, 10)]
    latency_p99_ms: Annotated[int, Range(1, 60_000)]
    errors_5xx: Annotated[int, Range(1, 100_000)]
    fallback_rate_percent: Annotated[float, Range(0.1, 100)]
    validation_error_rate_percent: Annotated[float, Range(0.1, 100)]
    quarantine_rate_percent: Annotated[float, Range(0.1, 100)]
    min_live_auc: Annotated[float, Range(0.5, 1)]
    # How far the serving version's live AUC may fall below its own evaluated test AUC before retraining: an
    # absolute floor cannot see a concept change that costs a 0.82 model 0.05 (docs/monitoring.md).
    max_live_auc_drop: Annotated[float, Range(0.005, 0.5)]
    retraining_needs_approval: bool

    def drift_thresholds(self) -> DriftThresholds:
        """The drift detector's thresholds, as its function reads them from the variables the stack sets."""
        return DriftThresholds(
            psi=self.psi_threshold,
            drifted_share=self.drifted_share_threshold,
            prediction_psi=self.prediction_psi_threshold,
            min_samples=self.min_drift_samples,
            wasserstein=self.wasserstein_threshold,
            out_of_range_rate=self.out_of_range_threshold,
            weighted_severity=self.weighted_drift_threshold,
            prediction_wasserstein=self.prediction_wasserstein_threshold,
        )


@dataclass(frozen=True)
class GatesConfig:
    """The training workflow's two gates; a threshold left out keeps the policy's default."""

    data: DataGatePolicy = dataclasses.field(default_factory=DataGatePolicy)
    promotion: GatePolicy = dataclasses.field(default_factory=GatePolicy)


@dataclass(frozen=True)
class StageConfig:
    """The resolved settings of ONE model in one stage: the stage's shared fields and that model's sections."""

    stage: str
    project: str
    model_name: str
    dataset: str
    account: str | None
    region: str
    removal_policy: Literal["destroy", "retain"]
    approval: Literal["auto", "manual"]
    lake: LakeConfig
    training: TrainingConfig
    endpoint: EndpointConfig
    deployment: DeploymentConfig
    frontdoor: FrontDoorConfig
    monitoring: MonitoringConfig
    gates: GatesConfig
    rollback: RollbackConfig = dataclasses.field(default_factory=RollbackConfig)
    concurrency: ConcurrencyConfig = dataclasses.field(default_factory=ConcurrencyConfig)
    # The model's name is in the physical names of its resources only when the stage has several models: a
    # single-model stage keeps the names it always had (renaming a stack replaces its resources on AWS).
    sole_model: bool = True

    def __post_init__(self) -> None:
        _check_deployment_fits(self.deployment, self.endpoint, self.rollback)

    @property
    def stage_prefix(self) -> str:
        """Prefix of the stage's shared resources (the data lake and its ingestion), e.g. `mlloop-dev`."""
        return f"{self.project}-{self.stage}"

    @property
    def prefix(self) -> str:
        """Prefix of this model's stacks and physical names: `mlloop-dev`, or `mlloop-dev-<model>` beside others."""
        return self.stage_prefix if self.sole_model else f"{self.stage_prefix}-{self.model_name}"

    @property
    def model_package_group(self) -> str:
        return f"{self.stage_prefix}-{self.model_name}"

    @property
    def endpoint_name(self) -> str:
        return f"{self.stage_prefix}-{self.model_name}"

    @property
    def api_stack_name(self) -> str:
        """The stack of this model's API: its serving stack when alone, the stage's API stack beside other models."""
        return f"{self.prefix}-serving" if self.sole_model else f"{self.stage_prefix}-api"

    @property
    def api_path_prefix(self) -> str:
        """Where this model's paths (`/predict`, `/model`, `/health`) are on its API: the root, or `/models/<model>`."""
        return "" if self.sole_model else f"/models/{self.model_name}"

    @property
    def stage_metrics_namespace(self) -> str:
        """Where the shared lake's functions (ingestion) publish their metrics."""
        return f"MLLoop/{self.stage}"

    @property
    def metrics_namespace(self) -> str:
        """Where this model's functions publish: its own namespace beside other models, so no metric mixes two."""
        return self.stage_metrics_namespace if self.sole_model else f"{self.stage_metrics_namespace}/{self.model_name}"

    def lake_view(self) -> StageConfig:
        """The stage's shared settings with the stage-level names, for the data lake every model shares."""
        return dataclasses.replace(self, sole_model=True)


T = TypeVar("T")


def _describe_allowed(tp: Any, bounds: Range | None) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if tp is bool:
        return "true or false"
    kind = "an integer" if tp is int else "a number" if tp is float else "a string"
    if bounds is not None:
        return f"{kind} from {bounds.min:g} to {bounds.max:g}"
    return kind


def _check_value(path: str, tp: Any, bounds: Range | None, value: Any) -> Any:
    origin = get_origin(tp)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        item_type = get_args(tp)[1]
        item_bounds = None
        if get_origin(item_type) is Annotated:
            item_type, *extras = get_args(item_type)
            item_bounds = next((e for e in extras if isinstance(e, Range)), None)
        # CDK context drops JSON nulls, so a null entry means the same as an absent one.
        return {k: _check_value(f"{path}.{k}", item_type, item_bounds, v) for k, v in value.items() if v is not None}
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        tp = next(o for o in options if o is not type(None))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {value!r}")
        return _build(tp, value, path)  # type: ignore[arg-type]
    allowed = _describe_allowed(tp, bounds)
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
    if bounds is not None and not bounds.min <= value <= bounds.max:
        raise ConfigError(f"{path}: {value!r} is out of range (allowed: {allowed})")
    return value


def _build(cls: type[T], raw: dict[str, Any], path: str, **given: Any) -> T:
    hints: dict[str, Any] = {}
    ranges: dict[str, Range | None] = {}
    # The dataclass's own module globals, not sys.modules' current entry: the local cloud swaps a function's
    # modules in and out of sys.modules around each invocation, and a policy class may come from one of them.
    module_globals = getattr(cls.__init__, "__globals__", None)
    for name, hint in typing.get_type_hints(cls, globalns=module_globals, include_extras=True).items():
        if get_origin(hint) is Annotated:
            base, *extras = get_args(hint)
            hints[name] = base
            ranges[name] = next((e for e in extras if isinstance(e, Range)), None)
        else:
            hints[name], ranges[name] = hint, None
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
            if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                continue
            raise ConfigError(f"{key}: missing key (allowed: {_describe_allowed(hints[f.name], ranges[f.name])})")
        values[f.name] = _check_value(key, hints[f.name], ranges[f.name], raw[f.name])
    try:
        return cls(**values)
    except PolicyError as exc:
        # A rule across fields (or a value outside a list), checked by the policy itself; it names the field.
        raise ConfigError(f"{path}.{exc}") from None


# The sections a model entry may set for itself; the rest of a stage (account, region, lake, concurrency,
# approval, removal policy) is shared by every model of the stage.
MODEL_SECTIONS: tuple[str, ...] = (
    "training",
    "endpoint",
    "deployment",
    "rollback",
    "frontdoor",
    "monitoring",
    "gates",
)
# The functions of the stage's shared data lake (infra/stacks/data_lake.py); every other function is per model.
LAKE_FUNCTIONS: tuple[str, ...] = ("ingest", "ingest_range")
# A model's name is part of its endpoint's and registry group's names, which SageMaker allows as
# ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62} (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpoint.html);
# lower case keeps it usable in S3 keys and URL paths as well.
MODEL_NAME_PATTERN = re.compile(r"^[a-z0-9](-?[a-z0-9])*$")
# The longest physical name derived from a model prefix is an EventBridge rule name, which allows 64 characters
# (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutRule.html, Name: "Maximum length of 64");
# the longest rule suffix is the deploy stack's (infra/constructs/canary_endpoint.py). It also keeps the deploy's
# SageMaker model names, `<endpoint>-<version>-<8 hex>` (functions/deploy_model/logic.py), within their 63.
LONGEST_NAME_SUFFIX = "-deploy-on-approval"
EVENTBRIDGE_RULE_NAME_MAX = 64


def _merge(base: typing.Mapping[str, Any], override: typing.Mapping[str, Any]) -> dict[str, Any]:
    """`override` deep-merged onto a copy of `base`: a nested mapping merges key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _mapping(path: str, value: Any) -> dict[str, Any]:
    # A `-c models={...}` given to the CDK CLI arrives as the JSON text.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a mapping of model name to its settings, got {value!r}")
    return value


def _model_entries(context: typing.Mapping[str, Any], stage: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each model of `stage`: name -> (the path its settings are named by in errors, its own settings).

    Top-level `models` declares the models of every stage; `stages.<stage>.models` adds models or overrides a
    model's settings in that stage. Without either, `model_name` and `dataset` declare the one model.
    """
    stage_raw = context["stages"][stage]
    top = context.get("models")
    local = stage_raw.get("models") if isinstance(stage_raw, dict) else None
    if top is None and local is None:
        for key in ("model_name", "dataset"):
            if not isinstance(context.get(key), str) or not context.get(key):
                raise ConfigError(f"{key}: missing key (allowed: a non-empty string, or a models mapping)")
        return {context["model_name"]: ("model_name", {"dataset": context["dataset"]})}
    declared = _mapping("models", top) if top is not None else {}
    overridden = _mapping(f"stages.{stage}.models", local) if local is not None else {}
    entries: dict[str, tuple[str, dict[str, Any]]] = {}
    for name in [*declared, *(n for n in overridden if n not in declared)]:
        where = f"stages.{stage}.models.{name}" if name in overridden else f"models.{name}"
        parts = [_mapping(f"models.{name}", declared[name])] if name in declared else []
        if name in overridden:
            parts.append(_mapping(f"stages.{stage}.models.{name}", overridden[name]))
        settings: dict[str, Any] = {}
        for part in parts:
            settings = _merge(settings, part)
        entries[name] = (where, settings)
    if not entries:
        raise ConfigError('models: empty (allowed: at least one model, e.g. {"churn": {"dataset": "churn"}})')
    return entries


def _check_model_name(path: str, name: str, project: str, stage: str) -> None:
    if not MODEL_NAME_PATTERN.match(name):
        raise ConfigError(
            f"{path}: {name!r} is not a model name (allowed: lower-case letters, digits and single hyphens, "
            "starting and ending with a letter or digit)"
        )
    longest = f"{project}-{stage}-{name}{LONGEST_NAME_SUFFIX}"
    if len(longest) > EVENTBRIDGE_RULE_NAME_MAX:
        raise ConfigError(
            f"{path}: {name!r} is too long: {longest!r} has {len(longest)} characters (allowed: at most "
            f"{EVENTBRIDGE_RULE_NAME_MAX - len(longest) + len(name)} characters of model name in this stage, "
            f"as EventBridge rule names stop at {EVENTBRIDGE_RULE_NAME_MAX})"
        )


def load_stage_models(context: typing.Mapping[str, Any], stage: str) -> list[StageConfig]:
    """Every model of one stage, each resolved: the stage's sections as defaults under the model's own."""
    stages = context.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise ConfigError("stages: missing key (allowed: a mapping of dev, staging, prod)")
    if stage not in STAGES or stage not in stages:
        raise ConfigError(
            f"stage: {stage!r} is not a known stage (allowed: {', '.join(s for s in STAGES if s in stages)})"
        )
    if not isinstance(context.get("project"), str) or not context.get("project"):
        raise ConfigError("project: missing key (allowed: a non-empty string)")
    project = context["project"]
    entries = _model_entries(context, stage)
    stage_raw = {k: v for k, v in stages[stage].items() if k != "models"}
    sole = len(entries) == 1
    configs: list[StageConfig] = []
    for name, (where, settings) in entries.items():
        _check_model_name(where, name, project, stage)
        dataset = settings.get("dataset", name)
        if not isinstance(dataset, str) or not dataset:
            raise ConfigError(f"{where}.dataset: {dataset!r} has the wrong type (allowed: a non-empty string)")
        given = dict(stage=stage, project=project, model_name=name, dataset=dataset, sole_model=sole)
        if not configs:
            # The stage's own sections first, so a bad stage default is named where it is written.
            _build(StageConfig, stage_raw, f"stages.{stage}", **given)
        sections = {k: v for k, v in settings.items() if k != "dataset"}
        for key in sections:
            if key not in MODEL_SECTIONS:
                raise ConfigError(f"{where}.{key}: unknown key (allowed: dataset, {', '.join(MODEL_SECTIONS)})")
        configs.append(_build(StageConfig, _merge(stage_raw, sections), where, **given))
    _check_reservations_fit(configs, f"stages.{stage}.concurrency.reserved")
    names = [c.model_name for c in configs]
    for name in names:
        for other in names:
            # IAM grants and lookups scope a model by `<name>-*` (training jobs, endpoint configs, alarms).
            if other.startswith(f"{name}-"):
                raise ConfigError(
                    f"{entries[other][0]}: {other!r} starts with model {name!r} and a hyphen, so names and "
                    f"permissions scoped to {name}-* would reach it (allowed: a name no other model's starts with)"
                )
    return configs


def _check_reservations_fit(configs: list[StageConfig], path: str) -> None:
    """Each model has its own copy of every per-model function, so its reservation counts once per model; the
    shared lake's functions count once. Lambda's unreserved floor is the account's, across all of them."""
    concurrency = configs[0].concurrency
    total = sum(count * (1 if name in LAKE_FUNCTIONS else len(configs)) for name, count in concurrency.reserved.items())
    affordable = concurrency.account_quota - LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY
    if total > affordable:
        raise ConfigError(
            f"{path}: {total} reserved concurrent executions for {len(configs)} models (each model's functions "
            f"reserve their own) leave {concurrency.account_quota - total} of account_quota "
            f"{concurrency.account_quota} unreserved, below Lambda's minimum of "
            f"{LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY} (allowed: at most {affordable} in total)"
        )


def load_dataset_model(context: typing.Mapping[str, Any], stage: str, dataset: str) -> StageConfig:
    """The stage's (first declared) model trained on `dataset`: what a tool that generates that dataset acts on."""
    configs = [c for c in load_stage_models(context, stage) if c.dataset == dataset]
    if not configs:
        raise ConfigError(f"model: no model of stage {stage} reads dataset {dataset!r}")
    return configs[0]


def load_stage_config(context: typing.Mapping[str, Any], stage: str, model: str | None = None) -> StageConfig:
    """One model of one stage (a plain mapping, so tests need no CDK app); `model` may be left out when the
    stage has only one."""
    configs = load_stage_models(context, stage)
    names = [c.model_name for c in configs]
    if model is None:
        if len(configs) == 1:
            return configs[0]
        raise ConfigError(f"model: stage {stage} has several models, name one (allowed: {', '.join(names)})")
    for config in configs:
        if config.model_name == model:
            return config
    raise ConfigError(f"model: {model!r} is not a model of stage {stage} (allowed: {', '.join(names)})")


def load_all_stages(context: typing.Mapping[str, Any]) -> list[StageConfig]:
    """Every model of every stage in cdk.json."""
    stages = context.get("stages")
    if not isinstance(stages, dict):
        raise ConfigError("stages: missing key (allowed: a mapping of dev, staging, prod)")
    return [config for s in stages for config in load_stage_models(context, s)]


def read_cdk_json_context(path: str | Path = CDK_JSON) -> dict[str, Any]:
    """The context block of cdk.json, for code that runs outside `cdk synth` (the local cloud, the CLI)."""
    return dict(json.loads(Path(path).read_text())["context"])
