"""Several models per stage: a models mapping over the stage's sections, one resolution, clear errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.config import ConfigError, load_all_stages, load_stage_config, load_stage_models, read_cdk_json_context
from infra.context import CONTEXT_ENV, apply_context_overrides, parse_context_arguments
from mlloop.cli import main as cli_main


@pytest.fixture
def context() -> dict:
    return read_cdk_json_context()


def two_models(context: dict) -> dict:
    both = copy.deepcopy(context)
    both["models"] = {
        "churn": {"dataset": "churn"},
        "upsell": {"dataset": "churn", "training": {"window_days": 200, "decision": {"cost_false_negative": 2}}},
    }
    # Each model's front door reserves its own concurrency: prod's 600 fits one model on a 1,000 quota, not three.
    both["stages"]["prod"]["concurrency"]["reserved"]["frontdoor"] = 250
    return both


def test_the_single_model_form_is_one_model_with_the_names_it_always_had(context: dict) -> None:
    (dev,) = load_stage_models(context, "dev")
    assert (dev.model_name, dev.dataset, dev.sole_model) == ("churn", "churn", True)
    assert (dev.prefix, dev.stage_prefix) == ("mlloop-dev", "mlloop-dev")
    assert (dev.endpoint_name, dev.model_package_group) == ("mlloop-dev-churn", "mlloop-dev-churn")
    assert dev.metrics_namespace == dev.stage_metrics_namespace == "MLLoop/dev"
    assert load_stage_config(context, "dev") == load_stage_config(context, "dev", "churn")


def test_a_model_entry_deep_merges_over_the_stage_sections(context: dict) -> None:
    churn, upsell = load_stage_models(two_models(context), "dev")
    stage = context["stages"]["dev"]
    assert upsell.training.window_days == 200
    assert upsell.training.decision.cost_false_negative == 2
    assert upsell.training.decision.cost_false_positive == stage["training"]["decision"]["cost_false_positive"]
    assert upsell.training.instance_type == stage["training"]["instance_type"]
    assert churn.training.window_days == stage["training"]["window_days"]
    # Shared by the stage's models.
    assert upsell.lake == churn.lake and upsell.concurrency == churn.concurrency and upsell.approval == churn.approval


def test_beside_other_models_every_per_model_name_carries_the_model(context: dict) -> None:
    churn, upsell = load_stage_models(two_models(context), "dev")
    assert (churn.prefix, upsell.prefix) == ("mlloop-dev-churn", "mlloop-dev-upsell")
    assert churn.stage_prefix == upsell.stage_prefix == "mlloop-dev"
    assert (churn.endpoint_name, upsell.endpoint_name) == ("mlloop-dev-churn", "mlloop-dev-upsell")
    assert (churn.metrics_namespace, upsell.metrics_namespace) == ("MLLoop/dev/churn", "MLLoop/dev/upsell")
    assert churn.stage_metrics_namespace == "MLLoop/dev"
    assert churn.lake_view().prefix == "mlloop-dev"


def test_a_stage_may_add_a_model_or_override_one_in_that_stage_only(context: dict) -> None:
    both = two_models(context)
    both["stages"]["prod"]["models"] = {"upsell": {"gates": {"promotion": {"min_primary": 0.9}}}, "extra": {}}
    prod = {c.model_name: c for c in load_stage_models(both, "prod")}
    assert list(prod) == ["churn", "upsell", "extra"]
    assert prod["upsell"].gates.promotion.min_primary == 0.9
    assert prod["upsell"].training.window_days == 200  # the top-level entry still applies
    assert prod["extra"].dataset == "extra"  # a model's dataset defaults to its name
    dev = {c.model_name: c for c in load_stage_models(both, "dev")}
    assert list(dev) == ["churn", "upsell"] and dev["upsell"].gates.promotion.min_primary != 0.9


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"training": {"window_dayz": 3}}, "models.upsell.training.window_dayz: unknown key (allowed: "),
        ({"training": {"window_days": 0}}, "models.upsell.training.window_days: 0 is out of range"),
        ({"gates": {"promotion": {"max_ece": "x"}}}, "models.upsell.gates.promotion.max_ece: 'x' has the wrong type"),
        ({"lake": {}}, "models.upsell.lake: unknown key (allowed: dataset, training, endpoint, deployment"),
        ({"dataset": 3}, "models.upsell.dataset: 3 has the wrong type"),
        ({"endpoint": {"instance_count": 1}}, "models.upsell.deployment.canary_percent: 50 is not a whole number"),
    ],
)
def test_a_bad_model_setting_is_one_line_naming_its_full_path(context: dict, entry: dict, expected: str) -> None:
    bad = two_models(context)
    bad["models"]["upsell"] = entry
    with pytest.raises(ConfigError) as err:
        load_stage_models(bad, "dev")
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)


def test_a_bad_stage_default_is_named_where_it_is_written(context: dict) -> None:
    bad = two_models(context)
    bad["stages"]["dev"]["training"]["window_days"] = 0
    with pytest.raises(ConfigError, match=r"^stages\.dev\.training\.window_days: 0 is out of range"):
        load_stage_models(bad, "dev")


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["churn", "Upsell"], r"models\.Upsell: 'Upsell' is not a model name"),
        (["churn", "up_sell"], r"models\.up_sell: 'up_sell' is not a model name"),
        (["churn", "churn-eu"], r"models\.churn-eu: 'churn-eu' starts with model 'churn' and a hyphen"),
        (
            ["churn", "x" * 40],
            r"models\.x+: 'x+' is too long: 'mlloop-dev-x+-deploy-on-approval' has 70 characters \(allowed: at most 34",
        ),
    ],
)
def test_model_names_that_would_collide_or_break_aws_limits_are_refused(
    context: dict, names: list[str], expected: str
) -> None:
    bad = copy.deepcopy(context)
    bad["models"] = {name: {"dataset": "churn"} for name in names}
    with pytest.raises(ConfigError, match=expected):
        load_stage_models(bad, "dev")


def test_a_stage_with_several_models_asks_which_one(context: dict) -> None:
    both = two_models(context)
    with pytest.raises(
        ConfigError, match=r"^model: stage dev has several models, name one \(allowed: churn, upsell\)$"
    ):
        load_stage_config(both, "dev")
    with pytest.raises(ConfigError, match=r"^model: 'fraud' is not a model of stage dev \(allowed: churn, upsell\)$"):
        load_stage_config(both, "dev", "fraud")
    assert load_stage_config(both, "dev", "upsell").training.window_days == 200
    assert len(load_all_stages(both)) == 6


def test_a_dotted_override_reaches_one_models_settings(context: dict) -> None:
    both = two_models(context)
    overrides = parse_context_arguments(
        ["models.upsell.gates.promotion.min_primary=0.8", "stages.prod.models.churn.endpoint.instance_count=4"]
    )
    resolved = apply_context_overrides(both, overrides)
    assert load_stage_config(resolved, "dev", "upsell").gates.promotion.min_primary == 0.8
    assert load_stage_config(resolved, "dev", "churn").gates.promotion.min_primary != 0.8
    assert load_stage_config(resolved, "prod", "churn").endpoint.instance_count == 4
    assert load_stage_config(resolved, "dev", "churn").endpoint.instance_count != 4


def test_a_dotted_override_reaches_the_single_model_shorthand_and_refuses_an_unknown_model(context: dict) -> None:
    resolved = apply_context_overrides(context, {"models.churn.training.window_days": 30})
    dev = load_stage_config(resolved, "dev")
    assert (dev.model_name, dev.dataset, dev.sole_model, dev.training.window_days) == ("churn", "churn", True, 30)
    with pytest.raises(
        ConfigError, match=r"-c models\.chrun\.training\.window_days: chrun is not a model \(models: churn\)"
    ):
        apply_context_overrides(context, {"models.chrun.training.window_days": 30})
    with pytest.raises(ConfigError, match=r"^models\.churn\.training\.window_dayz: unknown key"):
        load_stage_config(apply_context_overrides(context, {"models.churn.training.window_dayz": 30}), "dev")


def test_a_models_mapping_given_as_json_text_is_read(context: dict) -> None:
    resolved = apply_context_overrides(
        context, parse_context_arguments(['models={"a": {"dataset": "churn"}, "b": {}}'])
    )
    assert [c.model_name for c in load_stage_models(resolved, "dev")] == ["a", "b"]
    as_text = copy.deepcopy(context)
    as_text["models"] = '{"a": {"dataset": "churn"}}'
    assert load_stage_config(as_text, "dev").model_name == "a"


def test_the_cli_acts_on_the_model_it_is_given_with_that_models_override(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(CONTEXT_ENV, "")
    monkeypatch.delenv("MLLOOP_MODEL", raising=False)
    seen: dict[str, Any] = {}

    def capture(platform: Any, **_: Any) -> dict[str, Any]:
        seen["config"] = platform.config
        return {}

    monkeypatch.setattr(cli_main.status, "stage_status", capture)
    monkeypatch.setattr(cli_main.Renderer, "status", lambda self, result: None)
    models = ["-c", 'models={"churn": {}, "upsell": {"dataset": "churn"}}']
    override = ["-c", "models.upsell.endpoint.instance_count=4"]

    assert cli_main.main(["status", "--stage", "dev", *models, *override, "--model", "upsell", "--json"]) == 0
    assert (seen["config"].model_name, seen["config"].endpoint.instance_count) == ("upsell", 4)
    assert seen["config"].prefix == "mlloop-dev-upsell"

    capsys.readouterr()
    assert cli_main.main(["status", "--stage", "dev", *models, "--json"]) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "stage dev has several models, name one (allowed: churn, upsell)" in said


def test_reservations_count_once_per_model_and_the_shared_lakes_once(context: dict) -> None:
    both = two_models(context)
    reserved = both["stages"]["prod"]["concurrency"]["reserved"]
    # prod reserves 600 for the front door: two front doors cannot both have it on a 1,000 quota.
    reserved["frontdoor"] = 600
    message = r"^stages\.prod\.concurrency\.reserved: 1274 reserved concurrent executions for 2 models"
    with pytest.raises(ConfigError, match=message):
        load_stage_models(both, "prod")
    reserved["frontdoor"] = 300
    assert len(load_stage_models(both, "prod")) == 2  # 2 x (300 + 17) + the lake's 40 once
