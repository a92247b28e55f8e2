"""The embedded AWS authenticates and authorises like AWS (issue 16, defect 9 and Deliver 1-2).

Requests are made with real boto3 clients and raw HTTP against the local endpoint; each test is an answer
that a lenient emulator (moto alone) gets wrong.
"""

from __future__ import annotations

import datetime
import gzip
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from mlloop.localcloud import LocalCloud, fidelity, identity
from tests.integration.localcloud_support import unique_stage, write_assembly

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]
ACCOUNT = "123456789012"


def _client(cloud: LocalCloud, service: str, config: Config | None = None, **keys: Any) -> Any:
    credentials = {"aws_access_key_id": identity.ADMIN_ACCESS_KEY_ID, "aws_secret_access_key": "localcloud"} | keys
    return boto3.client(
        service,
        region_name=cloud.region,
        endpoint_url=cloud.endpoint_url,
        config=Config(retries={"max_attempts": 1}).merge(config or Config()),
        **credentials,
    )


def _as(cloud: LocalCloud, role_arn: str, service: str) -> Any:
    keys = identity.role_credentials(role_arn, "tester", region=cloud.region)
    return _client(
        cloud,
        service,
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token,
    )


def _error(call: Any) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"], error["Error"].get("Message", "")


@pytest.fixture
def role(local_cloud: LocalCloud) -> Iterator[str]:
    """A role allowed to read one bucket's objects, and nothing else."""
    iam = local_cloud.client("iam")
    name = f"reader-{uuid.uuid4().hex[:8]}"
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    yield arn
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    iam.delete_role(RoleName=name)


def _allow(cloud: LocalCloud, role_arn: str, *statements: dict[str, Any]) -> None:
    document = {"Version": "2012-10-17", "Statement": list(statements)}
    cloud.client("iam").put_role_policy(
        RoleName=role_arn.rsplit("/", 1)[-1], PolicyName="test", PolicyDocument=json.dumps(document)
    )


@pytest.fixture
def bucket(local_cloud: LocalCloud) -> str:
    name = f"authz-{uuid.uuid4().hex[:12]}"
    s3 = local_cloud.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="data/present.txt", Body=b"hello")
    return name


# ------------------------------------------------------------------------------------------------ SigV4
def test_unsigned_requests_are_refused_with_each_protocols_answer(local_cloud: LocalCloud) -> None:
    def send(request: urllib.request.Request) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    s3_status, s3_body = send(urllib.request.Request(local_cloud.endpoint_url + "/"))
    json_status, json_body = send(
        urllib.request.Request(
            local_cloud.endpoint_url + "/",
            data=b"{}",
            headers={"X-Amz-Target": "SageMaker.ListEndpoints", "Content-Type": "application/x-amz-json-1.1"},
        )
    )

    assert (s3_status, b"<Code>AccessDenied</Code>" in s3_body) == (403, True)
    assert json_status == 403
    assert json.loads(json_body)["__type"] == "MissingAuthenticationTokenException"


def test_a_wrong_secret_does_not_match_the_signature(local_cloud: LocalCloud) -> None:
    sns = _client(local_cloud, "sns", aws_secret_access_key="wrong")
    sagemaker = _client(local_cloud, "sagemaker", aws_secret_access_key="wrong")

    assert _error(sns.list_topics)[:2] == ("SignatureDoesNotMatch", 403)
    assert _error(sagemaker.list_endpoints)[:2] == ("InvalidSignatureException", 403)


def test_an_unknown_access_key_is_refused(local_cloud: LocalCloud) -> None:
    sagemaker = _client(local_cloud, "sagemaker", aws_access_key_id="AKIAUNKNOWNUNKNOWN00")
    s3 = _client(local_cloud, "s3", aws_access_key_id="AKIAUNKNOWNUNKNOWN00")

    assert _error(sagemaker.list_endpoints)[:2] == ("UnrecognizedClientException", 403)
    assert _error(s3.list_buckets)[:2] == ("InvalidAccessKeyId", 403)


def test_a_body_changed_after_signing_is_refused(local_cloud: LocalCloud) -> None:
    sagemaker = _client(local_cloud, "sagemaker")

    def tamper(request: Any, **_: Any) -> None:
        request.body = request.body.replace(b"MaxResults", b"MaxResults ")

    sagemaker.meta.events.register_last("before-send.sagemaker.ListEndpoints", tamper)

    assert _error(lambda: sagemaker.list_endpoints(MaxResults=5))[:2] == ("InvalidSignatureException", 403)


def test_a_request_signed_sixteen_minutes_ago_has_expired(local_cloud: LocalCloud) -> None:
    then = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=16)
    with mock.patch("botocore.auth.get_current_datetime", return_value=then):
        sagemaker_code, _, sagemaker_message = _error(_client(local_cloud, "sagemaker").list_endpoints)
        s3_code = _error(_client(local_cloud, "s3").list_buckets)[0]

    assert sagemaker_code == "InvalidSignatureException"
    assert sagemaker_message.startswith(f"Signature expired: {then.strftime('%Y%m%dT%H%M%SZ')} is now earlier than")
    assert s3_code == "RequestTimeTooSkewed"


