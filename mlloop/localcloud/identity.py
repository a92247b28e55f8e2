"""Who acts in the embedded AWS.

Every Lambda execution environment, training job, endpoint host and service integration acts with its
own role's temporary credentials, issued the way AWS issues them (STS AssumeRole, here through moto's STS
backend), so the request path can resolve the caller from the request's signature and authorise it
against that role's policies. People and scripts using the local cloud's default credentials
(`ADMIN_ACCESS_KEY_ID`) keep full access, as an account's administrator would.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from moto.sts.models import sts_backends

from mlloop.localcloud import aws_state

ADMIN_ACCESS_KEY_ID = "localcloud"
ADMIN_SECRET_ACCESS_KEY = "localcloud"
# Lambda's execution-environment credentials last as long as the role's session (up to 12 h); one session per
# (role, session name) is enough locally, since the cloud's lifetime is far shorter.
SESSION_SECONDS = 12 * 3600

_lock = threading.Lock()
_issued: dict[tuple[str, str, str], RoleCredentials] = {}


@dataclass(frozen=True)
class RoleCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    role_arn: str
    session_name: str

    def environment(self) -> dict[str, str]:
        """The variables Lambda and SageMaker set for a role's credentials."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


def role_credentials(role_arn: str, session_name: str, *, region: str) -> RoleCredentials:
    """Temporary credentials of `role_arn` (issued once per role and session name in this cloud)."""
    account_id = role_arn.split(":")[4]
    key = (account_id, role_arn, session_name)
    with _lock:
        issued = _issued.get(key)
        if issued is not None and _still_known(account_id, region, issued.access_key_id):
            return issued
        backend = sts_backends[account_id]["global"]
        assumed = backend.assume_role(
            region_name=region,
            role_session_name=session_name[:64],
            role_arn=role_arn,
            policy="",
            duration=SESSION_SECONDS,
            external_id="",
        )
        issued = RoleCredentials(
            access_key_id=assumed.access_key_id,
            secret_access_key=assumed.secret_access_key,
            session_token=assumed.session_token,
            role_arn=role_arn,
            session_name=assumed.session_name,
        )
        _issued[key] = issued
        return issued


def _still_known(account_id: str, region: str, access_key_id: str) -> bool:
    """False after moto's state was reset (a new cloud, or `mock_aws` in the same process)."""
    backend = sts_backends[account_id]["global"]
    return backend.get_assumed_role_from_access_key(access_key_id) is not None


def forget_issued_credentials() -> None:
    """Called when the cloud stops: the next cloud issues new credentials."""
    with _lock:
        _issued.clear()


def issued_to_cloud_principal(access_key_id: str) -> bool:
    """Whether the cloud issued this key to one of its own execution environments (whose SDK calls stand for
    AWS's, made over HTTPS), rather than a caller having obtained it through the STS API."""
    with _lock:
        return any(issued.access_key_id == access_key_id for issued in _issued.values())


def s3_client_as(role_arn: str, session_name: str, *, region: str) -> Any:
    """An S3 client signed with the role's credentials against the local cloud's API, for what a service does
    with the role it was given (SageMaker downloading a job's channels or a model's data): the request path then
    authorises it like any other caller (identity and bucket policies, the SSE-KMS key, 403 for a missing key)."""
    if not aws_state.endpoint_url():
        raise RuntimeError("the local cloud's API is not running: a service cannot act with a role's credentials")
    credentials = role_credentials(role_arn, session_name, region=region)
    return boto3.client(
        "s3",
        region_name=region,
        endpoint_url=aws_state.endpoint_url(),
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        config=Config(retries={"max_attempts": 1}),
    )
