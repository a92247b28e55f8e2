"""Two models in one stage on the embedded AWS: one shared lake, each model's own stacks; an approval in either
group deploys that model's endpoint only, each model's front-door route answers from its own endpoint, its alarms
watch only its own endpoint and metrics, and the CLI asks which model when a stage has several. One API serves
the stage, each model under /models/<model>/.

The stage is `staging` of another project (`twomodels`), synthesized with a two-model `-c models=...` override
into its own assembly, so it shares the local cloud with the dev and staging stages other tests deploy without any
name in common.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from infra.config import load_stage_models, read_cdk_json_context
from infra.context import CONTEXT_ENV, apply_context_overrides
from infra.stacks.monitoring import alarm_names
from mlloop.assembly import synthesize
from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment
from tests.integration.serving_support import Api, register_package
from tests.unit.frontdoor_support import VALID_RECORD

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]
STAGE = "staging"
# Each model's package scores tenure / its scale: an answer says which endpoint made it.
SCALES = {"churn": 240.0, "upsell": 120.0}
PROJECT = "twomodels"
PREFIX = f"{PROJECT}-{STAGE}"
OVERRIDES = {
    "project": PROJECT,
    "stage": STAGE,
    "models": {"churn": {"dataset": "churn"}, "upsell": {"dataset": "churn"}},
}


@pytest.fixture(scope="module")
def two_models(local_cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONTEXT_ENV, json.dumps(OVERRIDES))
        out = synthesize(tmp_path_factory.mktemp("two-models") / "cdk.out")
        yield local_cloud.deploy(STAGE, cdk_out=out)


def deploy_machine(cloud: LocalCloud, model: str) -> str:
    sfn = cloud.client("stepfunctions")
    name = f"{PREFIX}-{model}-deploy-model"
    (machine,) = [m for m in sfn.list_state_machines()["stateMachines"] if m["name"] == name]
    return str(machine["stateMachineArn"])


@pytest.fixture(scope="module")
def deployed(local_cloud: LocalCloud, two_models: Deployment) -> dict[str, str]:
    """Approve one package per model; returns model -> its package ARN, after both deploys succeeded."""
    sfn = local_cloud.client("stepfunctions")
    arns = {
        model: register_package(
            local_cloud, broken=False, group=f"{PREFIX}-{model}", stage=STAGE, project=PROJECT, scale=SCALES[model]
        )
        for model in SCALES
    }
    local_cloud.wait_idle()
    for model in SCALES:
        (execution,) = sfn.list_executions(stateMachineArn=deploy_machine(local_cloud, model))["executions"]
        finished = local_cloud.wait_for_execution(execution["executionArn"], timeout=240)
        assert finished["status"] == "SUCCEEDED", (model, finished)
        assert arns[model] in finished["input"]  # the model's own deploy took its own package
    return arns


def stage_api(cloud: LocalCloud, deployment: Deployment) -> Api:
    """The stage's one API, which routes every model."""
    (rest_api,) = deployment.of_type("AWS::ApiGateway::RestApi")
    assert rest_api.stack == f"{PREFIX}-api"
    return Api(cloud.api_url(rest_api.physical_id, STAGE))


def test_the_stage_has_one_lake_and_each_model_its_own_stacks(two_models: Deployment) -> None:
    assert sorted(two_models.stack_names) == sorted(
        [f"{PREFIX}-data-lake", f"{PREFIX}-api"]
        + [f"{PREFIX}-{m}-{kind}" for m in SCALES for kind in ("training", "serving", "monitoring")]
    )