def test_a_signature_scoped_to_another_service_is_refused(local_cloud: LocalCloud) -> None:
    client = _client(local_cloud, "sagemaker")

    def rescope(request: Any, **_: Any) -> None:
        request.context["signing"] = {"signing_name": "states", "region": local_cloud.region}

    client.meta.events.register("before-sign.sagemaker.ListEndpoints", rescope)
    code, status, message = _error(client.list_endpoints)

    assert (code, status) == ("InvalidSignatureException", 403)
    assert "Credential should be scoped to correct service: 'sagemaker'" in message


# ------------------------------------------------------------------------------------------- authorisation
def test_a_role_is_denied_what_its_policies_do_not_allow_naming_principal_action_and_resource(
    local_cloud: LocalCloud, role: str, bucket: str
) -> None:
    _allow(local_cloud, role, {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"})
    s3 = _as(local_cloud, role, "s3")

    assert s3.get_object(Bucket=bucket, Key="data/present.txt")["Body"].read() == b"hello"
    code, status, message = _error(lambda: s3.put_object(Bucket=bucket, Key="data/new.txt", Body=b"x"))

    assert (code, status) == ("AccessDenied", 403)
    assert message == (
        f"User: arn:aws:sts::{ACCOUNT}:assumed-role/{role.rsplit('/', 1)[-1]}/tester is not authorized to perform: "
        f's3:PutObject on resource: "arn:aws:s3:::{bucket}/data/new.txt" because no identity-based policy allows '
        "the s3:PutObject action"
    )


def test_get_caller_identity_needs_no_permission_even_against_an_explicit_deny(
    local_cloud: LocalCloud, role: str
) -> None:
    # STS API reference, GetCallerIdentity: "No permissions are required to perform this operation."
    _allow(local_cloud, role, {"Effect": "Deny", "Action": "sts:GetCallerIdentity", "Resource": "*"})

    caller = _as(local_cloud, role, "sts").get_caller_identity()

    assert caller["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{role.rsplit('/', 1)[-1]}/tester"


def test_a_missing_key_is_403_without_list_bucket_and_404_with_it(
    local_cloud: LocalCloud, role: str, bucket: str
) -> None:
    read = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    _allow(local_cloud, role, read)
    s3 = _as(local_cloud, role, "s3")
    without = _error(lambda: s3.get_object(Bucket=bucket, Key="data/missing.txt"))[:2]

    _allow(
        local_cloud, role, read, {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}
    )
    with_list = _error(lambda: s3.get_object(Bucket=bucket, Key="data/missing.txt"))[:2]

    assert without == ("AccessDenied", 403)
    assert with_list == ("NoSuchKey", 404)


def test_explicit_deny_wins_and_not_action_and_conditions_are_evaluated(
    local_cloud: LocalCloud, role: str, bucket: str
) -> None:
    _allow(
        local_cloud,
        role,
        {
            "Effect": "Allow",
            "NotAction": "s3:DeleteObject",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        },
        {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/locked/*"},
        {
            "Effect": "Deny",
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringNotLike": {"s3:prefix": ["data/*"]}},
        },
    )
    s3 = _as(local_cloud, role, "s3")

    s3.put_object(Bucket=bucket, Key="data/ok.txt", Body=b"x")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="data/")["Contents"]] == [
        "data/ok.txt",
        "data/present.txt",
    ]
    assert "explicit deny" in _error(lambda: s3.put_object(Bucket=bucket, Key="locked/x", Body=b"x"))[2]
    assert "explicit deny" in _error(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="other/"))[2]
    assert _error(lambda: s3.delete_object(Bucket=bucket, Key="data/ok.txt"))[0] == "AccessDenied"


def test_a_tls_only_bucket_refuses_a_plain_http_caller(local_cloud: LocalCloud, role: str, bucket: str) -> None:
    """Keys a script obtained through the STS API over plain HTTP are a plain-HTTP caller (aws:SecureTransport
    false); the cloud's own execution environments stand for AWS's SDKs, which always use TLS."""
    _allow(local_cloud, role, {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"})
    tls_only = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }
    local_cloud.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps(tls_only))
    assumed = local_cloud.client("sts").assume_role(RoleArn=role, RoleSessionName="script")["Credentials"]
    over_http = _client(
        local_cloud,
        "s3",
        aws_access_key_id=assumed["AccessKeyId"],
        aws_secret_access_key=assumed["SecretAccessKey"],
        aws_session_token=assumed["SessionToken"],
    )

    code, status, message = _error(lambda: over_http.get_object(Bucket=bucket, Key="data/present.txt"))
    in_cloud = _as(local_cloud, role, "s3").get_object(Bucket=bucket, Key="data/present.txt")["Body"].read()

    assert (code, status) == ("AccessDenied", 403)
    assert "with an explicit deny in a resource-based policy" in message
    assert in_cloud == b"hello"


def test_pass_role_is_checked_on_create_training_job(local_cloud: LocalCloud, role: str) -> None:
    _allow(local_cloud, role, {"Effect": "Allow", "Action": "sagemaker:CreateTrainingJob", "Resource": "*"})
    sagemaker = _as(local_cloud, role, "sagemaker")

    code, _, message = _error(
        lambda: sagemaker.create_training_job(
            TrainingJobName=f"job-{uuid.uuid4().hex[:8]}",
            RoleArn=role,
            AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": "s3://nowhere/out"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
            StoppingCondition={"MaxRuntimeInSeconds": 60},
        )
    )

    assert code == "AccessDeniedException"
    assert f"iam:PassRole on resource: {role}" in message


def test_the_fidelity_report_counts_each_principals_decisions(local_cloud: LocalCloud, role: str, bucket: str) -> None:
    _allow(local_cloud, role, {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"})
    s3 = _as(local_cloud, role, "s3")
    before = fidelity.report()["principals"].get(role.rsplit("/", 1)[-1], {"calls": 0, "authorised": 0, "denied": 0})

    s3.get_object(Bucket=bucket, Key="data/present.txt")
    _error(lambda: s3.put_object(Bucket=bucket, Key="x", Body=b"x"))
    after = fidelity.report()["principals"][role.rsplit("/", 1)[-1]]

    assert (after["calls"] - before["calls"], after["authorised"] - before["authorised"]) == (2, 1)
    assert after["denied"] - before["denied"] == 1


def test_a_condition_the_evaluator_does_not_know_is_reported_and_never_allows(
    local_cloud: LocalCloud, role: str, bucket: str, tmp_path: Path
) -> None:
    unknown = {"StringEquals": {"aws:SourceVpce": "vpce-123"}}
    stage = unique_stage()
    policy = {
        "Type": "AWS::IAM::ManagedPolicy",
        "Properties": {
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*", "Condition": unknown}],
            }
        },
    }
    deployment = local_cloud.deploy(
        stage, cdk_out=write_assembly(tmp_path, {f"mlloop-{stage}-vpce": {"Resources": {"ViaEndpoint": policy}}})
    )
    _allow(
        local_cloud,
        role,
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*", "Condition": unknown},
    )

    code = _error(lambda: _as(local_cloud, role, "s3").get_object(Bucket=bucket, Key="data/present.txt"))[0]

    assert "condition key aws:SourceVpce" in str(deployment.report)
    assert code == "AccessDenied"
    reasons = fidelity.report()["principals"][role.rsplit("/", 1)[-1]]["not_evaluable_reasons"]
    assert "condition key aws:SourceVpce" in reasons


@pytest.mark.parametrize("signature_version", ["s3", "s3v4"])
def test_presigned_urls_are_verified_and_expire(local_cloud: LocalCloud, bucket: str, signature_version: str) -> None:
    s3 = _client(local_cloud, "s3", config=Config(signature_version=signature_version))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "data/present.txt"}, ExpiresIn=60)
    tampered = url.replace("present", "missing")
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10)
    with (
        mock.patch("botocore.auth.get_current_datetime", return_value=past),
        mock.patch("time.time", return_value=past.timestamp()),
    ):
        expired = s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "data/present.txt"}, ExpiresIn=60
        )

    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"hello"
    for refused, code in ((tampered, b"<Code>SignatureDoesNotMatch</Code>"), (expired, b"Request has expired")):
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(refused, timeout=30)
        assert raised.value.code == 403
        assert code in raised.value.read()


def test_a_compressed_put_metric_data_is_identified_and_authorised(local_cloud: LocalCloud, role: str) -> None:
    # SDKs gzip PutMetricData bodies above a size (the operation's requestcompression trait; boto3's default is
    # 10 KiB), as the Lambda runtime's botocore does in the query protocol: the request path must read what the
    # service reads, not refuse it as an unknown operation.
    _allow(local_cloud, role, {"Effect": "Allow", "Action": "cloudwatch:PutMetricData", "Resource": "*"})
    keys = identity.role_credentials(role, "tester", region=local_cloud.region)
    form = "Action=PutMetricData&Version=2010-08-01&Namespace=Authz%2FCompressed&MetricData.member.1.MetricName=m"
    body = gzip.compress((form + "&MetricData.member.1.Value=1").encode())
    request = AWSRequest(
        method="POST",
        url=local_cloud.endpoint_url + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8", "Content-Encoding": "gzip"},
    )
    SigV4Auth(
        Credentials(keys.access_key_id, keys.secret_access_key, keys.session_token), "monitoring", "us-east-1"
    ).add_auth(request)

    with urllib.request.urlopen(
        urllib.request.Request(request.url, data=body, headers=dict(request.headers), method="POST"), timeout=10
    ) as answer:
        assert answer.status == 200

    listed = local_cloud.client("cloudwatch").list_metrics(Namespace="Authz/Compressed")["Metrics"]
    assert [m["MetricName"] for m in listed] == ["m"]
