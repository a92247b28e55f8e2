"""The local cloud refuses requests that break their operation's service model, with AWS's ValidationException."""

from __future__ import annotations

import uuid
from typing import Any

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from mlloop.localcloud import LocalCloud, fidelity
from mlloop.localcloud.request_validation import _compiled, refused_requests, validation_errors, validation_message

SAGEMAKER = botocore.session.get_session().get_service_model("sagemaker")
METADATA_PATTERN = r"([\p{L}\p{Z}\p{N}_.:\/=+\-@]*)${1,256}"


def _unchecked(cloud: LocalCloud, service: str) -> Any:
    """A client that skips botocore's own checks, as raw HTTP or another SDK would."""
    return cloud.session.client(service, endpoint_url=cloud.endpoint_url, config=Config(parameter_validation=False))


@pytest.fixture(scope="module")
def package_arn(local_cloud: LocalCloud) -> str:
    sm = local_cloud.client("sagemaker")
    group = f"validation-{uuid.uuid4().hex[:8]}"
    sm.create_model_package_group(ModelPackageGroupName=group)
    return str(
        sm.create_model_package(
            ModelPackageGroupName=group,
            InferenceSpecification={
                "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sklearn:1"}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
        )["ModelPackageArn"]
    )


def test_a_metadata_value_outside_the_apis_pattern_is_refused_with_aws_text(
    local_cloud: LocalCloud, package_arn: str
) -> None:
    sm = local_cloud.client("sagemaker")
    detail = "the endpoint runs x, not the target y: SageMaker rolled the deploy back (a rollback alarm fired)"

    with pytest.raises(ClientError) as refused:
        sm.update_model_package(ModelPackageArn=package_arn, CustomerMetadataProperties={"deployment_detail": detail})

    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert refused.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": f"1 validation error detected: Value '{{deployment_detail={detail}}}' at "
        "'customerMetadataProperties' failed to satisfy constraint: Map value must satisfy constraint: "
        f"[Member must satisfy regular expression pattern: {METADATA_PATTERN}]",
    }
    meta = sm.describe_model_package(ModelPackageName=package_arn).get("CustomerMetadataProperties") or {}
    assert "deployment_detail" not in meta
    assert refused_requests()["sagemaker:UpdateModelPackage"] >= 1


def test_a_valid_request_passes_and_is_counted(local_cloud: LocalCloud, package_arn: str) -> None:
    before = fidelity.report()["validated"].get("sagemaker:UpdateModelPackage", 0)
    local_cloud.client("sagemaker").update_model_package(
        ModelPackageArn=package_arn, CustomerMetadataProperties={"deployment_detail": "rolled back: alarm x_5xx"}
    )
    assert fidelity.report()["validated"]["sagemaker:UpdateModelPackage"] == before + 1


def test_missing_members_lengths_enums_and_ranges_are_refused_server_side(local_cloud: LocalCloud) -> None:
    sm = _unchecked(local_cloud, "sagemaker")
    with pytest.raises(ClientError) as refused:
        sm.create_endpoint_config(
            EndpointConfigName="x" * 64,
            ProductionVariants=[
                {"VariantName": "live", "ModelName": "m", "InstanceType": "ml.bogus", "InitialInstanceCount": 0}
            ],
        )
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert error["Message"].startswith("4 validation errors detected: ")  # the name breaks its pattern too
    assert (
        f"Value '{'x' * 64}' at 'endpointConfigName' failed to satisfy constraint: Member must have length "
        in (error["Message"])
    )
    assert (
        "at 'productionVariants.1.member.instanceType' failed to satisfy constraint: Member must satisfy enum"
        in (error["Message"])
    )
    assert (
        "Value '0' at 'productionVariants.1.member.initialInstanceCount' failed to satisfy constraint: "
        "Member must have value greater than or equal to 1" in error["Message"]
    )

    with pytest.raises(ClientError, match="Value null at 'endpointName' failed to satisfy constraint: Member must"):
        sm.describe_endpoint()


