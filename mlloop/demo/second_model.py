"""The demo's second model: `upsell`, on its own generated dataset, served beside `churn` in the same stage.

The demo gives its stage both models through the project's own override (`-c stages.<stage>.models=...`,
docs/models.md), so cdk.json stays single-model. This phase follows the second model's whole path through what
the stage deploys (the shared lake's raw bucket, the model's own training workflow, registry group, deploy and
endpoint, its route on the stage's API), then checks what a person would: each model's route answers from its own
endpoint, under its own contract, and each model's alarms and metrics are its own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from functions.shared.contract import load_contract
from infra.config import StageConfig, load_stage_models
from infra.context import decode_value
from mlloop.datagen import generate_churn, generate_upsell
from mlloop.demo.errors import StoryError
from mlloop.demo.traffic import Traffic, feature_records

if TYPE_CHECKING:
    from mlloop.demo.story import Story

SECOND_MODEL = "upsell"
SECOND_DATASET = "upsell"
PHASE = "second_model"
TITLE = "A second model side by side: upsell ingests, trains, deploys and serves on its own route"
# Enough rows for dev's data gate (min_rows 1000 after the time split) and promotion gate, few enough to stay quick.
ROWS = 3000
REQUESTS = 10


def side_by_side_argument(context: Mapping[str, Any], stage: str) -> str | None:
    """The `-c` argument that adds the second model to `stage` beside the models it already has (None if it has
    it): a `stages.<stage>.models` override, so the other stages keep their models and cdk.json is untouched."""
    if SECOND_MODEL in [c.model_name for c in load_stage_models(context, stage)]:
        return None
    stage_models = decode_value(context["stages"][stage].get("models"))
    if isinstance(stage_models, dict):
        models = dict(stage_models)
    elif context.get("models") is not None:
        models = {}  # the top-level models stay declared; the stage adds the second one
    else:
        models = {context["model_name"]: {"dataset": context["dataset"]}}
    models[SECOND_MODEL] = {"dataset": SECOND_DATASET}
    return f"stages.{stage}.models={json.dumps(models)}"


def second_config(models: Mapping[str, StageConfig]) -> StageConfig:
    if SECOND_MODEL not in models:
        raise ValueError(f"the demo's stage has no {SECOND_MODEL} model (models: {', '.join(models)})")
    return models[SECOND_MODEL]


def model_names(config: StageConfig) -> dict[str, str]:
    """Where a person finds one model's resources, as the resolved config names them."""
    return {
        "dataset": config.dataset,
        "prefix": config.prefix,
        "endpoint": config.endpoint_name,
        "model_package_group": config.model_package_group,
        "route": f"{config.api_path_prefix}/predict",
        "api_stack": config.api_stack_name,
        "metrics_namespace": config.metrics_namespace,
    }


