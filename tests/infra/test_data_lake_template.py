"""The data lake as synthesized: encrypted with its key, versioned, private, lifecycle per stage, wired to ingestion."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.ingest.ranges import largest_single_file
from functions.shared.contract import load_contract
from infra.config import load_stage_config, read_cdk_json_context
from mlloop.assembly import load_template, synthesize

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("synth")]
LAKE_BUCKETS = ("raw", "curated", "quarantine", "artifacts", "capture")


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    synthesize()
    return {stage: load_template(f"mlloop-{stage}-data-lake") for stage in ("dev", "staging", "prod")}


@pytest.fixture(scope="module")
def dev(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return templates["dev"]


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def bucket(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    for logical_id, res in resources(template, "AWS::S3::Bucket").items():
        name = res["Properties"]["BucketName"]["Fn::Join"][1][0]
        if name.endswith(f"-{kind}-"):
            return logical_id, res["Properties"]
    raise AssertionError(f"no {kind} bucket")


def the_key(template: dict[str, Any]) -> str:
    (key_id,) = resources(template, "AWS::KMS::Key")
    return key_id


def test_one_customer_managed_key_with_rotation(dev: dict[str, Any]) -> None:
    keys = resources(dev, "AWS::KMS::Key")

    assert len(keys) == 1
    assert next(iter(keys.values()))["Properties"]["EnableKeyRotation"] is True


@pytest.mark.parametrize("kind", LAKE_BUCKETS)
def test_lake_buckets_are_encrypted_with_the_stack_key_versioned_private_and_logged(
    dev: dict[str, Any], kind: str
) -> None:
    _, props = bucket(dev, kind)

    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [the_key(dev), "Arn"]},
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    logs_id, _ = bucket(dev, "access-logs")
    assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}
    assert props["BucketName"]["Fn::Join"][1][0] == f"mlloop-dev-{kind}-"


def test_every_bucket_denies_plain_http(dev: dict[str, Any]) -> None:
    policies = resources(dev, "AWS::S3::BucketPolicy")
    secured = set()
    for policy in policies.values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                secured.add(policy["Properties"]["Bucket"]["Ref"])

    assert secured == set(resources(dev, "AWS::S3::Bucket"))


@pytest.mark.parametrize("stage", ["dev", "staging", "prod"])
def test_lifecycle_follows_the_stage_config(templates: dict[str, dict[str, Any]], stage: str) -> None:
    lake = load_stage_config(read_cdk_json_context(), stage).lake
    template = templates[stage]
    _, raw = bucket(template, "raw")

    rules = {r["Id"]: r for r in raw["LifecycleConfiguration"]["Rules"]}
    assert rules["raw-to-cheaper-storage"]["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": lake.raw_infrequent_access_days},
        {"StorageClass": "GLACIER", "TransitionInDays": lake.raw_glacier_days},
    ]
    for kind in LAKE_BUCKETS:
        _, props = bucket(template, kind)
        housekeeping = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}["expire-noncurrent-versions"]
        assert housekeeping["NoncurrentVersionExpiration"] == {"NoncurrentDays": lake.noncurrent_expiry_days}


def test_prod_retains_state_and_dev_destroys_it(templates: dict[str, dict[str, Any]]) -> None:
    for stage, policy in (("dev", "Delete"), ("prod", "Retain")):
        template = templates[stage]
        stateful = {
            **resources(template, "AWS::S3::Bucket"),
            **resources(template, "AWS::KMS::Key"),
            **resources(template, "AWS::DynamoDB::Table"),
        }
        assert {r["DeletionPolicy"] for r in stateful.values()} == {policy}, stage
    assert not resources(templates["prod"], "Custom::S3AutoDeleteObjects")


def test_raw_object_created_events_reach_the_ingest_function(dev: dict[str, Any]) -> None:
    raw_id, _ = bucket(dev, "raw")
    notifications = resources(dev, "Custom::S3BucketNotifications")
    raw_notifications = [n for n in notifications.values() if n["Properties"]["BucketName"] == {"Ref": raw_id}]
    (rule,) = resources(dev, "AWS::Events::Rule").values()
    (ingest_id,) = [
        k
        for k, v in resources(dev, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == "functions.ingest.handler.handler"
    ]

    assert raw_notifications[0]["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {}}
    assert rule["Properties"]["EventPattern"] == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [{"Ref": raw_id}]}},
    }
    (target,) = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [ingest_id, "Arn"]}
    assert "DeadLetterConfig" in target


def test_ingest_function_is_configured_for_the_lake(dev: dict[str, Any]) -> None:
    (fn,) = [
        v
        for v in resources(dev, "AWS::Lambda::Function").values()
        if v["Properties"]["Handler"] == "functions.ingest.handler.handler"
    ]
    env = fn["Properties"]["Environment"]["Variables"]

    assert fn["Properties"]["Handler"] == "functions.ingest.handler.handler"
    assert env["CURATED_BUCKET"] == {"Ref": bucket(dev, "curated")[0]}
    assert env["QUARANTINE_BUCKET"] == {"Ref": bucket(dev, "quarantine")[0]}
    assert env["INGEST_CHUNK_ROWS"] == "200000"
    assert fn["Properties"]["TracingConfig"] == {"Mode": "Active"}
    assert fn["Properties"]["EphemeralStorage"] == {"Size": 10240}
    assert "DeadLetterConfig" in fn["Properties"]


def test_ingest_role_never_deletes_and_never_writes_raw(dev: dict[str, Any]) -> None:
    raw_id, _ = bucket(dev, "raw")
    statements = [
        s
        for policy in resources(dev, "AWS::IAM::Policy").values()
        if any("IngestFunction" in r["Ref"] for r in policy["Properties"]["Roles"])
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}

    assert not any("Delete" in a for a in actions if a.startswith("s3:"))
    for s in statements:
        if "s3:PutObject" in s["Action"]:
            assert raw_id not in str(s["Resource"])


def test_idempotency_table_is_keyed_by_id_with_expiry(dev: dict[str, Any]) -> None:
    (table,) = resources(dev, "AWS::DynamoDB::Table").values()
    props = table["Properties"]

    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["SSESpecification"]["KMSMasterKeyId"] == {"Fn::GetAtt": [the_key(dev), "Arn"]}


def test_catalog_tables_use_partition_projection(dev: dict[str, Any]) -> None:
    contract = load_contract("churn")
    tables = {
        t["Properties"]["TableInput"]["Name"]: t["Properties"]["TableInput"]
        for t in resources(dev, "AWS::Glue::Table").values()
    }

    assert set(tables) == {"churn", "churn_quarantine", "predictions"}
    curated = tables["churn"]
    assert curated["PartitionKeys"] == [{"Name": "event_date", "Type": "string"}]
    assert curated["Parameters"]["projection.enabled"] == "true"
    assert curated["Parameters"]["projection.event_date.type"] == "date"
    columns = [c["Name"] for c in curated["StorageDescriptor"]["Columns"]]
    assert columns[: len(contract.columns)] == contract.columns
    assert "contract_version" in columns
    assert tables["churn_quarantine"]["PartitionKeys"] == [{"Name": "ingest_date", "Type": "string"}]


def _definition(machine: dict[str, Any]) -> dict[str, Any]:
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    return dict(json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts)))


def test_a_file_too_large_for_one_invocation_is_split_by_a_distributed_map_then_merged(dev: dict[str, Any]) -> None:
    (machine_id, machine), *others = [
        (k, v) for k, v in resources(dev, "AWS::StepFunctions::StateMachine").items() if "IngestSplit" in k
    ]
    assert not others
    definition = _definition(machine)
    ranges = definition["States"][definition["StartAt"]]

    assert ranges["Type"] == "Map" and ranges["ItemsPath"] == "$.ranges"
    assert ranges["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert ranges["ItemSelector"]["range.$"] == "$$.Map.Item.Value" and ranges["ItemSelector"]["step"] == "range"
    (worker,) = ranges["ItemProcessor"]["States"].values()
    assert "Parameters" not in worker  # the item, as selected, is the range function's event
    merge = definition["States"][ranges["Next"]]
    assert merge["Parameters"]["step"] == "merge" and merge.get("End") is True

    (ingest,) = [
        v
        for v in resources(dev, "AWS::Lambda::Function").values()
        if v["Properties"]["Handler"] == "functions.ingest.handler.handler"
    ]
    env = ingest["Properties"]["Environment"]["Variables"]
    assert env["INGEST_SPLIT_BYTES"] == str(largest_single_file(3008, 900, 10240))
    assert env["INGEST_SPLIT_STATE_MACHINE_ARN"] == {"Ref": machine_id}


def test_the_ingest_role_may_start_only_the_split_machine_and_the_range_role_keeps_no_idempotency(
    dev: dict[str, Any],
) -> None:
    def statements(role_part: str) -> list[dict[str, Any]]:
        return [
            s
            for policy in resources(dev, "AWS::IAM::Policy").values()
            if any(role_part in r["Ref"] for r in policy["Properties"]["Roles"])
            for s in policy["Properties"]["PolicyDocument"]["Statement"]
        ]

    (machine_id,) = [k for k in resources(dev, "AWS::StepFunctions::StateMachine") if "IngestSplit" in k]
    (start,) = [s for s in statements("IngestFunction") if "states:StartExecution" in str(s["Action"])]
    assert start["Resource"] == {"Ref": machine_id}
    range_actions = str([s["Action"] for s in statements("IngestRangeFunction")])
    assert "dynamodb" not in range_actions and "Delete" not in range_actions and "states:" not in range_actions
