"""The local deployer creates what the templates say, resolving references, and reports what it cannot do.

Given hand-written cloud assemblies, when they are deployed into the local cloud, then names, ARNs and
settings come from the templates' intrinsics (also across stacks), and anything not emulated is listed
in the deployment report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import DeployError
from mlloop.localcloud.intrinsics import Resolver, TemplateError
from tests.integration.localcloud_support import ROLE, python_function, unique_stage, write_assembly

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]


def _resolver(**overrides: Any) -> Resolver:
    settings: dict[str, Any] = {
        "pseudo": {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"},
        "parameters": {"Env": "dev"},
        "conditions": {"IsProd": {"Fn::Equals": [{"Ref": "Env"}, "prod"]}},
        "mappings": {"Sizes": {"dev": {"Memory": 256}}},
        "exports": {"lake-bucket": "my-bucket"},
        "ref": lambda logical_id: f"physical-{logical_id}",
        "get_att": lambda logical_id, attribute: f"arn:{logical_id}:{attribute}",
    }
    settings.update(overrides)
    return Resolver(**settings)


def test_intrinsics_resolve_like_cloudformation() -> None:
    resolver = _resolver()
    template = {
        "Sub": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/${Key.Arn}/${!Literal}"},
        "SubWithVariables": {"Fn::Sub": ["${Name}-x", {"Name": {"Ref": "AWS::Region"}}]},
        "Join": {"Fn::Join": ["-", ["a", {"Ref": "Env"}, {"Fn::Select": [1, {"Fn::Split": [",", "x,y,z"]}]}]]},
        "If": {"Fn::If": ["IsProd", "big", {"Fn::FindInMap": ["Sizes", {"Ref": "Env"}, "Memory"]}]},
        "Dropped": {"Fn::If": ["IsProd", "kept", {"Ref": "AWS::NoValue"}]},
        "Imported": {"Fn::ImportValue": "lake-bucket"},
        "Json": {"Fn::ToJsonString": {"a": {"Ref": "Env"}}},
    }

    assert resolver.resolve(template) == {
        "Sub": "arn:aws:s3:::physical-Bucket/arn:Key:Arn/${Literal}",
        "SubWithVariables": "eu-west-1-x",
        "Join": "a-dev-y",
        "If": 256,
        "Imported": "my-bucket",
        "Json": '{"a": "dev"}',
    }


def test_an_import_nobody_exports_is_an_error() -> None:
    with pytest.raises(TemplateError, match="no stack exports 'missing'"):
        _resolver().resolve({"Fn::ImportValue": "missing"})


def test_stacks_deploy_in_order_and_share_exports(tmp_path: Path, local_cloud: LocalCloud) -> None:
    stage = unique_stage()
    producer = {
        "Conditions": {"Never": {"Fn::Equals": ["a", "b"]}},
        "Resources": {
            "Key": {"Type": "AWS::KMS::Key", "Properties": {"Description": "lake key"}},
            "Data": {
                "Type": "AWS::S3::Bucket",
                "Properties": {
                    "BucketName": {"Fn::Sub": "${AWS::StackName}-data-${AWS::AccountId}"},
                    "VersioningConfiguration": {"Status": "Enabled"},
                    "BucketEncryption": {
                        "ServerSideEncryptionConfiguration": [
                            {
                                "ServerSideEncryptionByDefault": {
                                    "SSEAlgorithm": "aws:kms",
                                    "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]},
                                }
                            }
                        ]
                    },
                },
            },
            "Skipped": {"Type": "AWS::SQS::Queue", "Condition": "Never", "Properties": {}},
        },
        "Outputs": {"DataBucket": {"Value": {"Ref": "Data"}, "Export": {"Name": f"{stage}-data-bucket"}}},
    }
    consumer = {
        "Resources": {
            "Role": ROLE,
            "Reader": python_function(
                "def handler(event, context):\n    return 1\n",
                environment={"BUCKET": {"Fn::ImportValue": f"{stage}-data-bucket"}},
            ),
        }
    }
    out = write_assembly(
        tmp_path,
        {f"mlloop-{stage}-b-consumer": consumer, f"mlloop-{stage}-a-producer": producer},
        {f"mlloop-{stage}-b-consumer": [f"mlloop-{stage}-a-producer"]},
    )

    deployment = local_cloud.deploy(stage, cdk_out=out)

    bucket = f"mlloop-{stage}-a-producer-data-123456789012"
    s3 = local_cloud.client("s3")
    assert deployment.physical_id("Data") == bucket
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == deployment.attribute("Key", "Arn")
    configuration = local_cloud.client("lambda").get_function_configuration(
        FunctionName=deployment.physical_id("Reader")
    )
    assert configuration["Environment"]["Variables"] == {"BUCKET": bucket}
    assert "Skipped" not in deployment.resources[f"mlloop-{stage}-a-producer"]


SYNC_TRAINING = {
    "StartAt": "Train",
    "States": {
        "Train": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sagemaker:createTrainingJob.sync",
            "Parameters": {"TrainingJobName": "job"},
            "End": True,
        }
    },
}


def test_what_cannot_be_emulated_is_reported(tmp_path: Path, local_cloud: LocalCloud) -> None:
    stage = unique_stage()
    template = {
        "Resources": {
            "Logs": {"Type": "AWS::S3::Bucket", "Properties": {}},
            "SslOnly": {
                "Type": "AWS::S3::BucketPolicy",
                "Properties": {
                    "Bucket": {"Ref": "Logs"},
                    "PolicyDocument": {
                        "Statement": [
                            {
                                "Effect": "Deny",
                                "Principal": {"AWS": "*"},
                                "Action": "s3:*",
                                "Resource": "*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        ]
                    },
                },
            },
            "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {}},
            "Role": ROLE,
            "Train": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "DefinitionString": json.dumps(SYNC_TRAINING),
                    "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
                },
            },
            "WebAcl": {
                "Type": "AWS::WAFv2::WebACL",
                "Properties": {
                    "Name": "api",
                    "Scope": "REGIONAL",
                    "DefaultAction": {"Allow": {}},
                    "Rules": [],
                    "VisibilityConfig": {
                        "CloudWatchMetricsEnabled": True,
                        "MetricName": "api",
                        "SampledRequestsEnabled": True,
                    },
                },
            },
            "WebAclAssociation": {
                "Type": "AWS::WAFv2::WebACLAssociation",
                "Properties": {
                    "ResourceArn": "arn:aws:apigateway:us-east-1::/restapis/abc/stages/prod",
                    "WebACLArn": {"Fn::GetAtt": ["WebAcl", "Arn"]},
                },
            },
        }
    }
    out = write_assembly(tmp_path, {f"mlloop-{stage}-misc": template})

    deployment = local_cloud.deploy(stage, cdk_out=out)

    reported = {(entry.logical_id, entry.status) for entry in deployment.report.entries}
    assert ("Cluster", "not emulated") in reported
    assert ("Train", "partly emulated") in reported
    assert {("WebAcl", "not emulated"), ("WebAclAssociation", "not emulated")} <= reported
    assert "web ACL not enforced" in str(deployment.report)
    assert deployment.attribute("WebAcl", "Arn").startswith("arn:aws:wafv2:")
    # A TLS-only bucket policy is applied (the request path evaluates its condition); the cloud's default
    # credentials keep full access.
    assert "SslOnly" not in str(deployment.report)
    local_cloud.client("s3").put_object(Bucket=deployment.physical_id("Logs"), Key="k", Body=b"still writable")


def test_a_handler_missing_from_its_asset_stops_the_deploy(tmp_path: Path, local_cloud: LocalCloud) -> None:
    stage = unique_stage()
    stack = f"mlloop-{stage}-code"
    asset = tmp_path / "asset.abc123"
    (asset / "functions" / "other").mkdir(parents=True)
    (asset / "functions" / "other" / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    function = python_function("")
    function["Properties"]["Code"] = {"S3Bucket": "cdk-assets-123456789012-us-east-1", "S3Key": "abc123.zip"}
    function["Properties"]["Handler"] = "functions.missing.handler.handler"
    out = write_assembly(tmp_path, {stack: {"Resources": {"Role": ROLE, "Fn": function}}})
    assets = {
        "files": {
            "abc123": {
                "source": {"path": "asset.abc123", "packaging": "zip"},
                "destinations": {
                    "d": {"bucketName": "cdk-assets-${AWS::AccountId}-${AWS::Region}", "objectKey": "abc123.zip"}
                },
            }
        }
    }
    (out / f"{stack}.assets.json").write_text(json.dumps(assets))

    with pytest.raises(DeployError, match=re.escape("functions/missing/handler.py is not in the function's asset")):
        local_cloud.deploy(stage, cdk_out=out)


def test_a_reservation_that_breaks_a_new_accounts_unreserved_floor_fails_the_deploy(
    tmp_path: Path, local_cloud: LocalCloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = unique_stage()
    function = python_function("def handler(event, context):\n    return 1\n", ReservedConcurrentExecutions=1)
    out = write_assembly(tmp_path, {f"mlloop-{stage}-reserving": {"Resources": {"Role": ROLE, "Fn": function}}})

    # A new account's quota of 10 concurrent executions leaves nothing to reserve above Lambda's floor of 10.
    with pytest.raises(Exception) as refused:
        local_cloud.deploy(stage, cdk_out=out)
    assert (
        "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
        "below its minimum value of [10]." in str(refused.value)
    )

    monkeypatch.setenv("LOCALCLOUD_LAMBDA_CONCURRENCY_QUOTA", "1000")
    stage = unique_stage()
    out = write_assembly(
        tmp_path / "raised", {f"mlloop-{stage}-reserving": {"Resources": {"Role": ROLE, "Fn": function}}}
    )
    deployment = local_cloud.deploy(stage, cdk_out=out)
    concurrency = local_cloud.client("lambda").get_function_concurrency(FunctionName=deployment.physical_id("Fn"))
    assert concurrency["ReservedConcurrentExecutions"] == 1