@pytest.mark.parametrize("model", sorted(SCALES))
def test_each_models_route_answers_from_its_own_endpoint(
    local_cloud: LocalCloud, two_models: Deployment, deployed: dict[str, str], model: str
) -> None:
    api = stage_api(local_cloud, two_models)
    status, answer = api.call("POST", f"/models/{model}/predict", {"instances": [VALID_RECORD]})
    assert status == 200, answer
    assert answer["fallback"] is False
    assert answer["predictions"][0]["probability"] == pytest.approx(VALID_RECORD["tenure_months"] / SCALES[model])
    assert answer["model_version"] == "v" + deployed[model].rsplit("/", 1)[-1]
    status, described = api.call("GET", f"/models/{model}/model")
    assert status == 200 and described["contract"]["dataset"] == "churn"
    status, _ = api.call("POST", "/predict", {"instances": [VALID_RECORD]})
    assert status != 200  # beside other models there is no bare /predict
    endpoint = local_cloud.client("sagemaker").describe_endpoint(EndpointName=f"{PREFIX}-{model}")
    assert endpoint["EndpointStatus"] == "InService"


@pytest.mark.parametrize(("model", "other"), [("churn", "upsell"), ("upsell", "churn")])
def test_a_models_alarms_watch_only_its_own_endpoint_and_metrics(
    local_cloud: LocalCloud, two_models: Deployment, model: str, other: str
) -> None:
    cloudwatch = local_cloud.client("cloudwatch")
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=f"{PREFIX}-{model}-", AlarmTypes=["MetricAlarm"])
    found = alarms["MetricAlarms"]
    assert len(found) > 10
    text = json.dumps(found, default=str)
    assert f"{PREFIX}-{other}" not in text and f"MLLoop/{STAGE}/{other}" not in text
    assert f"MLLoop/{STAGE}/{model}" in text and f"{PREFIX}-{model}" in text


def run_cli(cloud: LocalCloud, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cloud.client_environment(), CONTEXT_ENV: json.dumps(OVERRIDES)}
    return subprocess.run(
        [sys.executable, "-m", "mlloop.cli.main", *args, "--stage", STAGE, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_cli_asks_which_model_and_acts_on_the_one_named(
    local_cloud: LocalCloud, two_models: Deployment, deployed: dict[str, str]
) -> None:
    unnamed = run_cli(local_cloud, "status")
    assert unnamed.returncode == 2
    said = " ".join(unnamed.stderr.split())  # the renderer wraps long lines
    assert "stage staging has several models, name one (allowed: churn, upsell)" in said
    named = run_cli(local_cloud, "status", "--model", "upsell")
    assert named.returncode == 0, named.stderr
    status: dict[str, Any] = json.loads(named.stdout)
    text = json.dumps(status)
    assert f"{PREFIX}-upsell" in text and f"{PREFIX}-churn" not in text


def test_drift_in_one_model_alarms_that_model_only(local_cloud: LocalCloud, two_models: Deployment) -> None:
    # Given each model's drift alarm, as its monitoring stack deployed it
    context = apply_context_overrides(read_cdk_json_context(), OVERRIDES)
    names = {config.model_name: alarm_names(config)["drift"] for config in load_stage_models(context, STAGE)}
    cloudwatch = local_cloud.client("cloudwatch")
    (upsell_alarm,) = cloudwatch.describe_alarms(AlarmNames=[names["upsell"]])["MetricAlarms"]

    # When upsell's drift detector publishes a drifted share over the threshold (the metric its alarm watches)
    cloudwatch.put_metric_data(
        Namespace=upsell_alarm["Namespace"],
        MetricData=[
            {
                "MetricName": upsell_alarm["MetricName"],
                "Dimensions": upsell_alarm["Dimensions"],
                "Value": upsell_alarm["Threshold"] + 0.5,
            }
        ],
    )
    local_cloud.evaluate_alarms(sorted(names.values()))

    # Then upsell's drift alarm fires and churn's does not
    states = {
        alarm["AlarmName"]: alarm["StateValue"]
        for alarm in cloudwatch.describe_alarms(AlarmNames=sorted(names.values()))["MetricAlarms"]
    }
    assert states[names["upsell"]] == "ALARM", states
    assert states[names["churn"]] != "ALARM", states
