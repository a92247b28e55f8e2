"""IAM actions, resource ARNs and condition keys of the operations the loop calls.

From the Service Authorization Reference ("Actions, resources, and condition keys for <service>"): most
actions carry the operation's name; the exceptions (S3's ListObjectsV2 is s3:ListBucket, HeadObject is
s3:GetObject, Lambda's Invoke is lambda:InvokeFunction, ...) are listed here. An operation whose action has no
resource-level permissions is checked against "*". iam:PassRole is checked where a role is handed to a
service (CreateTrainingJob, CreateModel, CreateFunction, CreateStateMachine, PutTargets with RoleArn).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from mlloop.localcloud.authz.operations import Operation
from mlloop.localcloud.authz.resources import kms_key_arn


@dataclass
class Check:
    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)


_PREFIX = {
    "stepfunctions": "states",
    "sagemaker-runtime": "sagemaker",
    "cloudwatch": "cloudwatch",
}
_S3_ACTIONS = {
    "ListObjectsV2": "ListBucket",
    "ListObjects": "ListBucket",
    "HeadBucket": "ListBucket",
    "ListObjectVersions": "ListBucketVersions",
    "HeadObject": "GetObject",
    "ListBuckets": "ListAllMyBuckets",
    "PutBucketNotificationConfiguration": "PutBucketNotification",
    "GetBucketNotificationConfiguration": "GetBucketNotification",
    "CopyObject": "PutObject",
    "UploadPartCopy": "PutObject",
    "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject",
    "CompleteMultipartUpload": "PutObject",
    "ListMultipartUploads": "ListBucketMultipartUploads",
    "ListParts": "ListMultipartUploadParts",
    "PutBucketEncryption": "PutEncryptionConfiguration",
    "GetBucketEncryption": "GetEncryptionConfiguration",
    "DeleteObjects": "DeleteObject",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
    "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutPublicAccessBlock": "PutBucketPublicAccessBlock",
    "GetPublicAccessBlock": "GetBucketPublicAccessBlock",
    "PutBucketOwnershipControls": "PutBucketOwnershipControls",
}
_ACTION_NAMES = {
    ("lambda", "Invoke"): "InvokeFunction",
    ("lambda", "InvokeAsync"): "InvokeFunction",
    ("sagemaker-runtime", "InvokeEndpoint"): "InvokeEndpoint",
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sns", "PublishBatch"): "Publish",
    ("dynamodb", "BatchGetItem"): "BatchGetItem",
}
_PASSED_TO = {
    ("sagemaker", "CreateTrainingJob"): ("RoleArn", "sagemaker.amazonaws.com"),
    ("sagemaker", "CreateModel"): ("ExecutionRoleArn", "sagemaker.amazonaws.com"),
    ("sagemaker", "CreateProcessingJob"): ("RoleArn", "sagemaker.amazonaws.com"),
    ("sagemaker", "CreateTransformJob"): ("RoleArn", "sagemaker.amazonaws.com"),
    ("lambda", "CreateFunction"): ("Role", "lambda.amazonaws.com"),
    ("lambda", "UpdateFunctionConfiguration"): ("Role", "lambda.amazonaws.com"),
    ("stepfunctions", "CreateStateMachine"): ("roleArn", "states.amazonaws.com"),
    ("stepfunctions", "UpdateStateMachine"): ("roleArn", "states.amazonaws.com"),
}


def checks(operation: Operation, *, account: str, region: str) -> list[Check]:
    """The authorisation checks of one call, in the order AWS reports the first failure."""
    service, name, params = operation.service, operation.name, operation.params
    if service == "s3":
        found = _s3(name, params, account)
    else:
        prefix = _PREFIX.get(service, service)
        action = f"{prefix}:{_ACTION_NAMES.get((service, name), name)}"
        resolver = _RESOURCES.get(service)
        resource = resolver(name, params, account, region) if resolver else "*"
        context: dict[str, Any] = {}
        if service == "cloudwatch" and "Namespace" in params:
            context["cloudwatch:namespace"] = params["Namespace"]
        if service == "kms":
            context["kms:CallerAccount"] = account
        found = [Check(action, resource, context)]
    passed = _PASSED_TO.get((service, name))
    if passed and params.get(passed[0]):
        found.append(Check("iam:PassRole", str(params[passed[0]]), {"iam:PassedToService": passed[1]}))
    if service == "events" and name == "PutTargets":
        for target in params.get("Targets", []):
            if target.get("RoleArn"):
                found.append(Check("iam:PassRole", target["RoleArn"], {"iam:PassedToService": "events.amazonaws.com"}))
    return found


def _s3(name: str, params: dict[str, Any], account: str) -> list[Check]:
    action = "s3:" + _S3_ACTIONS.get(name, name)
    bucket = params.get("Bucket", "")
    key = params.get("Key")
    if name == "ListBuckets" or not bucket:
        return [Check(action, "*")]
    if name in ("GetObject", "HeadObject") and params.get("VersionId"):
        action = "s3:GetObjectVersion"
    if name == "DeleteObjects":
        return [Check(action, f"arn:aws:s3:::{bucket}/*")]
    if key is not None:
        checks = [Check(action, f"arn:aws:s3:::{bucket}/{key}")]
        if name in ("CopyObject", "UploadPartCopy") and params.get("CopySource"):
            source, _, version = unquote(str(params["CopySource"])).lstrip("/").partition("?versionId=")
            read = "s3:GetObjectVersion" if version else "s3:GetObject"
            checks.insert(0, Check(read, f"arn:aws:s3:::{source}"))
        return checks
    context: dict[str, Any] = {}
    if action in ("s3:ListBucket", "s3:ListBucketVersions"):
        context["s3:prefix"] = params.get("Prefix", "")
        if "Delimiter" in params:
            context["s3:delimiter"] = params["Delimiter"]
    return [Check(action, f"arn:aws:s3:::{bucket}", context)]


def _arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:aws:{service}:{region}:{account}:{resource}"


def _named(value: Any, service: str, region: str, account: str, kind: str, *, lower: bool = False) -> str:
    text = str(value)
    if text.startswith("arn:"):
        return text
    return _arn(service, region, account, f"{kind}/{text.lower() if lower else text}")


# SageMaker ARNs carry resource names in lower case (SageMaker Developer Guide, "Amazon Resource Names").
_SAGEMAKER_NAMES = (
    ("TrainingJobName", "training-job"),
    ("EndpointConfigName", "endpoint-config"),
    ("EndpointName", "endpoint"),
    ("ModelName", "model"),
    ("ModelPackageGroupName", "model-package-group"),
    ("ProcessingJobName", "processing-job"),
    ("TransformJobName", "transform-job"),
)


def _sagemaker(name: str, params: dict[str, Any], account: str, region: str) -> str:
    if name in (
        "ListModelPackages",
        "ListEndpoints",
        "ListTrainingJobs",
        "Search",
        "ListModels",
        "ListEndpointConfigs",
    ):
        return "*"
    if name in {"AddTags", "ListTags", "DeleteTags"}:
        return str(params.get("ResourceArn", "*"))
    package = params.get("ModelPackageArn") or params.get("ModelPackageName")
    if package:
        value = str(package)
        return (
            value if value.startswith("arn:") else _arn("sagemaker", region, account, f"model-package/{value.lower()}")
        )
    if name == "CreateModelPackage" and params.get("ModelPackageGroupName"):
        group = str(params["ModelPackageGroupName"]).split("/")[-1].lower()
        return _arn("sagemaker", region, account, f"model-package/{group}/*")
    ordered: tuple[tuple[str, str], ...] = _SAGEMAKER_NAMES
    if "Endpoint" in name and "Config" not in name:
        ordered = tuple(sorted(ordered, key=lambda kv: kv[0] != "EndpointName"))
    for param, kind in ordered:
        if param in params:
            return _named(params[param], "sagemaker", region, account, kind, lower=True)
    return "*"


def _sagemaker_runtime(name: str, params: dict[str, Any], account: str, region: str) -> str:
    return _named(params.get("EndpointName", "*"), "sagemaker", region, account, "endpoint", lower=True)


def _states(name: str, params: dict[str, Any], account: str, region: str) -> str:
    for key in ("executionArn", "stateMachineArn", "activityArn", "mapRunArn"):
        if key in params:
            return str(params[key])
    if name in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat", "ListStateMachines", "ListActivities"):
        return "*"
    if name == "CreateStateMachine":
        return _arn("states", region, account, f"stateMachine:{params.get('name', '*')}")
    return "*"


def _sns(name: str, params: dict[str, Any], account: str, region: str) -> str:
    if "TopicArn" in params:
        return str(params["TopicArn"])
    if name == "CreateTopic":
        return _arn("sns", region, account, str(params.get("Name", "*")))
    if "SubscriptionArn" in params:
        return str(params["SubscriptionArn"]).rsplit(":", 1)[0]
    return "*"


def _sqs(name: str, params: dict[str, Any], account: str, region: str) -> str:
    url = params.get("QueueUrl")
    if url:
        return _arn("sqs", region, account, str(url).rstrip("/").rsplit("/", 1)[-1])
    if "QueueName" in params:
        return _arn("sqs", region, account, str(params["QueueName"]))
    return "*"


def _events(name: str, params: dict[str, Any], account: str, region: str) -> str:
    if name == "PutEvents":
        buses = {str(e.get("EventBusName") or "default") for e in params.get("Entries", [])} or {"default"}
        bus = sorted(buses)[0]
        return bus if bus.startswith("arn:") else _arn("events", region, account, f"event-bus/{bus}")
    if "Rule" in params or ("Name" in params and "Rule" in name):
        rule = params.get("Rule") or params.get("Name")
        return _arn("events", region, account, f"rule/{rule}")
    return "*"


def _lambda(name: str, params: dict[str, Any], account: str, region: str) -> str:
    function = params.get("FunctionName")
    if not function:
        return "*"
    text = str(function)
    if not text.startswith("arn:"):
        qualifier = f":{params['Qualifier']}" if params.get("Qualifier") else ""
        text = _arn("lambda", region, account, f"function:{text}{qualifier}")
    return text


def _cloudwatch(name: str, params: dict[str, Any], account: str, region: str) -> str:
    if name in ("PutMetricAlarm", "SetAlarmState", "DescribeAlarmHistory") and "AlarmName" in params:
        return _arn("cloudwatch", region, account, f"alarm:{params['AlarmName']}")
    return "*"


def _logs(name: str, params: dict[str, Any], account: str, region: str) -> str:
    group = params.get("logGroupName")
    if not group:
        return "*"
    if "logStreamName" in params:
        return _arn("logs", region, account, f"log-group:{group}:log-stream:{params['logStreamName']}")
    return _arn("logs", region, account, f"log-group:{group}:*")


def _kms(name: str, params: dict[str, Any], account: str, region: str) -> str:
    key = params.get("KeyId") or params.get("SourceKeyId")
    return kms_key_arn(str(key), account, region) if key else "*"


def _dynamodb(name: str, params: dict[str, Any], account: str, region: str) -> str:
    table = params.get("TableName")
    if not table and name in ("BatchGetItem", "BatchWriteItem"):
        table = sorted(params.get("RequestItems", {}) or [""])[0]
    return _arn("dynamodb", region, account, f"table/{table}") if table else "*"


def _ssm(name: str, params: dict[str, Any], account: str, region: str) -> str:
    parameter = params.get("Name")
    return _arn("ssm", region, account, f"parameter/{str(parameter).lstrip('/')}") if parameter else "*"


def _iam(name: str, params: dict[str, Any], account: str, region: str) -> str:
    if "RoleName" in params:
        return f"arn:aws:iam::{account}:role/{params['RoleName']}"
    return "*"


def _sts(name: str, params: dict[str, Any], account: str, region: str) -> str:
    return str(params.get("RoleArn", "*"))


def _ecr(name: str, params: dict[str, Any], account: str, region: str) -> str:
    repository = params.get("repositoryName")
    registry = params.get("registryId") or account
    return _arn("ecr", region, registry, f"repository/{repository}") if repository else "*"


_RESOURCES: dict[str, Callable[[str, dict[str, Any], str, str], str]] = {
    "sagemaker": _sagemaker,
    "sagemaker-runtime": _sagemaker_runtime,
    "stepfunctions": _states,
    "sns": _sns,
    "sqs": _sqs,
    "events": _events,
    "lambda": _lambda,
    "cloudwatch": _cloudwatch,
    "logs": _logs,
    "kms": _kms,
    "dynamodb": _dynamodb,
    "ssm": _ssm,
    "iam": _iam,
    "sts": _sts,
    "ecr": _ecr,
}
