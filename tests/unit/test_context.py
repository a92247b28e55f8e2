"""One resolution of the configuration: `-c key=value` reaches synth, the CLI, the demo and the local cloud alike."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from infra.config import ConfigError, load_stage_config, load_stage_models, read_cdk_json_context
from infra.context import (
    CONTEXT_ENV,
    apply_context_overrides,
    effective_context,
    parse_context_arguments,
    stage_configs_from_app,
    use_context_arguments,
)
from mlloop import assembly
from mlloop.cli import main as cli_main


@pytest.fixture(autouse=True)
def no_published_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    # setenv (not delenv) so that what a test publishes is undone afterwards even when the variable was absent.
    monkeypatch.setenv(CONTEXT_ENV, "")


def test_a_dotted_override_sets_one_nested_value_and_keeps_the_rest() -> None:
    base = read_cdk_json_context()
    overrides = parse_context_arguments(["stages.dev.gates.promotion.min_primary=0.75", "model_name=fraud"])

    resolved = apply_context_overrides(base, overrides)

    dev = load_stage_config(resolved, "dev")
    assert dev.gates.promotion.min_primary == 0.75
    assert dev.model_name == "fraud"
    assert dev.gates.promotion.max_ece == base["stages"]["dev"]["gates"]["promotion"]["max_ece"]
    assert base["stages"]["dev"]["gates"]["promotion"]["min_primary"] != 0.75  # the source is untouched


def test_a_typo_in_an_override_is_refused_with_what_the_section_holds() -> None:
    with pytest.raises(ConfigError, match=r"min_primry is not a key of stages\.dev\.gates\.promotion .*min_primary"):
        apply_context_overrides(read_cdk_json_context(), {"stages.dev.gates.promotion.min_primry": 0.7})
    with pytest.raises(ConfigError, match=r"stages\.qa is not a section"):
        apply_context_overrides(read_cdk_json_context(), {"stages.qa.region": "eu-west-1"})
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_context_arguments(["stages.dev.region"])


def test_an_override_published_by_a_tool_is_seen_by_every_reader_in_the_run() -> None:
    use_context_arguments(["stages.dev.training.window_days=30"])

    assert load_stage_config(effective_context(), "dev").training.window_days == 30
    assert json.loads(os.environ[CONTEXT_ENV]) == {"stages.dev.training.window_days": 30}


def test_the_cdk_clis_dotted_context_reaches_the_synthesized_config() -> None:
    context = read_cdk_json_context()
    app = App(context={**context, "stage": "dev", "stages.dev.gates.promotion.min_primary": "0.8"})

    (dev,) = stage_configs_from_app(app)["dev"]

    assert dev.gates.promotion.min_primary == 0.8


def test_the_cli_reads_its_config_with_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def capture(platform: Any, **_: Any) -> dict[str, Any]:
        seen["config"] = platform.config
        return {}

    monkeypatch.setattr(cli_main.status, "stage_status", capture)
    monkeypatch.setattr(cli_main.Renderer, "status", lambda self, result: None)
    code = cli_main.main(["status", "--stage", "dev", "-c", "stages.dev.endpoint.instance_count=4", "--json"])

    assert code == 0
    assert seen["config"].endpoint.instance_count == 4


def test_synthesized_output_is_stale_when_the_runs_context_differs(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / assembly.CONTEXT_RECORD).write_text(json.dumps(effective_context(), sort_keys=True))
    assert assembly.is_fresh(tmp_path)

    use_context_arguments(["stages.dev.training.window_days=90"])

    assert not assembly.is_fresh(tmp_path)


def test_an_override_may_give_one_stage_its_models_and_leave_the_other_stages_alone() -> None:
    models = '{"churn": {}, "upsell": {"dataset": "upsell"}}'
    overrides = parse_context_arguments([f"stages.dev.models={models}"])

    resolved = apply_context_overrides(read_cdk_json_context(), overrides)

    assert [(c.model_name, c.dataset) for c in load_stage_models(resolved, "dev")] == [
        ("churn", "churn"),
        ("upsell", "upsell"),
    ]
    assert [c.model_name for c in load_stage_models(resolved, "prod")] == ["churn"]
    with pytest.raises(ConfigError, match=r"modles is not a key of stages\.dev"):
        apply_context_overrides(read_cdk_json_context(), {"stages.dev.modles": models})