def test_query_protocol_services_answer_validation_error(local_cloud: LocalCloud) -> None:
    with pytest.raises(ClientError) as refused:
        local_cloud.client("iam").create_role(RoleName="no spaces allowed", AssumeRolePolicyDocument="{}")
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert (
        "at 'roleName' failed to satisfy constraint: Member must satisfy regular expression pattern"
        in (refused.value.response["Error"]["Message"])
    )


def test_a_value_of_the_wrong_type_is_a_serialization_exception(local_cloud: LocalCloud) -> None:
    with pytest.raises(ClientError) as refused:
        _unchecked(local_cloud, "sagemaker").describe_endpoint(EndpointName=["not", "a", "string"])
    assert refused.value.response["Error"]["Code"] == "SerializationException"


@pytest.mark.parametrize(
    ("datum", "parameter", "shown"),
    [
        ({"Value": float("inf")}, "MetricData.member.1.Value", "Infinity"),
        ({"Value": -(2.0**361)}, "MetricData.member.1.Value", repr(-(2.0**361))),
        ({"Values": [1.0, float("-inf")], "Counts": [1, 1]}, "MetricData.member.1.Values", "-Infinity"),
        (
            {"StatisticValues": {"SampleCount": 1, "Sum": float("inf"), "Minimum": 0, "Maximum": 1}},
            "MetricData.member.1.StatisticValues.Sum",
            "Infinity",
        ),
    ],
)
def test_metric_values_cloudwatch_does_not_support_are_refused(
    local_cloud: LocalCloud, datum: dict[str, object], parameter: str, shown: str
) -> None:
    """AWS: values outside -2^360..2^360 and NaN/+Infinity/-Infinity are rejected (MetricDatum.Value)."""
    cloudwatch = local_cloud.client("cloudwatch")
    with pytest.raises(ClientError) as refused:
        cloudwatch.put_metric_data(Namespace="mlloop/test", MetricData=[{"MetricName": "m", **datum}])
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert refused.value.response["Error"]["Message"] == f"The value {shown} for parameter {parameter} is invalid."
    cloudwatch.put_metric_data(Namespace="mlloop/test", MetricData=[{"MetricName": "m", "Value": 2.0**359}])


def test_messages_follow_aws_wording_for_several_errors() -> None:
    operation = SAGEMAKER.operation_model("UpdateEndpoint")
    errors = validation_errors(operation, {"EndpointName": "bad name!"})
    assert validation_message(errors) == (
        "2 validation errors detected: Value null at 'endpointConfigName' failed to satisfy constraint: "
        "Member must not be null; Value 'bad name!' at 'endpointName' failed to satisfy constraint: "
        "Member must satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
    )


@pytest.mark.parametrize(
    "service",
    [
        "sagemaker",
        "sagemaker-runtime",
        "lambda",
        "sns",
        "sqs",
        "events",
        "stepfunctions",
        "logs",
        "kms",
        "dynamodb",
        "iam",
        "sts",
        "ssm",
        "glue",
        "apigateway",
        "cloudwatch",
    ],
)
def test_every_pattern_of_the_services_the_stacks_use_is_applied(service: str) -> None:
    model = botocore.session.get_session().get_service_model(service)
    patterns = {model.shape_for(n).metadata.get("pattern") for n in model.shape_names} - {None}
    assert [p for p in patterns if _compiled(p) is None] == []


def test_a_java_dot_stops_at_any_line_terminator() -> None:
    operation = SAGEMAKER.operation_model("UpdateModelPackage")
    arn = "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1"
    for text in ("rolled back\nalarm", "rolled back\ralarm", "rolled back\u2028alarm"):
        errors = validation_errors(operation, {"ModelPackageArn": arn, "ApprovalDescription": text})
        assert [e.split("constraint: ", 1)[1] for e in errors] == ["Member must satisfy regular expression pattern: .*"]
    assert validation_errors(operation, {"ModelPackageArn": arn, "ApprovalDescription": "rolled back: alarm"}) == []
