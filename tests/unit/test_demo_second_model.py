"""The demo's second model is added by the project's own override: dev gets it, the other stages and cdk.json don't."""

from __future__ import annotations

from infra.config import load_stage_models, read_cdk_json_context
from infra.context import apply_context_overrides, parse_context_arguments
from mlloop.demo.second_model import SECOND_MODEL, model_names, side_by_side_argument


def test_the_override_adds_the_second_model_to_one_stage_beside_the_apps_model() -> None:
    context = read_cdk_json_context()
    argument = side_by_side_argument(context, "dev")
    assert argument is not None

    resolved = apply_context_overrides(context, parse_context_arguments([argument]))

    dev = {c.model_name: c for c in load_stage_models(resolved, "dev")}
    assert sorted(dev) == sorted([context["model_name"], SECOND_MODEL])
    assert dev[SECOND_MODEL].dataset == "upsell" and dev[context["model_name"]].dataset == context["dataset"]
    assert [c.model_name for c in load_stage_models(resolved, "staging")] == [context["model_name"]]
    assert side_by_side_argument(resolved, "dev") is None, "a stage that has the model is left as it is"


def test_beside_another_model_each_models_names_carry_its_name_and_the_api_is_the_stages() -> None:
    context = read_cdk_json_context()
    argument = side_by_side_argument(context, "dev")
    assert argument is not None
    resolved = apply_context_overrides(context, parse_context_arguments([argument]))
    (alone,) = load_stage_models(context, "dev")

    names = model_names({c.model_name: c for c in load_stage_models(resolved, "dev")}[SECOND_MODEL])

    assert names["route"] == f"/models/{SECOND_MODEL}/predict" and names["api_stack"] == "mlloop-dev-api"
    assert (
        names["prefix"] == f"mlloop-dev-{SECOND_MODEL}" and names["metrics_namespace"] == f"MLLoop/dev/{SECOND_MODEL}"
    )
    assert (model_names(alone)["route"], model_names(alone)["api_stack"]) == ("/predict", "mlloop-dev-serving")