def serve_side_by_side(story: Story) -> None:
    """Ingest a generated upsell file, let its training workflow register v1 and its deploy serve it, then call
    both models' routes and compare each answer with what that model's own endpoint says."""
    assert story.cloud is not None and story.traffic is not None
    first, second = story.config, second_config(story.models)
    facts: dict[str, Any] = {"model": second.model_name, "names": model_names(second)}
    story.record["second_model"] = facts
    contract = load_contract(second.dataset)

    frame = generate_upsell(ROWS, seed=story.options.seed + 10, months=story.options.months)
    key = f"{second.dataset}/demo-{datetime.now(UTC):%Y%m%dT%H%M%S}.csv"
    raw_bucket = story._bucket("RawBucket")
    story.client("s3").put_object(Bucket=raw_bucket, Key=key, Body=frame.to_csv(index=False).encode())
    report = story._ingest_report(key, timeout=600)
    facts["ingest"] = {"raw_key": key, "rows": len(frame), "rows_curated": report["rows_curated"]}
    story.fact(
        f"{len(frame)} upsell rows into the shared lake (s3://{raw_bucket}/{key}): {report['rows_curated']} curated"
    )

    # dev retrains on new data: the upsell file starts the models of its dataset, upsell's workflow only.
    execution = story._new_execution("training", set(), timeout=300, config=second)
    run = story._training_run(execution, f"{second.model_name} v1")
    package = story._package(run["package_arn"])
    metrics = run["evaluation"].get("metrics", {})
    facts["package"] = {"arn": package["arn"], "version": package["version"], "approval": package["approval"]}
    facts["training"] = {
        "name": run["name"],
        "trigger": run["trigger"].get("kind"),
        "machine": story._machine("training", second),
    }
    story.fact(
        f"{second.prefix}-training ran {run['name']} (trigger: {run['trigger'].get('kind')}): "
        f"v{package['version']} in {second.model_package_group}, {package['approval']}, "
        f"test AUC {metrics.get('roc_auc', 0):.3f}"
    )

    deploy_execution = story._new_execution("deploy-model", set(), timeout=300, config=second)
    deploy = {**story._wait_for(deploy_execution["executionArn"], timeout=600), "label": f"{second.model_name} v1"}
    story.record["deploys"].append(deploy)
    facts["deploy"] = {"name": deploy["name"], "status": deploy["status"]}
    if deploy["status"] != "SUCCEEDED":
        raise StoryError(f"deploy of {second.model_name} v1 ended {deploy['status']}: {deploy['cause']}")
    endpoint = story.client("sagemaker").describe_endpoint(EndpointName=second.endpoint_name)
    facts["endpoint"] = {"name": second.endpoint_name, "status": endpoint["EndpointStatus"]}
    story.fact(
        f"{second.prefix}-deploy-model {deploy['status']}: endpoint {second.endpoint_name} {endpoint['EndpointStatus']}"
    )

    second_traffic = Traffic(
        api_base=story.record["api_url"] + second.api_path_prefix,
        runtime=story.client("sagemaker-runtime"),
        endpoint_name=second.endpoint_name,
        started=story.started,
    )
    seed = story.options.seed + 11
    callers = {
        first.model_name: (
            first,
            story.traffic,
            feature_records(generate_churn(REQUESTS, seed=seed, months=1), story.contract),
        ),
        second.model_name: (
            second,
            second_traffic,
            feature_records(generate_upsell(REQUESTS, seed=seed, months=1), contract),
        ),
    }
    routes = {}
    for name, (config, traffic, records) in callers.items():
        for record in records:
            traffic.predict(PHASE, [record])
        routes[name] = _route_check(story, config, traffic, records)
    facts["routes"] = routes
    facts["answers"] = [a.to_dict() for a in second_traffic.answers]
    for route in routes.values():
        story.fact(
            f"POST {route['route']}: {route['answered']}/{REQUESTS} answered by {route['model_versions']}; "
            f"a batch matches {route['endpoint']}'s own answer: {route['same_as_own_endpoint']}; "
            f"GET /model names {route['described_endpoint']} ({route['contract']} contract)"
        )
    # Each route validates against its own model's contract: an upsell row is not a churn request.
    status, refused = story.traffic.post("/predict", callers[second.model_name][2][0])
    facts["cross_contract"] = {"route": routes[first.model_name]["route"], "status": status}
    story.fact(
        f"an upsell row on {routes[first.model_name]['route']} is refused with {status}: {json.dumps(refused)[:100]}"
    )

    facts["alarms"] = {config.model_name: _alarms(story, config) for config in (first, second)}
    facts["metrics"] = {config.model_name: _metric_names(story, config.metrics_namespace) for config in (first, second)}
    for config in (first, second):
        alarms = facts["alarms"][config.model_name]
        story.fact(
            f"{config.model_name}: {len(alarms)} alarms named {config.prefix}-…, "
            f"{len(facts['metrics'][config.model_name])} metrics in {config.metrics_namespace}"
        )


def _route_check(
    story: Story, config: StageConfig, traffic: Traffic, records: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """One batch through the model's route and straight to its endpoint: the same probabilities mean the route
    is served by that endpoint (one variant takes all traffic after a deploy, so both reach the same model)."""
    answers = traffic.of_phase(PHASE)
    status, via_api = traffic.post("/predict", {"instances": list(records)})
    direct = story.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=config.endpoint_name,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"instances": list(records)}),
    )
    from_endpoint = json.loads(direct["Body"].read())
    _status, described = traffic.get("/model")
    return {
        "route": f"{config.api_path_prefix}/predict",
        "endpoint": config.endpoint_name,
        "sent": len(answers),
        "answered": sum(a.answered and not a.fallback for a in answers),
        "model_versions": sorted({a.model_version for a in answers if a.answered}),
        "batch_status": status,
        "same_as_own_endpoint": status == 200
        and _probabilities(via_api) == _probabilities(from_endpoint)
        and via_api.get("model_version") == from_endpoint.get("model_version"),
        "described_endpoint": described.get("endpoint_name"),
        "contract": (described.get("contract") or {}).get("dataset"),
    }


def _probabilities(answer: Mapping[str, Any]) -> list[float]:
    return [round(float(p["probability"]), 12) for p in answer.get("predictions", [])]


def _alarms(story: Story, config: StageConfig) -> dict[str, str]:
    described = story.client("cloudwatch").describe_alarms(
        AlarmNamePrefix=f"{config.prefix}-", AlarmTypes=["MetricAlarm", "CompositeAlarm"], MaxRecords=100
    )
    alarms = [*described.get("MetricAlarms", []), *described.get("CompositeAlarms", [])]
    return {a["AlarmName"]: a["StateValue"] for a in alarms}


def _metric_names(story: Story, namespace: str) -> list[str]:
    pages = story.client("cloudwatch").get_paginator("list_metrics").paginate(Namespace=namespace)
    return sorted({m["MetricName"] for page in pages for m in page["Metrics"]})
