"""A stage with two models, synthesized from a `-c models=...` override: one shared lake, per-model stacks whose
physical names, metrics and routes never reach the other model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.shared.settings import MODEL_VARIABLE
from infra.context import CONTEXT_ENV
from mlloop.assembly import load_template, stack_names, synthesize

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("synth")]
MODELS = ("churn", "upsell")
PER_MODEL = ("training", "serving", "monitoring")
# Properties that hold a name AWS keeps unique in the account and region (per resource type).
GLOBAL_NAMES = {
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::CompositeAlarm": "AlarmName",
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::Events::Rule": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::ApiGateway::RestApi": "Name",
    "AWS::SageMaker::ModelPackageGroup": "ModelPackageGroupName",
    "AWS::WAFv2::WebACL": "Name",
}


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    models = {"churn": {"dataset": "churn"}, "upsell": {"dataset": "churn", "training": {"window_days": 200}}}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONTEXT_ENV, json.dumps({"stage": "dev", "models": models}))
        yield synthesize(tmp_path_factory.mktemp("two-models") / "cdk.out")


def template(outdir: Path, model: str, kind: str) -> dict[str, Any]:
    return load_template(f"mlloop-dev-{model}-{kind}", outdir)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def platform_functions(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The project's own functions (not CDK's custom-resource providers)."""
    found = resources(template, "AWS::Lambda::Function").values()
    return [f for f in found if str(f["Properties"].get("Handler", "")).startswith("functions.")]


def test_one_shared_lake_and_per_model_stacks(outdir: Path) -> None:
    assert sorted(stack_names(outdir)) == sorted(
        ["mlloop-dev-data-lake", "mlloop-dev-api", *(f"mlloop-dev-{m}-{kind}" for m in MODELS for kind in PER_MODEL)]
    )
    lake = load_template("mlloop-dev-data-lake", outdir)
    tables = [r["Properties"]["TableInput"]["Name"] for r in resources(lake, "AWS::Glue::Table").values()]
    assert sorted(tables) == ["churn", "churn_quarantine", "predictions"]  # two models of one dataset: one table
    for fn in platform_functions(lake):
        env = fn["Properties"]["Environment"]["Variables"]
        assert MODEL_VARIABLE not in env and env["POWERTOOLS_METRICS_NAMESPACE"] == "MLLoop/dev"


def test_no_physical_name_is_shared_by_two_models(outdir: Path) -> None:
    owners: dict[tuple[str, str], str] = {}
    for model in MODELS:
        for kind in PER_MODEL:
            for res in template(outdir, model, kind)["Resources"].values():
                prop = GLOBAL_NAMES.get(res["Type"])
                value = (res.get("Properties") or {}).get(prop) if prop else None
                if value is None:
                    continue
                key = (res["Type"], json.dumps(value, sort_keys=True))
                assert owners.setdefault(key, model) == model, f"{key} is named by both models"
                assert model in json.dumps(value), f"{key} does not carry the model's name"
    assert len(owners) > 20


@pytest.mark.parametrize(("model", "other"), [("churn", "upsell"), ("upsell", "churn")])
def test_a_models_stacks_never_reference_the_other_model(outdir: Path, model: str, other: str) -> None:
    for kind in PER_MODEL:
        text = json.dumps(template(outdir, model, kind))
        # By its names and namespace (both models read the churn dataset, so the word itself may appear).
        for mention in (f"mlloop-dev-{other}", f"MLLoop/dev/{other}", f"/models/{other}"):
            assert mention not in text, f"mlloop-dev-{model}-{kind} mentions {mention}"
        for fn in platform_functions(template(outdir, model, kind)):
            env = fn["Properties"]["Environment"]["Variables"]
            assert env[MODEL_VARIABLE] == model
            assert env["POWERTOOLS_METRICS_NAMESPACE"] == f"MLLoop/dev/{model}"


@pytest.mark.parametrize("model", MODELS)
def test_each_models_alarms_watch_its_own_namespace_and_endpoint(outdir: Path, model: str) -> None:
    seen = 0
    for kind in ("serving", "monitoring"):
        for alarm in resources(template(outdir, model, kind), "AWS::CloudWatch::Alarm").values():
            props = alarm["Properties"]
            metrics = (
                [props]
                if "MetricName" in props
                else [m.get("MetricStat", {}).get("Metric", {}) for m in props["Metrics"]]
            )
            for metric in metrics:
                namespace = metric.get("Namespace")
                if namespace is None:
                    continue
                seen += 1
                dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                if namespace == "MLLoop/dev":  # the shared lake's ingestion, by the model's dataset
                    assert dimensions == {"service": "mlloop-ingest", "Dataset": "churn"}
                elif namespace.startswith("MLLoop/"):
                    assert namespace == f"MLLoop/dev/{model}"
                for name in ("EndpointName", "endpoint"):
                    if name in dimensions:
                        assert dimensions[name] == f"mlloop-dev-{model}"
    assert seen > 10


def test_one_api_routes_each_model_to_its_own_front_door(outdir: Path) -> None:
    api = load_template("mlloop-dev-api", outdir)
    (rest_api,) = resources(api, "AWS::ApiGateway::RestApi").values()
    assert rest_api["Properties"]["Name"] == "mlloop-dev-serving"
    methods = resources(api, "AWS::ApiGateway::Method")
    paths = resources(api, "AWS::ApiGateway::Resource")

    def path_of(resource_id: str) -> str:
        parent = paths[resource_id]["Properties"]["ParentId"]
        part = paths[resource_id]["Properties"]["PathPart"]
        return f"{path_of(parent['Ref'])}/{part}" if "Ref" in parent else f"/{part}"

    routed: dict[str, str] = {}
    for method in methods.values():
        props = method["Properties"]
        uri = json.dumps(props["Integration"]["Uri"])
        (owner,) = [m for m in MODELS if f"mlloop-dev-{m}-serving:" in uri]
        routed[f"{props['HttpMethod']} {path_of(props['ResourceId']['Ref'])}"] = owner
    assert routed == {
        f"{verb} /models/{model}/{path}": model
        for model in MODELS
        for verb, path in (("POST", "predict"), ("GET", "health"), ("GET", "model"))
    }
    # Each model's predict method is throttled by its own front-door settings.
    (stage,) = resources(api, "AWS::ApiGateway::Stage").values()
    settings = {s["ResourcePath"]: s for s in stage["Properties"]["MethodSettings"]}
    for model in MODELS:
        assert settings[f"/~1models~1{model}~1predict"]["HttpMethod"] == "POST"
    # The invoke permissions are the API's, so no model's serving stack depends on the API stack.
    for model in MODELS:
        assert not resources(template(outdir, model, "serving"), "AWS::ApiGateway::RestApi")
    permissions = resources(api, "AWS::Lambda::Permission")
    assert len(permissions) == 3 * len(MODELS)
