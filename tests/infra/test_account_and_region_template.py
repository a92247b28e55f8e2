"""What the templates take from the account and region they deploy to: nothing regional is baked at synth
(environment-agnostic stacks deploy to the CLI profile's region), and no function reserves concurrency a new
account cannot give."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import load_stage_config, read_cdk_json_context
from mlloop.assembly import load_template, synthesize
from mlloop.localcloud.intrinsics import Resolver

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("synth")]
STAGES = ("dev", "staging", "prod")
KINDS = ("data-lake", "training", "serving", "monitoring")


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    synthesize()
    return {f"{stage}-{kind}": load_template(f"mlloop-{stage}-{kind}") for stage in STAGES for kind in KINDS}


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        str(r["Properties"]["Handler"]).split(".")[1]: r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function" and str(r["Properties"].get("Handler", "")).startswith("functions.")
    }


class _AnyExport(dict[str, str]):
    """Every other stack's export, as a placeholder named after it."""

    def __contains__(self, name: object) -> bool:
        return True

    def __missing__(self, name: str) -> str:
        return f"<{name}>"


def _resolve(template: dict[str, Any], value: Any, region: str) -> Any:
    """`value` as CloudFormation resolves it in `region` (mappings and pseudo parameters only)."""
    resolver = Resolver(
        pseudo={
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::AccountId": "111122223333",
        },
        parameters={},
        conditions={},
        mappings=template.get("Mappings", {}),
        exports=_AnyExport(),
        ref=lambda name: name,
        get_att=lambda name, attribute: f"{name}.{attribute}",
    )
    return resolver.resolve(value)


@pytest.mark.parametrize("stack", [f"{s}-{k}" for s in STAGES for k in KINDS])
def test_nothing_regional_is_baked_for_cdk_jsons_region(templates: dict[str, dict[str, Any]], stack: str) -> None:
    body = json.dumps({k: v for k, v in templates[stack].items() if k != "Mappings"})
    # cdk.json's region, the us-east-1 registry of the scikit-learn image and the us-east-1 pandas layer account.
    for baked in ("us-east-1", "683313688378", "336392948345"):
        assert baked not in body, f"{stack} bakes {baked}"


@pytest.mark.parametrize(
    ("region", "registry", "pandas_layer"),
    [
        ("us-east-1", "683313688378", "arn:aws:lambda:us-east-1:336392948345:layer:AWSSDKPandas-Python311:22"),
        ("eu-west-1", "141502667606", "arn:aws:lambda:eu-west-1:336392948345:layer:AWSSDKPandas-Python311:22"),
        ("ap-east-1", "651117190479", "arn:aws:lambda:ap-east-1:839552336658:layer:AWSSDKPandas-Python311:24"),
    ],
)
def test_images_layers_and_hyperparameters_resolve_for_the_region_deployed_to(
    templates: dict[str, dict[str, Any]], region: str, registry: str, pandas_layer: str
) -> None:
    training = templates["dev-training"]
    machine = next(r for r in training["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine")
    definition = json.loads(_resolve(training, machine["Properties"]["DefinitionString"], region))
    job = next(s["Parameters"] for s in definition["States"].values() if "createTrainingJob" in str(s.get("Resource")))
    image = f"{registry}.dkr.ecr.{region}.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
    assert job["AlgorithmSpecification"]["TrainingImage"] == image
    assert job["HyperParameters"]["sagemaker_region"] == region
    register = _functions(training)["register_model"]
    assert _resolve(training, register["Environment"]["Variables"]["INFERENCE_IMAGE_URI"], region).startswith(
        f"{registry}.dkr.ecr.{region}."
    )
    drift = _functions(templates["dev-monitoring"])["drift_detector"]
    layers = [_resolve(templates["dev-monitoring"], layer, region) for layer in drift["Layers"]]
    assert pandas_layer in layers
    assert f"arn:aws:lambda:{region}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:18" in layers
    pulls = json.dumps(
        [
            _resolve(training, r["Properties"]["PolicyDocument"], region)
            for r in training["Resources"].values()
            if r["Type"] == "AWS::IAM::Policy"
        ]
    )
    assert f"arn:aws:ecr:{region}:{registry}:repository/sagemaker-scikit-learn" in pulls


def test_a_region_without_the_image_or_the_layers_has_no_entry_and_fails_to_deploy(
    templates: dict[str, dict[str, Any]],
) -> None:
    (mapping,) = templates["dev-training"]["Mappings"].values()
    assert "us-east-1" in mapping and "eu-west-1" in mapping
    assert "cn-north-1" not in mapping, "the Powertools layer is not published in China"


def test_no_function_reserves_concurrency_a_new_account_cannot_give(templates: dict[str, dict[str, Any]]) -> None:
    context = read_cdk_json_context()
    for stage in STAGES:
        config = load_stage_config(context, stage).concurrency
        reserved = {
            name: props.get("ReservedConcurrentExecutions")
            for kind in KINDS
            for name, props in _functions(templates[f"{stage}-{kind}"]).items()
        }
        assert {n: r for n, r in reserved.items() if r is not None} == config.reserved, stage
        assert config.account_quota - sum(config.reserved.values()) >= 10
    assert all(
        props.get("ReservedConcurrentExecutions") is None
        for kind in KINDS
        for props in _functions(templates[f"dev-{kind}"]).values()
    ), "a new account (quota 10) refuses any reservation"
