"""The operator CLI's registry commands against moto: approval with reasons, rollback targets, refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from mlloop.cli.main import main
from mlloop.cli.platform import OperatorError, Platform
from mlloop.cli.registry import APPROVED, REJECTED, choose_rollback_target, list_versions, set_approval

INFERENCE = {
    "Containers": [{"Image": "sklearn:1.9-0", "ModelDataUrl": "s3://artifacts/models/model.tar.gz"}],
    "SupportedContentTypes": ["application/json"],
    "SupportedResponseMIMETypes": ["application/json"],
}


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        platform = Platform.for_stage("dev")
        sm = platform.client("sagemaker")
        sm.create_model_package_group(ModelPackageGroupName=platform.config.model_package_group)
        for status in (APPROVED, REJECTED, APPROVED, APPROVED):
            sm.create_model_package(
                ModelPackageGroupName=platform.config.model_package_group,
                ModelApprovalStatus=status,
                InferenceSpecification=INFERENCE,
                CustomerMetadataProperties={"data_version": "manifest-1", "trigger": "schedule"},
            )
        yield platform


def test_versions_are_listed_newest_first_with_their_approval(platform: Platform) -> None:
    versions = list_versions(platform)
    assert [v.version for v in versions] == [4, 3, 2, 1]
    assert [v.approval for v in versions] == [APPROVED, APPROVED, REJECTED, APPROVED]


def test_reject_records_who_and_why_and_keeps_the_other_metadata(platform: Platform) -> None:
    package = set_approval(platform, "v3", approve=False, reason="calibration drifted on the north slice")
    assert package.approval == REJECTED
    assert package.metadata["rejected_reason"] == "calibration drifted on the north slice"
    assert package.metadata["rejected_by"]
    assert package.metadata["data_version"] == "manifest-1"


def test_a_reason_is_required(platform: Platform) -> None:
    with pytest.raises(OperatorError, match="reason is required"):
        set_approval(platform, "4", approve=True, reason="  ")


def test_rollback_goes_to_the_previous_approved_version_skipping_rejected_ones(platform: Platform) -> None:
    versions = list_versions(platform)
    assert choose_rollback_target(versions, serving_version=4, named=None).version == 3
    assert choose_rollback_target(versions, serving_version=3, named=None).version == 1


def test_rollback_refuses_a_rejected_version_and_an_unknown_one(platform: Platform) -> None:
    versions = list_versions(platform)
    with pytest.raises(OperatorError, match="refusing to roll back to v2: it was rejected"):
        choose_rollback_target(versions, serving_version=4, named="v2")
    with pytest.raises(OperatorError, match="no version v9"):
        choose_rollback_target(versions, serving_version=4, named="9")
    with pytest.raises(OperatorError, match="already serving"):
        choose_rollback_target(versions, serving_version=4, named="4")


def test_the_command_line_approves_with_json_output(platform: Platform, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reject", "v4", "--reason", "bad canary", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"approval": REJECTED, "arn": out["arn"], "version": 4}
    assert main(["approve", "v9", "--reason", "x"]) == 2
    assert "no version v9" in capsys.readouterr().err
    described = boto3.client("sagemaker", region_name="us-east-1").describe_model_package(ModelPackageName=out["arn"])
    assert described["ModelApprovalStatus"] == REJECTED
