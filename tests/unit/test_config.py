"""Stage configuration: every stage parses; a typo stops synth with one line naming the key."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from functions.check_data_gate.logic import DataGatePolicy
from infra.config import STAGES, ConfigError, load_all_stages, load_stage_config, read_cdk_json_context
from training.gate import GatePolicy

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def context() -> dict:
    return read_cdk_json_context()


def test_every_stage_parses_and_stages_differ_by_config(context: dict) -> None:
    configs = {c.stage: c for c in load_all_stages(context)}
    assert set(configs) == set(STAGES)
    assert configs["dev"].approval == "auto"
    assert configs["prod"].approval == "manual"
    assert configs["prod"].removal_policy == "retain"
    assert configs["prod"].deployment.wait_seconds > configs["dev"].deployment.wait_seconds
    assert configs["dev"].prefix == "mlloop-dev"


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("deployment", "canary_percent"), 150, "stages.prod.deployment.canary_percent: 150 is out of range"),
        (("deployment", "mode"), "BLUE", "stages.prod.deployment.mode: 'BLUE' is not allowed (allowed: one of CANARY"),
        (("approval",), "sometimes", "stages.prod.approval: 'sometimes' is not allowed (allowed: one of auto, manual)"),
        (("endpoint", "instance_count"), "2", "stages.prod.endpoint.instance_count: '2' has the wrong type"),
        (("training", "use_spot"), 1, "stages.prod.training.use_spot: 1 has the wrong type (allowed: true or false)"),
        (("gates", "data", "min_rows"), 0, "stages.prod.gates.data.min_rows: 0 is out of range (allowed: an integer"),
        (("gates", "data", "min_row_ratio"), 1.5, "stages.prod.gates.data.min_row_ratio: 1.5 is out of range"),
        (("gates", "data", "min_positive_rate"), 0.995, "stages.prod.gates.data.min_positive_rate: 0.995 is above"),
        (("gates", "promotion", "max_ece"), "0.05", "stages.prod.gates.promotion.max_ece: '0.05' has the wrong type"),
        (("gates", "promotion", "primary_metric"), "acc", "stages.prod.gates.promotion.primary_metric: 'acc' is not"),
        (("gates", "promotion", "min_auc"), 0.8, "stages.prod.gates.promotion.min_auc: unknown key (allowed: max_ece"),
        (("training", "decision", "cost_false_negative"), -1, "stages.prod.training.decision.cost_false_negative: -1"),
        (("training", "decision", "target_recall"), 1.5, "stages.prod.training.decision.target_recall: 1.5 is out"),
        (("monitoring", "max_live_auc_drop"), 0.6, "stages.prod.monitoring.max_live_auc_drop: 0.6 is out of range"),
        (("monitoring", "max_live_auc_drop"), 0, "stages.prod.monitoring.max_live_auc_drop: 0.0 is out of range"),
    ],
)
def test_a_bad_value_names_the_key_and_the_allowed_values(
    context: dict, path: tuple, value: object, expected: str
) -> None:
    bad = copy.deepcopy(context)
    section = bad["stages"]["prod"]
    for key in path[:-1]:
        section = section[key]
    section[path[-1]] = value
    with pytest.raises(ConfigError) as err:
        load_stage_config(bad, "prod")
    message = str(err.value)
    assert message.startswith(expected)
    assert "\n" not in message


def test_gates_are_per_stage_and_a_threshold_left_out_keeps_its_default(context: dict) -> None:
    configs = {c.stage: c for c in load_all_stages(context)}
    assert configs["prod"].gates.promotion.min_primary > configs["dev"].gates.promotion.min_primary
    assert configs["prod"].gates.data.min_rows > configs["dev"].gates.data.min_rows
    partial = copy.deepcopy(context)
    partial["stages"]["prod"]["gates"] = {"promotion": {"min_primary": 0.8}}
    gates = load_stage_config(partial, "prod").gates
    assert gates.promotion.min_primary == 0.8
    assert gates.promotion.max_ece == GatePolicy().max_ece and gates.data == DataGatePolicy()


def test_a_missing_key_and_an_unknown_key_are_named(context: dict) -> None:
    missing = copy.deepcopy(context)
    del missing["stages"]["dev"]["frontdoor"]["circuit_minimum_calls"]
    with pytest.raises(ConfigError, match=r"^stages\.dev\.frontdoor\.circuit_minimum_calls: missing key"):
        load_stage_config(missing, "dev")
    typo = copy.deepcopy(context)
    typo["stages"]["dev"]["deployment"]["canary_percnt"] = 10
    with pytest.raises(ConfigError, match=r"^stages\.dev\.deployment\.canary_percnt: unknown key \(allowed: "):
        load_stage_config(typo, "dev")


def test_an_unknown_stage_lists_the_known_ones(context: dict) -> None:
    with pytest.raises(ConfigError, match=r"^stage: 'qa' is not a known stage \(allowed: dev, staging, prod\)$"):
        load_stage_config(context, "qa")


def test_synth_stops_with_one_line_on_a_config_typo(context: dict, tmp_path: Path) -> None:
    bad = copy.deepcopy(context)
    bad["stages"]["staging"]["deployment"]["canary_percent"] = 150
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps(bad),
        "CDK_OUTDIR": str(tmp_path),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
    }
    proc = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        "config error: stages.staging.deployment.canary_percent: 150 is out of range (allowed: an integer from 1 to 50)"
    ]


def test_a_stage_may_decide_by_a_target_precision_instead_of_costs(context: dict) -> None:
    chosen = copy.deepcopy(context)
    chosen["stages"]["prod"]["training"]["decision"] = {"target_precision": 0.9}
    decision = load_stage_config(chosen, "prod").training.decision
    assert decision.target == ("precision", 0.9)
    assert decision.hyperparameters()["target_precision"] == "0.9"

    both = copy.deepcopy(context)
    both["stages"]["prod"]["training"]["decision"] = {"target_precision": 0.9, "target_recall": 0.5}
    with pytest.raises(ConfigError, match=r"stages\.prod\.training\.decision\.target_recall: target_precision and"):
        load_stage_config(both, "prod")


def test_a_stage_may_name_its_own_estimator_factory_and_a_missing_one_is_refused(context: dict) -> None:
    own = copy.deepcopy(context)
    own["stages"]["dev"]["training"]["candidate"] = "hist_gradient_boosting,training.models.extra_trees:make_estimator"
    assert load_stage_config(own, "dev").training.candidate.endswith("make_estimator")

    missing = copy.deepcopy(context)
    missing["stages"]["dev"]["training"]["candidate"] = "training.models.gone:make"
    with pytest.raises(ConfigError, match=r"stages\.dev\.training\.candidate: .*gone\.py, which does not exist"):
        load_stage_config(missing, "dev")


def test_a_canary_that_is_not_whole_instances_up_to_half_the_fleet_stops_synth(context: dict) -> None:
    one_instance = copy.deepcopy(context)
    one_instance["stages"]["dev"]["endpoint"]["instance_count"] = 1
    one_instance["stages"]["dev"]["deployment"]["canary_percent"] = 20
    with pytest.raises(ConfigError) as err:
        load_stage_config(one_instance, "dev")
    assert str(err.value) == (
        "stages.dev.deployment.canary_percent: 20 is not a whole number of the endpoint's 1 instance(s) up to half "
        "of them, which is how SageMaker shifts CANARY traffic (allowed: none: use ALL_AT_ONCE or at least 2 "
        "instances)"
    )
    four = copy.deepcopy(context)
    four["stages"]["prod"]["endpoint"]["instance_count"] = 4
    four["stages"]["prod"]["deployment"].update({"mode": "LINEAR", "linear_step_percent": 10})
    with pytest.raises(ConfigError, match=r"linear_step_percent: 10 .* \(allowed: 25, 50\)$"):
        load_stage_config(four, "prod")
    four["stages"]["prod"]["deployment"]["linear_step_percent"] = 25
    four["stages"]["prod"]["rollback"]["standby_instance_count"] = 4  # the standby takes the same steps
    assert load_stage_config(four, "prod").deployment.linear_step_percent == 25
    all_at_once = copy.deepcopy(one_instance)
    all_at_once["stages"]["dev"]["deployment"]["mode"] = "ALL_AT_ONCE"
    assert load_stage_config(all_at_once, "dev").endpoint.instance_count == 1


def test_reserved_concurrency_never_breaks_the_declared_accounts_unreserved_floor(context: dict) -> None:
    configs = {c.stage: c for c in load_all_stages(context)}
    for stage in ("dev", "staging"):
        # A new account's quota: nothing can be reserved, so no function reserves any.
        assert configs[stage].concurrency.account_quota == 10 and configs[stage].concurrency.reserved == {}
    prod = configs["prod"].concurrency
    functions = sorted(p.parent.name for p in (REPO / "functions").glob("*/handler.py"))
    assert sorted(prod.reserved) == functions, "every prod function has a concurrency limit"
    assert prod.account_quota - sum(prod.reserved.values()) >= 10

    greedy = copy.deepcopy(context)
    greedy["stages"]["dev"]["concurrency"]["reserved"] = {"start_training": 1}
    with pytest.raises(ConfigError) as err:
        load_stage_config(greedy, "dev")
    assert str(err.value).startswith(
        "stages.dev.concurrency.reserved: 1 reserved concurrent executions leave 9 of account_quota 10 unreserved, "
        "below Lambda's minimum of 10 (allowed: at most 0 in total;"
    )
    unknown = copy.deepcopy(context)
    unknown["stages"]["prod"]["concurrency"]["reserved"]["front_door"] = 5
    with pytest.raises(ConfigError, match=r"^stages\.prod\.concurrency\.reserved\.front_door: unknown function"):
        load_stage_config(unknown, "prod")
    undeclared = copy.deepcopy(context)
    del undeclared["stages"]["prod"]["concurrency"]["account_quota"]
    with pytest.raises(ConfigError, match=r"account_quota 10 unreserved"):
        load_stage_config(undeclared, "prod")


def test_stage_config_parses_while_a_policy_module_is_out_of_sys_modules(
    context: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The local cloud swaps functions' modules out of sys.modules around each Lambda invocation.
    monkeypatch.delitem(sys.modules, "functions.check_data_gate.logic")
    gates = load_stage_config(context, "dev").gates
    assert gates.data.min_rows == context["stages"]["dev"]["gates"]["data"]["min_rows"]


def test_a_warm_standby_must_fit_the_deployment_step_too(context: dict) -> None:
    # Every variant goes through the blue/green update: a one-instance standby cannot take a 50 % canary.
    small = copy.deepcopy(context)
    small["stages"]["prod"]["rollback"]["standby_instance_count"] = 1
    with pytest.raises(ConfigError, match=r"canary_percent: 50 is not a whole number of the standby's 1 instance"):
        load_stage_config(small, "prod")
    small["stages"]["prod"]["deployment"]["mode"] = "ALL_AT_ONCE"
    assert load_stage_config(small, "prod").rollback.standby_instance_count == 1
