"""Where the policies live: a role's identity policies and a resource's policy, read from moto's backends.

AWS managed policies are not in moto: the documents of those the templates attach are kept in
`aws_managed_policies.json` (with their source), and the deployer records which role attaches which.
"""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.iam.models import iam_backends
from moto.kms.models import kms_backends
from moto.s3.models import s3_backends
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends
from moto.sts.models import sts_backends

_lock = threading.Lock()
_aws_managed_attachments: dict[str, set[str]] = {}


@lru_cache(maxsize=1)
def aws_managed_policies() -> dict[str, dict[str, Any]]:
    documents = json.loads((Path(__file__).parent / "aws_managed_policies.json").read_text())
    return {arn: doc for arn, doc in documents.items() if arn.startswith("arn:")}


def _without_partition(arn: str) -> str:
    parts = arn.split(":")
    return ":".join(["arn", "aws", *parts[2:]]) if len(parts) > 2 else arn


def attach_aws_managed_policy(role_arn: str, policy_arn: str) -> bool:
    """Record that a role attaches an AWS managed policy; False if its document is not kept here."""
    normalised = _without_partition(policy_arn)
    if normalised not in aws_managed_policies():
        return False
    with _lock:
        _aws_managed_attachments.setdefault(role_arn, set()).add(normalised)
    return True


def forget() -> None:
    with _lock:
        _aws_managed_attachments.clear()


def assumed_role(access_key_id: str, account: str) -> Any:
    """moto's AssumedRole for a session access key, or None."""
    return sts_backends[account]["global"].get_assumed_role_from_access_key(access_key_id)


def identity_policies(role_arn: str, account: str) -> list[dict[str, Any]]:
    """Inline and attached managed policies of a role (an unknown role has none)."""
    backend = iam_backends[account]["aws"]
    try:
        role = backend.get_role_by_arn(role_arn)
    except Exception:
        return []
    documents = [json.loads(doc) if isinstance(doc, str) else doc for doc in role.policies.values()]
    for policy in role.managed_policies.values():
        for version in policy.versions:
            if version.is_default:
                document = version.document
                documents.append(json.loads(document) if isinstance(document, str) else document)
    with _lock:
        attached = sorted(_aws_managed_attachments.get(role_arn, ()))
    documents.extend(aws_managed_policies()[arn] for arn in attached)
    return documents


def _loads(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    if isinstance(value, bytes):
        value = value.decode()
    return json.loads(value) if isinstance(value, str) else dict(value)


def bucket_account(bucket: str) -> str:
    """The account that owns a bucket (bucket names are global)."""
    found = s3_backends.bucket_accounts.get(bucket)
    return str(found[1]) if found else next(iter(s3_backends), "")


def _bucket(bucket: str) -> Any:
    return s3_backends[bucket_account(bucket)]["aws"].get_bucket(bucket)


def bucket_policy(bucket: str) -> dict[str, Any] | None:
    try:
        return _loads(_bucket(bucket).policy)
    except Exception:
        return None


def bucket_kms_key(bucket: str) -> str | None:
    """The KMS key of a bucket's default SSE-KMS encryption, if any."""
    try:
        encryption = _bucket(bucket).encryption or {}
    except Exception:
        return None
    for rule in _as_list(encryption.get("Rule")):
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if default.get("SSEAlgorithm") == "aws:kms":
            return str(default.get("KMSMasterKeyID") or "alias/aws/s3")
    return None


def object_kms_key(bucket: str, key: str) -> str | None:
    try:
        stored = s3_backends[bucket_account(bucket)]["aws"].get_object(bucket, key)
    except Exception:
        return None
    if stored is None or stored.encryption != "aws:kms":
        return None
    return str(stored.kms_key_id) if stored.kms_key_id else None


def object_exists(bucket: str, key: str) -> bool:
    try:
        return s3_backends[bucket_account(bucket)]["aws"].get_object(bucket, key) is not None
    except Exception:
        return False


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def topic_policy(topic_arn: str) -> dict[str, Any] | None:
    parts = topic_arn.split(":")
    try:
        return dict(sns_backends[parts[4]][parts[3]].get_topic(topic_arn)._policy_json)
    except Exception:
        return None


def queue_policy(queue_arn: str) -> dict[str, Any] | None:
    parts = queue_arn.split(":")
    try:
        queue = sqs_backends[parts[4]][parts[3]].get_queue(parts[5])
    except Exception:
        return None
    return _loads(queue.policy)


def kms_key_arn(key: str, account: str, region: str) -> str:
    try:
        return str(kms_backends[account][region].describe_key(key).arn)
    except Exception:
        return key if key.startswith("arn:") else f"arn:aws:kms:{region}:{account}:key/{key}"


def key_policy(key_arn: str) -> dict[str, Any] | None:
    parts = key_arn.split(":")
    try:
        return _loads(kms_backends[parts[4]][parts[3]].describe_key(key_arn).policy)
    except Exception:
        return None


def function_policy(function_arn: str) -> dict[str, Any] | None:
    parts = function_arn.split(":")
    try:
        backend = get_lambda_backend(parts[4], parts[3])
        qualifier = parts[7] if len(parts) > 7 else None
        wire = json.loads(backend.get_policy(parts[6], qualifier))
    except Exception:
        return None
    return _loads(wire.get("Policy"))


def resource_policy(action: str, resource: str) -> tuple[dict[str, Any] | None, bool]:
    """(the resource's policy, whether it is a KMS key policy) for an action on a resource ARN."""
    service = action.split(":", 1)[0].lower()
    if service == "s3" and resource.startswith("arn:aws:s3:::"):
        return bucket_policy(resource[len("arn:aws:s3:::") :].split("/", 1)[0]), False
    if service == "sns" and resource.startswith("arn:aws:sns:"):
        return topic_policy(resource), False
    if service == "sqs" and resource.startswith("arn:aws:sqs:"):
        return queue_policy(resource), False
    if service == "kms" and ":key/" in resource:
        return key_policy(resource), True
    if service == "lambda" and ":function:" in resource:
        return function_policy(resource), False
    return None, False
