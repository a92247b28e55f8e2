"""The synthesized roles, acting with their own credentials on the embedded AWS (which enforces IAM).

Each test is a defect that a lenient emulator hid (issue 16): it reproduces what AWS answers the role,
failing before the role (or resource) policy was fixed.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.config import Config

from functions.check_data_gate.logic import LATEST_PROFILE_KEY, _read_json
from functions.shared.serving_manifest import load_manifest
from mlloop.localcloud import LocalCloud, identity
from mlloop.localcloud.deployer import Deployment

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]


def role_of(cloud: LocalCloud, deployment: Deployment, function: str) -> str:
    name = deployment.physical_id(function)
    return str(cloud.client("lambda").get_function(FunctionName=name)["Configuration"]["Role"])


def client_as(cloud: LocalCloud, role_arn: str, service: str) -> Any:
    """A client signed with the role's session credentials, as the function's execution environment has them."""
    credentials = identity.role_credentials(role_arn, "test-session", region=cloud.region)
    return boto3.client(
        service,
        region_name=cloud.region,
        endpoint_url=cloud.endpoint_url,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        config=Config(retries={"max_attempts": 1}),
    )


def test_data_gate_reads_a_missing_latest_profile_as_absent_not_forbidden(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    """Defect 1: without s3:ListBucket, S3 answers GetObject of the missing profile with 403, and no run passes."""
    bucket = dev_stage.physical_id("ArtifactsBucket")
    local_cloud.client("s3").delete_object(Bucket=bucket, Key=LATEST_PROFILE_KEY)
    s3 = client_as(local_cloud, role_of(local_cloud, dev_stage, "CheckDataGateFunction"), "s3")

    assert _read_json(s3, bucket, LATEST_PROFILE_KEY) is None


def test_drift_detector_reads_a_missing_manifest_as_no_deployment(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    """Defect 2: before the first deploy the manifest is missing; the detector must see None, not AccessDenied."""
    bucket = dev_stage.physical_id("ArtifactsBucket")
    s3 = client_as(local_cloud, role_of(local_cloud, dev_stage, "DriftDetectorFunction"), "s3")

    assert load_manifest(s3, bucket, "no-such-endpoint-yet") is None


def test_alarm_actions_reach_the_encrypted_tls_only_topic(local_cloud: LocalCloud, dev_stage: Deployment) -> None:
    """Defect 5: the topic policy replaces SNS's default one, so it must allow cloudwatch.amazonaws.com itself."""
    topic = dev_stage.physical_id("NotificationsTopic")
    cloudwatch = local_cloud.client("cloudwatch")
    alarm = next(a for a in cloudwatch.describe_alarms()["MetricAlarms"] if topic in a.get("AlarmActions", []))
    cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="OK", StateReason="test: from OK")
    cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="ALARM", StateReason="test: defect 5")
    history = cloudwatch.describe_alarm_history(AlarmName=alarm["AlarmName"], HistoryItemType="Action")
    latest = history["AlarmHistoryItems"][0]
    cloudwatch.set_alarm_state(AlarmName=alarm["AlarmName"], StateValue="OK", StateReason="test: reset")

    assert latest["HistorySummary"] == f"Successfully executed action {topic}", json.loads(latest["HistoryData"])


def test_training_role_may_encrypt_its_output_and_publish_its_metrics(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    """Defect 6: CreateTrainingJob with OutputDataConfig.KmsKeyId needs kms:Encrypt for the job's role, and the
    job publishes its metrics as the role in /aws/sagemaker/TrainingJobs."""
    role = dev_stage.attribute("TrainingJobRole", "Arn")
    key = dev_stage.attribute("LakeKey", "Arn")

    client_as(local_cloud, role, "kms").encrypt(KeyId=key, Plaintext=b"model.tar.gz")
    client_as(local_cloud, role, "cloudwatch").put_metric_data(
        Namespace="/aws/sagemaker/TrainingJobs", MetricData=[{"MetricName": "train:auc", "Value": 0.9}]
    )
