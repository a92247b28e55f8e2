"""IAM in the embedded AWS: SigV4, callers resolved from their keys, identity and resource policies enforced.

`AuthorizingMotoServer` is moto's threaded server with the request path of `gateway.py` in front of its app.
`install()` also hands the policy decisions that moto would take on its own over to that path (moto evaluates
bucket policies without conditions), and makes Step Functions service integrations call as the state
machine's role.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from mlloop.localcloud import fidelity, identity
from mlloop.localcloud.authz import resources
from mlloop.localcloud.authz.gateway import AuthorizingApp, Refusal, authorise, authorise_service
from mlloop.localcloud.authz.policy import Principal, Request

__all__ = [
    "AuthorizingMotoServer",
    "Refusal",
    "authorise",
    "authorise_role",
    "authorise_service",
    "authorise_service_publish",
    "install",
    "uninstall",
]

_saved: dict[str, Any] = {}
STEP_FUNCTIONS_SESSION = "states-integration"


class AuthorizingMotoServer(ThreadedMotoServer):
    def __init__(self, *, account_id: str, ip_address: str, port: int) -> None:
        super().__init__(ip_address=ip_address, port=port, verbose=False)
        self.account_id = account_id
        self.app: AuthorizingApp | None = None

    def _server_entry(self) -> None:
        self.app = AuthorizingApp(DomainDispatcherApplication(create_backend_app), account_id=self.account_id)
        self._server = make_server(self._ip_address, self._port, self.app, True, request_handler=MotoRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()


def install(region: str) -> None:
    """Patch moto where it would decide on its own, and route Step Functions' SDK calls through the role."""
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    fidelity.reset()
    resources.forget()
    _saved["get_permission"] = FakeBucket.get_permission
    # The request path evaluates bucket policies (with their conditions) before moto sees the request.
    FakeBucket.get_permission = lambda self, action, resource: PermissionResult.NEUTRAL  # type: ignore[method-assign]
    _patch_step_functions_clients(region)


def uninstall() -> None:
    from moto.s3.models import FakeBucket

    if "get_permission" in _saved:
        FakeBucket.get_permission = _saved.pop("get_permission")  # type: ignore[method-assign]
    for module_name, original in _saved.pop("boto_client_for", {}).items():
        module = sys.modules.get(module_name)
        if module is not None:
            module.boto_client_for = original  # type: ignore[attr-defined]
    resources.forget()
    identity.forget_issued_credentials()


def _patch_step_functions_clients(default_region: str) -> None:
    """moto's interpreter signs its SDK calls with a fixed dummy key; AWS makes them as the state machine's role."""
    import importlib

    import boto3
    from botocore.config import Config
    from moto.settings import moto_server_port

    importlib.import_module("moto.stepfunctions.parser.asl.utils.boto_client")

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        role_arn = getattr(state_credentials, "role_arn", "") or ""
        if role_arn:
            credentials = identity.role_credentials(role_arn, STEP_FUNCTIONS_SESSION, region=region or default_region)
            keys = {
                "aws_access_key_id": credentials.access_key_id,
                "aws_secret_access_key": credentials.secret_access_key,
                "aws_session_token": credentials.session_token,
            }
        else:
            keys = {"aws_access_key_id": "unknown", "aws_secret_access_key": "unknown"}
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=f"http://localhost:{moto_server_port()}",
            config=Config(parameter_validation=False, retries={"max_attempts": 0, "total_max_attempts": 1}),
            **keys,
        )

    replaced: dict[str, Any] = {}
    for name, module in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and hasattr(module, "boto_client_for"):
            replaced[name] = module.boto_client_for
            module.boto_client_for = boto_client_for  # type: ignore[attr-defined]
    _saved["boto_client_for"] = replaced


def authorise_service_publish(service: str, topic_arn: str, *, source_arn: str, account: str) -> None:
    """An AWS service publishing to a topic (CloudWatch alarm actions, EventBridge targets): the topic policy
    must allow it, and for an encrypted topic the key policy must allow it kms:GenerateDataKey* and kms:Decrypt
    (SNS Developer Guide, "Configure KMS permissions for AWS services")."""
    from moto.sns.models import sns_backends

    authorise_service(service, "sns:Publish", topic_arn, account=account, source_arn=source_arn, source_account=account)
    parts = topic_arn.split(":")
    try:
        key = sns_backends[parts[4]][parts[3]].get_topic(topic_arn).kms_master_key_id
    except Exception:
        key = None
    if key:
        key_arn = resources.kms_key_arn(str(key), parts[4], parts[3])
        for action in ("kms:GenerateDataKey", "kms:Decrypt"):
            authorise_service(service, action, key_arn, account=account, source_arn=source_arn, source_account=account)


def authorise_role(role_arn: str, action: str, resource: str, *, session: str) -> None:
    """A service acting with a role it was given (an EventBridge target's RoleArn): the role's policies decide."""
    account = role_arn.split(":")[4]
    role_name = role_arn.rsplit("/", 1)[-1]
    principal = Principal(f"arn:aws:sts::{account}:assumed-role/{role_name}/{session}", account, role_arn=role_arn)
    context = {"aws:SecureTransport": True, "aws:PrincipalAccount": account, "aws:PrincipalArn": role_arn}
    authorise(Request(principal, action, resource, context))
