"""Posture across every stack of every stage: the prod API's web ACL, log groups under the stage key, an action
on every alarm a person must act on, point-in-time recovery on the idempotency table, batch scoring's Catch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.config import StageConfig, load_stage_config, read_cdk_json_context
from mlloop.assembly import load_template, synthesize

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("synth")]
STAGES = ("dev", "staging", "prod")
STACKS = ("data-lake", "training", "serving", "monitoring")


@pytest.fixture(scope="module")
def templates() -> dict[tuple[str, str], dict[str, Any]]:
    synthesize()
    return {(stage, stack): load_template(f"mlloop-{stage}-{stack}") for stage in STAGES for stack in STACKS}


@pytest.fixture(scope="module")
def configs() -> dict[str, StageConfig]:
    context = read_cdk_json_context()
    return {stage: load_stage_config(context, stage) for stage in STAGES}


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == kind}


@pytest.mark.parametrize("stage", STAGES)
def test_only_prod_has_a_web_acl_with_the_managed_rules_and_the_stage_rate_limit(
    templates: dict[tuple[str, str], dict[str, Any]], configs: dict[str, StageConfig], stage: str
) -> None:
    serving = templates[(stage, "serving")]
    acls = resources(serving, "AWS::WAFv2::WebACL")
    limit = configs[stage].frontdoor.waf_rate_limit_per_ip
    if limit is None:
        assert acls == {} and resources(serving, "AWS::WAFv2::WebACLAssociation") == {}
        return
    ((acl_id, acl),) = acls.items()
    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    rules = {r["Name"]: r for r in acl["Rules"]}
    rate = rules["RatePerIp"]
    assert rate["Action"] == {"Block": {}}
    assert rate["Statement"]["RateBasedStatement"] == {
        "Limit": limit,
        "AggregateKeyType": "IP",
        "EvaluationWindowSec": 300,
    }
    common = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    assert common["VendorName"] == "AWS"
    assert [o["Name"] for o in common["RuleActionOverrides"]] == ["SizeRestrictions_BODY"]
    assert "AWSManagedRulesKnownBadInputsRuleSet" in rules
    ((association),) = resources(serving, "AWS::WAFv2::WebACLAssociation").values()
    assert association["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    stage_arn = json.dumps(association["ResourceArn"])
    assert "/restapis/" in stage_arn and '"/stages/", {"Ref": "ApiDeploymentStage' in stage_arn


@pytest.mark.parametrize("stage", STAGES)
def test_every_log_group_is_encrypted_with_the_stage_key_and_the_key_lets_logs_use_it(
    templates: dict[tuple[str, str], dict[str, Any]], stage: str
) -> None:
    lake = templates[(stage, "data-lake")]
    ((key_id, key),) = resources(lake, "AWS::KMS::Key").items()
    groups = 0
    for stack in STACKS:
        for name, group in resources(templates[(stage, stack)], "AWS::Logs::LogGroup").items():
            groups += 1
            key_ref = json.dumps(group.get("KmsKeyId"))
            assert key_id in key_ref or "LakeKey" in key_ref, f"{stack}/{name} is not under the stage key"
    assert groups >= 10
    (statement,) = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if "logs." in json.dumps(s.get("Principal", {})) and "Service" in s.get("Principal", {})
    ]
    assert {"kms:Encrypt*", "kms:Decrypt*", "kms:GenerateDataKey*"} <= set(statement["Action"])
    condition = statement["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    assert ":log-group:*" in json.dumps(condition)


@pytest.mark.parametrize("stage", STAGES)
def test_every_alarm_a_person_acts_on_has_an_action_and_a_silent_one_only_feeds_a_composite(
    templates: dict[tuple[str, str], dict[str, Any]], stage: str
) -> None:
    composites = " ".join(
        json.dumps(c["AlarmRule"])
        for stack in STACKS
        for c in resources(templates[(stage, stack)], "AWS::CloudWatch::CompositeAlarm").values()
    )
    silent = []
    for stack in STACKS:
        for logical_id, alarm in resources(templates[(stage, stack)], "AWS::CloudWatch::Alarm").items():
            if alarm.get("AlarmActions"):
                continue
            silent.append(alarm["AlarmName"])
            assert logical_id in composites, f"{alarm['AlarmName']} has no action and feeds no composite alarm"
            assert "feeds" in alarm["AlarmDescription"], "a silent alarm says why in its description"
    assert silent == [f"mlloop-{stage}-monitoring-drift-traffic"]
    for stack in STACKS:
        for composite in resources(templates[(stage, stack)], "AWS::CloudWatch::CompositeAlarm").values():
            assert composite.get("AlarmActions")


@pytest.mark.parametrize("stage", STAGES)
def test_the_idempotency_table_has_point_in_time_recovery(
    templates: dict[tuple[str, str], dict[str, Any]], stage: str
) -> None:
    (table,) = [
        t
        for t in resources(templates[(stage, "data-lake")], "AWS::DynamoDB::Table").values()
        if t["TableName"] == f"mlloop-{stage}-idempotency"
    ]
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def _definition(machine: dict[str, Any]) -> dict[str, Any]:
    body = machine["DefinitionString"]
    text = "".join(p if isinstance(p, str) else "X" for p in body["Fn::Join"][1]) if isinstance(body, dict) else body
    return dict(json.loads(text))


def test_a_failed_batch_scoring_run_notifies_and_ends_failed(templates: dict[tuple[str, str], dict[str, Any]]) -> None:
    serving = templates[("dev", "serving")]
    (machine,) = [
        m
        for m in resources(serving, "AWS::StepFunctions::StateMachine").values()
        if m["StateMachineName"] == "mlloop-dev-batch-scoring"
    ]
    states = _definition(machine)["States"]
    for step in ("PlanBatchScoring", "ScoreEachFile"):
        (catch,) = states[step]["Catch"]
        assert catch["ErrorEquals"] == ["States.ALL"] and catch["Next"] == "NotifyBatchScoringFailed"
        assert catch["ResultPath"] == "$.failure"
    notify = states["NotifyBatchScoringFailed"]
    assert notify["Resource"].endswith(":states:::sns:publish")
    assert notify["Next"] == "BatchScoringFailed"
    assert states["BatchScoringFailed"] == {
        "Type": "Fail",
        "Comment": states["BatchScoringFailed"]["Comment"],
        "Error": "BatchScoringFailed",
        "CausePath": "$.failure.Cause",
    }
