"""Deploy a stage's synthesized stacks (cdk.out) into the local cloud, resource by resource through boto3.

The templates are the source of truth: every name, ARN, environment variable, pattern and definition
comes from resolving the template's intrinsics against what was created before it. Whatever cannot be
emulated is listed in the deployment report, never skipped silently.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlloop import assembly
from mlloop.localcloud import apigateway, images
from mlloop.localcloud.authz.policy import unevaluable
from mlloop.localcloud.authz.resources import attach_aws_managed_policy
from mlloop.localcloud.intrinsics import Resolver, TemplateError, references
from mlloop.localcloud.resources import CloudServices, Creator, generated_name, name_suffix

LOG = logging.getLogger("mlloop.localcloud")


class DeployError(RuntimeError):
    """A resource could not be created; the message names the stack, the logical id and the cause."""


@dataclass(frozen=True)
class ReportEntry:
    stack: str
    logical_id: str
    resource_type: str
    status: str  # "not emulated", "partly emulated" or "emulated differently"
    reason: str


@dataclass
class DeploymentReport:
    """What the local deployment could not reproduce exactly, resource by resource."""

    entries: list[ReportEntry] = field(default_factory=list)

    def add(self, stack: str, logical_id: str, resource_type: str, status: str, reason: str) -> None:
        self.entries.append(ReportEntry(stack, logical_id, resource_type, status, reason))

    def for_type(self, resource_type: str) -> list[ReportEntry]:
        return [entry for entry in self.entries if entry.resource_type == resource_type]

    def __str__(self) -> str:
        if not self.entries:
            return "every resource emulated"
        lines = [f"{len(self.entries)} resource(s) not emulated exactly:"]
        lines += [f"  [{e.status}] {e.stack}/{e.logical_id} ({e.resource_type}): {e.reason}" for e in self.entries]
        return "\n".join(lines)


@dataclass
class DeployedResource:
    stack: str
    logical_id: str
    resource_type: str
    path: str
    physical_id: Any
    attributes: dict[str, Any]
    properties: dict[str, Any]


@dataclass
class Deployment:
    """A deployed stage: its resources by stack and logical id, the exports and the report."""

    stage: str
    region: str
    account_id: str
    resources: dict[str, dict[str, DeployedResource]] = field(default_factory=dict)
    exports: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    report: DeploymentReport = field(default_factory=DeploymentReport)
    seconds: float = 0.0

    @property
    def stack_names(self) -> list[str]:
        return list(self.resources)

    def resource(self, name: str) -> DeployedResource:
        """A resource by logical id, `stack/logical id`, or construct path (`stack/Construct/Resource` or a suffix)."""
        matches = [r for r in self._all() if name in (r.logical_id, f"{r.stack}/{r.logical_id}", r.path)]
        if not matches:
            matches = [r for r in self._all() if r.path in (f"{name}/Resource", f"{name}/Default")]
        if not matches:
            matches = [r for r in self._all() if r.path.endswith(f"/{name}/Resource") or r.path.endswith(f"/{name}")]
        if len(matches) != 1:
            found = ", ".join(f"{r.stack}/{r.logical_id}" for r in matches) or "nothing"
            raise KeyError(f"{name!r} matches {found} in stage {self.stage}")
        return matches[0]

    def physical_id(self, name: str) -> Any:
        """The physical id (Ref value) of a resource named by logical id or construct path."""
        return self.resource(name).physical_id

    def attribute(self, name: str, attribute: str) -> Any:
        return self.resource(name).attributes[attribute]

    def of_type(self, resource_type: str) -> list[DeployedResource]:
        return [r for r in self._all() if r.resource_type == resource_type]

    def _all(self) -> Iterable[DeployedResource]:
        for by_id in self.resources.values():
            yield from by_id.values()


def _lower_first(node: Any) -> Any:
    """CloudFormation's PascalCase property shapes -> the camelCase request shapes of some APIs."""
    if isinstance(node, dict):
        return {key[:1].lower() + key[1:]: _lower_first(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_lower_first(item) for item in node]
    return node


def _tags(properties: dict[str, Any]) -> list[dict[str, str]]:
    tags = properties.get("Tags") or []
    if isinstance(tags, dict):
        return [{"Key": k, "Value": str(v)} for k, v in tags.items()]
    return [{"Key": t["Key"], "Value": str(t["Value"])} for t in tags]


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class StackDeployer:
    """Creates one stack's resources in dependency order."""

    def __init__(
        self, cloud: CloudServices, deployment: Deployment, stack: str, template: dict[str, Any], cdk_out: Path
    ):
        self.cloud = cloud
        self.deployment = deployment
        self.stack = stack
        self.template = template
        self.cdk_out = cdk_out
        self.region = deployment.region
        self.account = deployment.account_id
        self.deployed: dict[str, DeployedResource] = {}
        deployment.resources[stack] = self.deployed
        self.definitions: dict[str, dict[str, Any]] = template.get("Resources", {})
        self.stack_id = (
            f"arn:aws:cloudformation:{self.region}:{self.account}:stack/{stack}/{name_suffix(stack).lower()}"
        )
        self.resolver = Resolver(
            pseudo={
                "AWS::AccountId": self.account,
                "AWS::Region": self.region,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::StackName": stack,
                "AWS::StackId": self.stack_id,
                "AWS::NotificationARNs": [],  # type: ignore[dict-item]
            },
            parameters=self._parameters(),
            conditions=template.get("Conditions", {}),
            mappings=template.get("Mappings", {}),
            exports=deployment.exports,
            ref=self._ref,
            get_att=self._get_att,
        )
        self.custom_resource_providers = self._custom_resource_providers()
        self.asset_paths: dict[str, Path] = {}
        self.functions_not_created: set[str] = set()
        self.paths = _construct_paths(cdk_out, stack)

    def client(self, service: str) -> Any:
        return self.cloud.client(service, self.region)

    def _parameters(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, definition in self.template.get("Parameters", {}).items():
            if "Default" not in definition:
                raise TemplateError(f"{self.stack}: parameter {name!r} has no default and nothing supplies it")
            default = definition["Default"]
            if str(definition.get("Type", "")).startswith("AWS::SSM::Parameter::Value"):
                # The CDK bootstrap version lives in SSM in a real account; the local cloud is "bootstrapped".
                values[name] = "30" if "cdk-bootstrap" in str(default) else self._ssm_value(str(default))
            else:
                values[name] = default
        return values

    def _ssm_value(self, name: str) -> str:
        return str(self.client("ssm").get_parameter(Name=name)["Parameter"]["Value"])

    def _custom_resource_providers(self) -> set[str]:
        """Lambda functions that only serve CDK custom resources (their effect is emulated or reported)."""
        providers: set[str] = set()
        for definition in self.definitions.values():
            if definition.get("Type", "").startswith("Custom::") or definition.get("Type") == (
                "AWS::CloudFormation::CustomResource"
            ):
                token = definition.get("Properties", {}).get("ServiceToken")
                providers |= references(token)
        return {p for p in providers if self.definitions.get(p, {}).get("Type") == "AWS::Lambda::Function"}

    # ------------------------------------------------------------------ references
    def _ref(self, logical_id: str) -> Any:
        if logical_id not in self.deployed:
            raise TemplateError(f"{self.stack}: Ref to {logical_id!r}, which is not deployed (yet)")
        return self.deployed[logical_id].physical_id

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        if logical_id not in self.deployed:
            raise TemplateError(f"{self.stack}: GetAtt {logical_id}.{attribute}: resource not deployed (yet)")
        resource = self.deployed[logical_id]
        if attribute not in resource.attributes:
            raise TemplateError(
                f"{self.stack}: GetAtt {logical_id}.{attribute}: the local cloud does not provide this attribute of "
                f"{resource.resource_type} (it has {sorted(resource.attributes)})"
            )
        return resource.attributes[attribute]

    # ------------------------------------------------------------------ ordering
    def order(self) -> list[str]:
        dependencies: dict[str, set[str]] = {}
        for logical_id, definition in self.definitions.items():
            depends_on = definition.get("DependsOn", [])
            depends = set([depends_on] if isinstance(depends_on, str) else depends_on)
            depends |= references(definition.get("Properties", {}))
            dependencies[logical_id] = {d for d in depends if d in self.definitions and d != logical_id}
        ordered: list[str] = []
        done: set[str] = set()
        visiting: set[str] = set()

        def visit(logical_id: str) -> None:
            if logical_id in done:
                return
            if logical_id in visiting:
                raise TemplateError(f"{self.stack}: circular dependency through {logical_id}")
            visiting.add(logical_id)
            for dependency in sorted(dependencies[logical_id]):
                visit(dependency)
            visiting.discard(logical_id)
            done.add(logical_id)
            ordered.append(logical_id)

        for logical_id in self.definitions:
            visit(logical_id)
        return ordered

    # ------------------------------------------------------------------ deploy
    def deploy(self) -> None:
        self._upload_assets()
        for logical_id in self.order():
            definition = self.definitions[logical_id]
            resource_type = definition["Type"]
            if "Condition" in definition and not self.resolver.condition(definition["Condition"]):
                continue
            if resource_type == "AWS::CDK::Metadata":
                continue
            path = self.paths.get(logical_id) or definition.get("Metadata", {}).get("aws:cdk:path", "")
            try:
                properties = self.resolver.resolve(definition.get("Properties", {}))
                create = _CREATORS.get(resource_type)
                if create is None:
                    physical_id, attributes = self._not_emulated(logical_id, resource_type, properties)
                else:
                    physical_id, attributes = create(self, logical_id, properties)
                self._report_unevaluable_policies(logical_id, resource_type, properties)
            except Exception as exc:
                raise DeployError(f"{self.stack}/{logical_id} ({resource_type}): {exc}") from exc
            self.deployed[logical_id] = DeployedResource(
                self.stack, logical_id, resource_type, path, physical_id, attributes, properties
            )
        self._outputs()

    def _outputs(self) -> None:
        values: dict[str, Any] = {}
        for name, output in self.template.get("Outputs", {}).items():
            if "Condition" in output and not self.resolver.condition(output["Condition"]):
                continue
            value = self.resolver.resolve(output["Value"])
            values[name] = value
            if "Export" in output:
                self.deployment.exports[self.resolver.resolve(output["Export"]["Name"])] = value
        self.deployment.outputs[self.stack] = values

    def _report_unevaluable_policies(self, logical_id: str, resource_type: str, properties: dict[str, Any]) -> None:
        """Condition keys, operators or principals the local IAM evaluator cannot evaluate (treated as unmet)."""
        documents = [properties.get("PolicyDocument"), properties.get("KeyPolicy")]
        documents += [policy.get("PolicyDocument") for policy in properties.get("Policies", [])]
        found = sorted({item for document in documents if isinstance(document, dict) for item in unevaluable(document)})
        if found:
            reason = f"not evaluable locally, so treated as unmet: {', '.join(found)}"
            self.report(logical_id, resource_type, "partly emulated", reason)

    def report(self, logical_id: str, resource_type: str, status: str, reason: str) -> None:
        self.deployment.report.add(self.stack, logical_id, resource_type, status, reason)

    def _not_emulated(
        self, logical_id: str, resource_type: str, properties: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        self.report(logical_id, resource_type, "not emulated", "no local implementation; nothing was created")
        name = properties.get("Name") or generated_name(self.stack, logical_id)
        arn = f"arn:aws:localcloud:{self.region}:{self.account}:not-emulated/{logical_id}"
        return name, {"Arn": arn, "Id": name, "Name": name}

    # ------------------------------------------------------------------ assets
    def _upload_assets(self) -> None:
        """Publish file assets to the bucket the template names, as `cdk deploy` does after bootstrap."""
        manifest_path = self.cdk_out / f"{self.stack}.assets.json"
        if not manifest_path.exists():
            return
        manifest = json.loads(manifest_path.read_text())
        s3 = self.client("s3")
        for asset_id, asset in manifest.get("files", {}).items():
            source = self.cdk_out / asset["source"]["path"]
            if source.name.endswith(".template.json") or not source.exists():
                continue
            body = _zip_directory(source) if asset["source"].get("packaging") == "zip" and source.is_dir() else None
            for destination in asset["destinations"].values():
                bucket = self.resolver.sub(destination["bucketName"], {})
                key = destination["objectKey"]
                self._ensure_bucket(bucket)
                if body is not None:
                    s3.put_object(Bucket=bucket, Key=key, Body=body)
                else:
                    s3.put_object(Bucket=bucket, Key=key, Body=source.read_bytes())
            self.asset_paths[asset_id] = source
        for image_id in manifest.get("dockerImages", {}):
            self.report(image_id, "Docker image asset", "not emulated", "no Docker here: images are not built")

    def _ensure_bucket(self, bucket: str) -> None:
        s3 = self.client("s3")
        try:
            s3.head_bucket(Bucket=bucket)
        except s3.exceptions.ClientError:
            self._create_bucket(bucket)

    def _create_bucket(self, bucket: str) -> None:
        kwargs: dict[str, Any] = {"Bucket": bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.client("s3").create_bucket(**kwargs)


def _construct_paths(cdk_out: Path, stack: str) -> dict[str, str]:
    """Logical id -> construct path (without the leading slash), from the stack's metadata file."""
    metadata_file = cdk_out / f"{stack}.metadata.json"
    if not metadata_file.exists():
        return {}
    paths: dict[str, str] = {}
    for path, entries in json.loads(metadata_file.read_text()).items():
        for entry in entries:
            if entry.get("type") == "aws:cdk:logicalId":
                paths[str(entry["data"])] = path.lstrip("/")
    return paths


def _zip_directory(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory).as_posix())
    return buffer.getvalue()


# ====================================================================== resource creators
_CREATORS: dict[str, Creator] = dict(apigateway.CREATORS)


def creates(*resource_types: str) -> Callable[[Creator], Creator]:
    def register(function: Creator) -> Creator:
        for resource_type in resource_types:
            _CREATORS[resource_type] = function
        return function

    return register


@creates("AWS::S3::Bucket")
def _bucket(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = p.get("BucketName") or generated_name(d.stack, logical_id, 63, lower=True)
    s3 = d.client("s3")
    d._create_bucket(name)
    if "VersioningConfiguration" in p:
        s3.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": p["VersioningConfiguration"]["Status"]}
        )
    if "BucketEncryption" in p:
        encryption_rules = p["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={"Rules": [_encryption_rule(r) for r in encryption_rules]},
        )
    if "PublicAccessBlockConfiguration" in p:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=p["PublicAccessBlockConfiguration"])
    if "OwnershipControls" in p:
        s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=p["OwnershipControls"])
    if "LifecycleConfiguration" in p:
        rules = [_lifecycle_rule(rule) for rule in p["LifecycleConfiguration"]["Rules"]]
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
        d.report(logical_id, "AWS::S3::Bucket", "partly emulated", "lifecycle rules are stored but never run")
    if "LoggingConfiguration" in p:
        logging_config = p["LoggingConfiguration"]
        d.report(
            logical_id,
            "AWS::S3::Bucket",
            "partly emulated",
            f"access logging to {logging_config.get('DestinationBucketName')} not applied (moto writes no logs)",
        )
    if "NotificationConfiguration" in p:
        _apply_notifications(d, name, p["NotificationConfiguration"])
    if p.get("Tags"):
        s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": _tags(p)})
    arn = f"arn:aws:s3:::{name}"
    return name, {
        "Arn": arn,
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{d.region}.amazonaws.com",
        "DualStackDomainName": f"{name}.s3.dualstack.{d.region}.amazonaws.com",
        "WebsiteURL": f"http://{name}.s3-website-{d.region}.amazonaws.com",
    }


def _encryption_rule(rule: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
    if "BucketKeyEnabled" in rule:
        result["BucketKeyEnabled"] = rule["BucketKeyEnabled"]
    return result


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule["Status"]}
    result["Filter"] = {"Prefix": rule.get("Prefix", "")}
    if "ExpirationInDays" in rule or "ExpiredObjectDeleteMarker" in rule:
        result["Expiration"] = (
            {"Days": rule["ExpirationInDays"]}
            if "ExpirationInDays" in rule
            else {"ExpiredObjectDeleteMarker": rule["ExpiredObjectDeleteMarker"]}
        )
    if "Transitions" in rule:
        result["Transitions"] = [
            {"Days": t["TransitionInDays"], "StorageClass": t["StorageClass"]} for t in rule["Transitions"]
        ]
    if "NoncurrentVersionExpiration" in rule:
        result["NoncurrentVersionExpiration"] = {
            "NoncurrentDays": rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
        }
    if "NoncurrentVersionTransitions" in rule:
        result["NoncurrentVersionTransitions"] = [
            {"NoncurrentDays": t["TransitionInDays"], "StorageClass": t["StorageClass"]}
            for t in rule["NoncurrentVersionTransitions"]
        ]
    if "AbortIncompleteMultipartUpload" in rule:
        result["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return result


def _apply_notifications(d: StackDeployer, bucket: str, configuration: dict[str, Any]) -> None:
    request: dict[str, Any] = {}
    if "EventBridgeConfiguration" in configuration:
        request["EventBridgeConfiguration"] = {}
    for kind in ("LambdaFunctionConfigurations", "QueueConfigurations", "TopicConfigurations"):
        if configuration.get(kind):
            request[kind] = configuration[kind]
    d.client("s3").put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=request)


@creates("AWS::S3::BucketPolicy")
def _bucket_policy(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    # Stored in moto and evaluated, conditions included, by the request path (authz/), not by moto.
    d.client("s3").put_bucket_policy(Bucket=p["Bucket"], Policy=json.dumps(p["PolicyDocument"]))
    return p["Bucket"], {}


@creates("Custom::S3BucketNotifications")
def _bucket_notifications(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    _apply_notifications(d, p["BucketName"], p["NotificationConfiguration"])
    return f"{p['BucketName']}-notifications", {}


@creates("Custom::S3AutoDeleteObjects")
def _auto_delete(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    # Its only effect is at stack deletion: the local cloud drops every object when it stops.
    return f"{p['BucketName']}-auto-delete", {}


@creates("AWS::KMS::Key")
def _kms_key(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    kms = d.client("kms")
    kwargs: dict[str, Any] = {"Policy": json.dumps(p["KeyPolicy"])} if "KeyPolicy" in p else {}
    for source, target in (("Description", "Description"), ("KeyUsage", "KeyUsage"), ("KeySpec", "KeySpec")):
        if source in p:
            kwargs[target] = p[source]
    if p.get("Tags"):
        kwargs["Tags"] = [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in _tags(p)]
    metadata = kms.create_key(**kwargs)["KeyMetadata"]
    if p.get("EnableKeyRotation"):
        kms.enable_key_rotation(KeyId=metadata["KeyId"])
    return metadata["KeyId"], {"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]}


@creates("AWS::KMS::Alias")
def _kms_alias(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    d.client("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=p["TargetKeyId"])
    return p["AliasName"], {}


@creates("AWS::SNS::Topic")
def _topic(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    sns = d.client("sns")
    name = p.get("TopicName") or generated_name(d.stack, logical_id, 256)
    attributes = {
        key: _attribute_text(p[key])
        for key in ("DisplayName", "KmsMasterKeyId", "FifoTopic", "ContentBasedDeduplication", "SignatureVersion")
        if key in p
    }
    kwargs: dict[str, Any] = {"Name": name, "Attributes": attributes}
    if p.get("Tags"):
        kwargs["Tags"] = _tags(p)
    arn = sns.create_topic(**kwargs)["TopicArn"]
    for subscription in p.get("Subscription", []):
        sns.subscribe(TopicArn=arn, Protocol=subscription["Protocol"], Endpoint=subscription["Endpoint"])
    return arn, {"TopicArn": arn, "TopicName": name}


@creates("AWS::SNS::Subscription")
def _subscription(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    attributes = {
        key: _attribute_text(p[key])
        for key in ("RawMessageDelivery", "FilterPolicy", "FilterPolicyScope", "RedrivePolicy", "DeliveryPolicy")
        if key in p
    }
    arn = d.client("sns").subscribe(
        TopicArn=p["TopicArn"], Protocol=p["Protocol"], Endpoint=p["Endpoint"], Attributes=attributes
    )["SubscriptionArn"]
    return arn, {"Arn": arn}


@creates("AWS::SNS::TopicPolicy")
def _topic_policy(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    for topic in p["Topics"]:
        d.client("sns").set_topic_attributes(
            TopicArn=topic, AttributeName="Policy", AttributeValue=json.dumps(p["PolicyDocument"])
        )
    return generated_name(d.stack, logical_id), {}


_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedrivePolicy",
    "RedriveAllowPolicy",
)


@creates("AWS::SQS::Queue")
def _queue(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    fifo = bool(p.get("FifoQueue"))
    name = p.get("QueueName") or generated_name(d.stack, logical_id, 75 if fifo else 80) + (".fifo" if fifo else "")
    attributes = {key: _attribute_text(p[key]) for key in _QUEUE_ATTRIBUTES if key in p}
    kwargs: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
    if p.get("Tags"):
        kwargs["tags"] = {t["Key"]: t["Value"] for t in _tags(p)}
    url = d.client("sqs").create_queue(**kwargs)["QueueUrl"]
    arn = f"arn:aws:sqs:{d.region}:{d.account}:{name}"
    return url, {"Arn": arn, "QueueName": name, "QueueUrl": url}


@creates("AWS::SQS::QueuePolicy")
def _queue_policy(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    for url in p["Queues"]:
        d.client("sqs").set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(p["PolicyDocument"])})
    return generated_name(d.stack, logical_id), {}


@creates("AWS::DynamoDB::Table")
def _table(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    dynamodb = d.client("dynamodb")
    name = p.get("TableName") or generated_name(d.stack, logical_id, 255)
    kwargs: dict[str, Any] = {
        "TableName": name,
        "KeySchema": p["KeySchema"],
        "AttributeDefinitions": p["AttributeDefinitions"],
        "BillingMode": p.get("BillingMode", "PROVISIONED"),
    }
    for key in (
        "ProvisionedThroughput",
        "GlobalSecondaryIndexes",
        "LocalSecondaryIndexes",
        "DeletionProtectionEnabled",
    ):
        if key in p:
            kwargs[key] = p[key]
    if "StreamSpecification" in p:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, **p["StreamSpecification"]}
    if "SSESpecification" in p:
        sse = p["SSESpecification"]
        kwargs["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled"))} | {
            key: sse[key] for key in ("SSEType", "KMSMasterKeyId") if key in sse
        }
    if p.get("Tags"):
        kwargs["Tags"] = _tags(p)
    description = dynamodb.create_table(**kwargs)["TableDescription"]
    ttl = p.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    if p.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        dynamodb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    attributes = {"Arn": description["TableArn"]}
    if "LatestStreamArn" in description:
        attributes["StreamArn"] = description["LatestStreamArn"]
    return name, attributes


@creates("AWS::IAM::Role")
def _role(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    iam = d.client("iam")
    name = p.get("RoleName") or generated_name(d.stack, logical_id, 64)
    kwargs: dict[str, Any] = {
        "RoleName": name,
        "AssumeRolePolicyDocument": json.dumps(p["AssumeRolePolicyDocument"]),
        "Path": p.get("Path", "/"),
    }
    if "Description" in p:
        kwargs["Description"] = p["Description"]
    if "MaxSessionDuration" in p:
        kwargs["MaxSessionDuration"] = int(p["MaxSessionDuration"])
    if p.get("Tags"):
        kwargs["Tags"] = _tags(p)
    role = iam.create_role(**kwargs)["Role"]
    for policy in p.get("Policies", []):
        iam.put_role_policy(
            RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"])
        )
    for policy_arn in p.get("ManagedPolicyArns", []):
        try:
            iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
        except iam.exceptions.ClientError as exc:
            # An AWS managed policy moto lacks: the request path uses the document kept in the repository.
            if not attach_aws_managed_policy(role["Arn"], policy_arn):
                reason = f"{policy_arn} not attached (its document is not kept locally, so it grants nothing): {exc}"
                d.report(logical_id, "AWS::IAM::Role", "partly emulated", reason)
    return name, {"Arn": role["Arn"], "RoleId": role["RoleId"]}


@creates("AWS::IAM::Policy")
def _policy(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    iam = d.client("iam")
    document = json.dumps(p["PolicyDocument"])
    for role in p.get("Roles", []):
        iam.put_role_policy(RoleName=role, PolicyName=p["PolicyName"], PolicyDocument=document)
    for user in p.get("Users", []):
        iam.put_user_policy(UserName=user, PolicyName=p["PolicyName"], PolicyDocument=document)
    for group in p.get("Groups", []):
        iam.put_group_policy(GroupName=group, PolicyName=p["PolicyName"], PolicyDocument=document)
    return p["PolicyName"], {}


@creates("AWS::IAM::ManagedPolicy")
def _managed_policy(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    iam = d.client("iam")
    name = p.get("ManagedPolicyName") or generated_name(d.stack, logical_id, 128)
    arn = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(p["PolicyDocument"]), Path=p.get("Path", "/"))[
        "Policy"
    ]["Arn"]
    for role in p.get("Roles", []):
        iam.attach_role_policy(RoleName=role, PolicyArn=arn)
    return arn, {"PolicyArn": arn}


_WAF_NOT_ENFORCED = "web ACL not enforced: the local API filters no request by rule or rate"


@creates("AWS::WAFv2::WebACL")
def _web_acl(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    d.report(logical_id, "AWS::WAFv2::WebACL", "not emulated", _WAF_NOT_ENFORCED)
    name = p.get("Name") or generated_name(d.stack, logical_id, 128)
    web_acl_id = name_suffix(d.stack, logical_id).lower()
    arn = f"arn:aws:wafv2:{d.region}:{d.account}:regional/webacl/{name}/{web_acl_id}"
    return f"{name}|{web_acl_id}|REGIONAL", {"Arn": arn, "Id": web_acl_id}


@creates("AWS::WAFv2::WebACLAssociation")
def _web_acl_association(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    d.report(logical_id, "AWS::WAFv2::WebACLAssociation", "not emulated", _WAF_NOT_ENFORCED)
    return f"{p.get('ResourceArn')}|{p.get('WebACLArn')}", {}


@creates("AWS::Logs::LogGroup")
def _log_group(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    logs = d.client("logs")
    name = p.get("LogGroupName") or generated_name(d.stack, logical_id, 512)
    kwargs: dict[str, Any] = {"logGroupName": name}
    if "KmsKeyId" in p:
        kwargs["kmsKeyId"] = p["KmsKeyId"]
    if p.get("Tags"):
        kwargs["tags"] = {t["Key"]: t["Value"] for t in _tags(p)}
    logs.create_log_group(**kwargs)
    if "RetentionInDays" in p:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(p["RetentionInDays"]))
    return name, {"Arn": f"arn:aws:logs:{d.region}:{d.account}:log-group:{name}:*"}


@creates("AWS::Lambda::Function")
def _function(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = p.get("FunctionName") or generated_name(d.stack, logical_id, 64)
    arn = f"arn:aws:lambda:{d.region}:{d.account}:function:{name}"
    runtime = str(p.get("Runtime", ""))
    if logical_id in d.custom_resource_providers:
        d.functions_not_created.add(name)
        d.report(
            logical_id,
            "AWS::Lambda::Function",
            "emulated differently",
            "provider of CDK custom resources: not deployed; the deployer applies the custom resources' effect",
        )
        return name, {"Arn": arn}
    if not runtime.startswith("python"):
        d.functions_not_created.add(name)
        d.report(
            logical_id, "AWS::Lambda::Function", "not emulated", f"runtime {runtime or 'image'} cannot run in-process"
        )
        return name, {"Arn": arn}
    code, code_root = _function_code(d, logical_id, p)
    kwargs: dict[str, Any] = {
        "FunctionName": name,
        "Runtime": runtime,
        "Role": p["Role"],
        "Handler": p["Handler"],
        "Code": code,
        "Timeout": int(p.get("Timeout", 3)),
        "MemorySize": int(p.get("MemorySize", 128)),
        "Environment": {
            "Variables": {k: _attribute_text(v) for k, v in p.get("Environment", {}).get("Variables", {}).items()}
        },
    }
    for key in ("Description", "Architectures", "TracingConfig", "DeadLetterConfig", "EphemeralStorage"):
        if key in p:
            kwargs[key] = p[key]
    if p.get("Tags"):
        kwargs["Tags"] = {t["Key"]: t["Value"] for t in _tags(p)}
    lambda_client = d.client("lambda")
    created = lambda_client.create_function(**kwargs)
    if "ReservedConcurrentExecutions" in p:
        lambda_client.put_function_concurrency(
            FunctionName=name, ReservedConcurrentExecutions=int(p["ReservedConcurrentExecutions"])
        )
    assert d.cloud.lambdas is not None
    unknown_layers = d.cloud.lambdas.register_function(name, code_root=code_root, layers=list(p.get("Layers", [])))
    if unknown_layers:
        d.report(
            logical_id,
            "AWS::Lambda::Function",
            "not emulated",
            "layers without a local package set (their imports fail): " + ", ".join(unknown_layers),
        )
    if "DeadLetterConfig" in p:
        d.cloud.lambdas.register_failure_destination(name, p["DeadLetterConfig"]["TargetArn"])
    if "LogGroup" in p.get("LoggingConfig", {}):
        d.cloud.lambdas.register_log_group(name, p["LoggingConfig"]["LogGroup"])
    return name, {"Arn": created["FunctionArn"]}


def _function_code(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """The Code argument for moto, and the folder the function's environment imports from: the asset exactly as
    synthesized (inline code written out as Lambda does)."""
    code = p["Code"]
    module_file = Path(*p["Handler"].split(".")[:-1]).with_suffix(".py")
    if "ZipFile" in code:
        folder = Path(tempfile.mkdtemp(prefix=f"localcloud-{logical_id}-"))
        (folder / module_file).parent.mkdir(parents=True, exist_ok=True)
        (folder / module_file).write_text(code["ZipFile"])
        return {"ZipFile": _zip_directory(folder)}, folder
    asset_hash = str(code.get("S3Key", "")).split(".")[0]
    asset = d.asset_paths.get(asset_hash)
    if asset is None:
        raise DeployError(
            f"code s3://{code.get('S3Bucket')}/{code.get('S3Key')} is not an asset of this cloud assembly"
        )
    if not (asset / module_file).exists():
        raise DeployError(f"handler file {module_file} is not in the function's asset {asset.name}")
    return {"S3Bucket": code["S3Bucket"], "S3Key": code["S3Key"]}, asset


@creates("AWS::Lambda::Permission")
def _permission(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    # CloudFormation names the statement like a physical id; AddPermission allows at most 100 characters.
    statement_id = generated_name(d.stack, logical_id, 100)
    kwargs = {
        "FunctionName": p["FunctionName"],
        "StatementId": statement_id,
        "Action": p["Action"],
        "Principal": p["Principal"],
    }
    for key in ("SourceArn", "SourceAccount"):
        if key in p:
            kwargs[key] = p[key]
    function = str(p["FunctionName"])
    if (function.split(":")[6] if function.startswith("arn:") else function) not in d.functions_not_created:
        d.client("lambda").add_permission(**kwargs)
    return statement_id, {}


@creates("AWS::Lambda::EventInvokeConfig")
def _event_invoke_config(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    assert d.cloud.lambdas is not None
    destination = p.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    if destination:
        d.cloud.lambdas.register_failure_destination(p["FunctionName"], destination)
    if "MaximumRetryAttempts" in p:
        d.cloud.lambdas.register_retry_attempts(p["FunctionName"], int(p["MaximumRetryAttempts"]))
    if p.get("DestinationConfig", {}).get("OnSuccess"):
        d.report(
            logical_id, "AWS::Lambda::EventInvokeConfig", "partly emulated", "on-success destinations are not sent"
        )
    return f"{p['FunctionName']}-invoke-config", {}


@creates("AWS::Lambda::EventSourceMapping")
def _event_source_mapping(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    kwargs = {k: p[k] for k in ("EventSourceArn", "FunctionName", "BatchSize", "Enabled", "StartingPosition") if k in p}
    uuid = d.client("lambda").create_event_source_mapping(**kwargs)["UUID"]
    return uuid, {"Id": uuid}


@creates("AWS::Lambda::Version")
def _version(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    version = d.client("lambda").publish_version(FunctionName=p["FunctionName"])
    return version["FunctionArn"], {"Version": version["Version"], "FunctionArn": version["FunctionArn"]}


@creates("AWS::Lambda::Alias")
def _alias(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    alias = d.client("lambda").create_alias(
        FunctionName=p["FunctionName"], Name=p["Name"], FunctionVersion=p["FunctionVersion"]
    )
    return alias["AliasArn"], {"AliasArn": alias["AliasArn"]}


# What moto's ASL interpreter cannot run (notes/moto-5.2.5.md): the execution fails when it reaches them.
_INTERPRETER_GAPS = (
    (r"arn:aws:states:::sagemaker:\w+\.sync", "sagemaker:*.sync tasks fail locally (use create + describe polling)"),
    (r'"QueryLanguage"\s*:\s*"JSONata"', "JSONata states fail locally"),
)


@creates("AWS::StepFunctions::StateMachine")
def _state_machine(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = p.get("StateMachineName") or generated_name(d.stack, logical_id, 80)
    if "DefinitionString" in p:
        definition = p["DefinitionString"]
    elif "Definition" in p:
        definition = json.dumps(p["Definition"])
    else:
        raise DeployError("the definition must be inline (DefinitionS3Location is not supported locally)")
    for key, value in p.get("DefinitionSubstitutions", {}).items():
        definition = definition.replace("${" + key + "}", _attribute_text(value))
    kwargs: dict[str, Any] = {
        "name": name,
        "definition": definition,
        "roleArn": p["RoleArn"],
        "type": p.get("StateMachineType", "STANDARD"),
    }
    if "LoggingConfiguration" in p:
        kwargs["loggingConfiguration"] = _lower_first(p["LoggingConfiguration"])
    if "TracingConfiguration" in p:
        kwargs["tracingConfiguration"] = _lower_first(p["TracingConfiguration"])
    if p.get("Tags"):
        kwargs["tags"] = [{"key": t["Key"], "value": t["Value"]} for t in _tags(p)]
    arn = d.client("stepfunctions").create_state_machine(**kwargs)["stateMachineArn"]
    for pattern, reason in _INTERPRETER_GAPS:
        if re.search(pattern, definition):
            d.report(logical_id, "AWS::StepFunctions::StateMachine", "partly emulated", reason)
    for image_uri in sorted(set(re.findall(r'"TrainingImage"\s*:\s*"([^"]+)"', definition))):
        note = images.report_for(image_uri)
        if note:
            d.report(logical_id, "AWS::StepFunctions::StateMachine", "partly emulated", note)
    return arn, {"Arn": arn, "Name": name}


@creates("AWS::Events::Rule")
def _rule(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    events = d.client("events")
    name = p.get("Name") or generated_name(d.stack, logical_id, 64)
    kwargs: dict[str, Any] = {"Name": name, "State": p.get("State", "ENABLED")}
    if "EventPattern" in p:
        kwargs["EventPattern"] = json.dumps(p["EventPattern"])
    for key in ("ScheduleExpression", "Description", "EventBusName", "RoleArn"):
        if key in p:
            kwargs[key] = p[key]
    arn = events.put_rule(**kwargs)["RuleArn"]
    targets = p.get("Targets", [])
    if targets:
        events.put_targets(Rule=name, EventBusName=p.get("EventBusName", "default"), Targets=targets)
    if "ScheduleExpression" in p:
        d.report(
            logical_id,
            "AWS::Events::Rule",
            "emulated differently",
            f"schedule {p['ScheduleExpression']} never fires on its own: cloud.fire_schedule({name!r}) fires it",
        )
    if any("RetryPolicy" in t or "DeadLetterConfig" in t for t in targets):
        d.report(logical_id, "AWS::Events::Rule", "partly emulated", "target retry policies and DLQs are not applied")
    return name, {"Arn": arn}


@creates("AWS::Events::EventBus")
def _event_bus(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    arn = d.client("events").create_event_bus(Name=p["Name"])["EventBusArn"]
    return p["Name"], {"Arn": arn, "Name": p["Name"]}


_ALARM_KEYS = (
    "AlarmName",
    "AlarmDescription",
    "ActionsEnabled",
    "OKActions",
    "AlarmActions",
    "InsufficientDataActions",
    "MetricName",
    "Namespace",
    "Statistic",
    "ExtendedStatistic",
    "Dimensions",
    "Period",
    "Unit",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "Threshold",
    "ComparisonOperator",
    "TreatMissingData",
    "EvaluateLowSampleCountPercentile",
    "Metrics",
    "ThresholdMetricId",
)


@creates("AWS::CloudWatch::Alarm")
def _alarm(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = p.get("AlarmName") or generated_name(d.stack, logical_id, 255)
    kwargs = {key: p[key] for key in _ALARM_KEYS if key in p} | {"AlarmName": name}
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in kwargs:
            kwargs[key] = int(kwargs[key])
    if "Threshold" in kwargs:
        kwargs["Threshold"] = float(kwargs["Threshold"])
    if p.get("Tags"):
        kwargs["Tags"] = _tags(p)
    d.client("cloudwatch").put_metric_alarm(**kwargs)
    return name, {"Arn": f"arn:aws:cloudwatch:{d.region}:{d.account}:alarm:{name}"}


@creates("AWS::CloudWatch::CompositeAlarm")
def _composite_alarm(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = p.get("AlarmName") or generated_name(d.stack, logical_id, 255)
    keys = ("AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions", "InsufficientDataActions", "AlarmRule")
    kwargs = {key: p[key] for key in keys if key in p} | {"AlarmName": name}
    cloudwatch = d.client("cloudwatch")
    try:
        cloudwatch.put_composite_alarm(**kwargs)
    except cloudwatch.exceptions.ClientError as exc:
        # moto answers NotImplemented; the CloudWatch emulation reads the definition from the deployment.
        d.report(
            logical_id, "AWS::CloudWatch::CompositeAlarm", "emulated differently", f"kept in the deployment only: {exc}"
        )
    return name, {"Arn": f"arn:aws:cloudwatch:{d.region}:{d.account}:alarm:{name}"}


@creates("AWS::CloudWatch::Dashboard")
def _dashboard(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = p.get("DashboardName") or generated_name(d.stack, logical_id, 255)
    d.client("cloudwatch").put_dashboard(DashboardName=name, DashboardBody=p["DashboardBody"])
    return name, {}


@creates("AWS::Glue::Database")
def _glue_database(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    d.client("glue").create_database(DatabaseInput=p["DatabaseInput"])
    return p["DatabaseInput"]["Name"], {}


@creates("AWS::Glue::Table")
def _glue_table(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    d.client("glue").create_table(DatabaseName=p["DatabaseName"], TableInput=p["TableInput"])
    return p["TableInput"]["Name"], {}


@creates("AWS::SageMaker::ModelPackageGroup")
def _model_package_group(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    kwargs: dict[str, Any] = {k: p[k] for k in ("ModelPackageGroupName", "ModelPackageGroupDescription") if k in p}
    if p.get("Tags"):
        kwargs["Tags"] = _tags(p)
    arn = d.client("sagemaker").create_model_package_group(**kwargs)["ModelPackageGroupArn"]
    if "ModelPackageGroupPolicy" in p:
        d.report(
            logical_id,
            "AWS::SageMaker::ModelPackageGroup",
            "partly emulated",
            "the group's resource policy is not stored",
        )
    return arn, {"ModelPackageGroupArn": arn, "ModelPackageGroupStatus": "Completed"}


@creates("AWS::SSM::Parameter")
def _ssm_parameter(d: StackDeployer, logical_id: str, p: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    name = p.get("Name") or generated_name(d.stack, logical_id, 2048)
    d.client("ssm").put_parameter(
        Name=name, Value=_attribute_text(p["Value"]), Type=p.get("Type", "String"), Overwrite=True
    )
    return name, {"Type": p.get("Type", "String"), "Value": p["Value"]}


# ====================================================================== the stage
def stage_stacks(cdk_out: Path, prefix: str) -> list[str]:
    """The stage's stacks (artifact ids starting with the prefix) in dependency order."""
    manifest = json.loads((cdk_out / "manifest.json").read_text())
    artifacts = manifest["artifacts"]
    stacks = {
        name
        for name, artifact in artifacts.items()
        if artifact.get("type") == "aws:cloudformation:stack" and name.startswith(f"{prefix}-")
    }
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for dependency in artifacts[name].get("dependencies", []):
            if dependency in stacks:
                visit(dependency)
        ordered.append(name)

    for name in sorted(stacks):
        visit(name)
    return ordered


def stage_prefix(stage: str) -> str:
    """The prefix of a stage's stack names, `<project>-<stage>`, with this run's context."""
    return _stage_settings(stage, "")[0]


def _stage_settings(stage: str, default_region: str) -> tuple[str, str]:
    """(stack name prefix, region) from cdk.json; a stage not in cdk.json (test assemblies) uses the cloud's region."""
    from infra.context import effective_context

    context = effective_context()
    settings = context.get("stages", {}).get(stage)
    region = settings["region"] if settings else default_region
    return f"{context['project']}-{stage}", region


def deploy_stage(
    cloud: CloudServices, stage: str, *, cdk_out: Path | None = None, synthesize: bool = True
) -> Deployment:
    started = time.perf_counter()
    out = cdk_out or assembly.DEFAULT_OUTDIR
    if synthesize and cdk_out is None:
        assembly.synthesize(out)
    prefix, region = _stage_settings(stage, cloud.region)
    stacks = stage_stacks(out, prefix)
    if not stacks:
        raise DeployError(f"no stacks named {prefix}-* in {out}")
    deployment = Deployment(stage=stage, region=region, account_id=cloud.account_id)
    for stack in stacks:
        template = json.loads((out / f"{stack}.template.json").read_text())
        StackDeployer(cloud, deployment, stack, template, out).deploy()
    deployment.seconds = time.perf_counter() - started
    LOG.info("deployed %s (%d stacks) in %.2f s", stage, len(stacks), deployment.seconds)
    return deployment
