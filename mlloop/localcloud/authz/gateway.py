"""The request path in front of moto: authenticate (SigV4), resolve the caller, authorise, or answer as AWS.

Every request to the local endpoint passes here before moto sees it:

1. the signature is verified (sigv4.py); unsigned, unknown-key, expired, mis-signed or body-altered requests get
   the service's 403 (or, for JSON protocols, the 400 their models declare) in its protocol's error shape;
2. the access key names the caller: the local cloud's default credentials ("localcloud") are the account's
   administrator, with full access; a role session's key (STS, `identity.role_credentials`) is that role;
3. the call is mapped to its IAM action(s) and resource ARN(s) (operations.py, actions.py) and decided with AWS's
   evaluation logic over the role's identity policies and the resource's policy (policy.py, resources.py);
   S3 calls on SSE-KMS data also need the key's kms:GenerateDataKey / kms:Decrypt (kms:ViaService s3);
4. a refusal answers with the service's AccessDenied shape, naming principal, action and resource; S3 answers a
   GetObject/HeadObject of a missing key with 403 (not 404) when the caller may not s3:ListBucket.

TLS: the endpoint is plain HTTP. Credentials the cloud issues to its own execution environments (Lambda,
SageMaker jobs and hosts, Step Functions integrations: `identity.role_credentials`) stand for AWS's SDKs, which
always call AWS over HTTPS, so their requests carry aws:SecureTransport true; any other caller (credentials
obtained through the STS API by a script or test, presigned URLs) talks plain HTTP and has
aws:SecureTransport false, so TLS-only policies refuse it as AWS would.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from moto.core.request import PRESERVED_HEADER_NAMES_ENVIRON_KEY

from mlloop.localcloud import fidelity, identity
from mlloop.localcloud.authz import resources
from mlloop.localcloud.authz.actions import Check, checks
from mlloop.localcloud.authz.operations import Operation, expected_signing_name, identify, request_protocol
from mlloop.localcloud.authz.policy import Decision, Principal, Request, decide
from mlloop.localcloud.authz.sigv4 import SignatureError, Signed, parse, verify

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_QUERY_NS = {
    "sns": "http://sns.amazonaws.com/doc/2010-03-31/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
    "monitoring": "http://monitoring.amazonaws.com/doc/2010-08-01/",
}


@dataclass
class Refusal(Exception):  # noqa: N818 - AWS calls it a refusal, not an error of ours
    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class AuthorizingApp:
    """WSGI middleware: moto's app behind AWS's authentication and authorisation."""

    def __init__(self, app: WsgiApp, *, account_id: str) -> None:
        self.app = app
        self.account_id = account_id

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/moto-api"):  # the local cloud's own control endpoint, not an AWS API
            return self.app(environ, start_response)
        body = _read_body(environ)
        headers = _headers(environ)
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").lower()] = environ[key]
        query = environ.get("QUERY_STRING", "")
        signing_name = "s3"
        protocol = "rest-xml"
        try:
            signed = parse(headers, query)
            if signed is None:
                signing_name = _guess_signing_name(headers, query, body)
                protocol = request_protocol(signing_name, headers=headers, path=path, query=query, body=body)
                raise SignatureError("missing", "")
            signing_name = signed.service
            protocol = request_protocol(signing_name, headers=headers, path=path, query=query, body=body)
            addressed = expected_signing_name(headers, path)
            if addressed is not None and addressed != signed.service:
                raise SignatureError("mismatch", f"Credential should be scoped to correct service: '{addressed}'. ")
            principal, tls = authenticate(
                signed,
                account_id=self.account_id,
                method=environ.get("REQUEST_METHOD", "GET"),
                url=_url(environ),
                headers=headers,
                body=body,
                query=query,
            )
            if principal.is_admin:
                # The default credentials have full access: counted, not evaluated.
                fidelity.record_decision(principal.name, "authorised")
            else:
                self._authorize(
                    principal,
                    tls=tls,
                    signed=signed,
                    method=environ.get("REQUEST_METHOD", "GET"),
                    path=path,
                    query=query,
                    headers=headers,
                    body=body,
                )
        except SignatureError as error:
            return _answer(start_response, *_signature_refusal(signing_name, protocol, error))
        except Refusal as refusal:
            return _answer(start_response, *_render(signing_name, protocol, refusal))
        return self.app(environ, start_response)

    # ------------------------------------------------------------------------------------------- authorisation
    def _authorize(
        self,
        principal: Principal,
        *,
        tls: bool,
        signed: Signed,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        operation = identify(signed.service, method=method, path=path, query=query, headers=headers, body=body)
        if operation is None:
            fidelity.record_decision(
                principal.name,
                "not evaluable",
                action=f"{signed.service}:?",
                resource=path,
                detail=f"no operation of {signed.service} matches {method} {path}",
            )
            raise Refusal(403, "AccessDenied", f"User: {principal.arn} is not authorized to perform this operation")
        region = signed.region
        found = checks(operation, account=self.account_id, region=region)
        found += _kms_checks_for_s3(operation, region)
        context = {
            "aws:SecureTransport": tls,
            "aws:PrincipalAccount": principal.account,
            "aws:SourceOwner": principal.account,  # SNS's default topic policy conditions on it
            "aws:PrincipalArn": principal.role_arn or principal.arn,
            "aws:PrincipalType": "AssumedRole" if principal.role_arn else "Account",
            "aws:RequestedRegion": region,
        }
        for check in found:
            request = Request(principal, check.action, check.resource, context | check.context)
            authorise(request, operation=operation)
        if operation.service == "s3" and operation.name in ("GetObject", "HeadObject"):
            bucket, key = str(operation.params.get("Bucket")), str(operation.params.get("Key"))
            if not resources.object_exists(bucket, key):
                # S3 answers 404 NoSuchKey only to a caller that may list the bucket; anyone else gets 403 and
                # learns nothing about the key (S3 API reference, GetObject, "Permissions").
                listing = Request(principal, "s3:ListBucket", f"arn:aws:s3:::{bucket}", dict(context))
                authorise(listing, operation=operation)


def authorise_service(
    service: str, action: str, resource: str, *, account: str, source_arn: str = "", source_account: str = ""
) -> None:
    """An AWS service acting on a resource on a customer's behalf (CloudWatch publishing an alarm action, EventBridge
    invoking a target): only the resource's policy can allow it, with aws:SourceArn/aws:SourceAccount set."""
    context: dict[str, Any] = {"aws:SecureTransport": True, "aws:PrincipalServiceName": service}
    if source_arn:
        context["aws:SourceArn"] = source_arn
    if source_account:
        context["aws:SourceAccount"] = source_account
        context["aws:SourceOwner"] = source_account
    authorise(Request(Principal(service, account, service=service), action, resource, context))


def authenticate(
    signed: Signed, *, account_id: str, method: str, url: str, headers: dict[str, str], body: bytes, query: str
) -> tuple[Principal, bool]:
    """The caller a valid signature names, and whether it counts as a TLS caller (see the module's docstring)."""
    params = dict(parse_qsl(query))
    token = (
        headers.get("x-amz-security-token") or params.get("X-Amz-Security-Token") or params.get("x-amz-security-token")
    )
    expires = params.get("X-Amz-Expires")
    if signed.access_key_id == identity.ADMIN_ACCESS_KEY_ID:
        secret = identity.ADMIN_SECRET_ACCESS_KEY
        principal = Principal(f"arn:aws:iam::{account_id}:root", account_id)
        tls = False
    else:
        assumed = resources.assumed_role(signed.access_key_id, account_id)
        if assumed is None or token != assumed.session_token:
            raise SignatureError("unknown-key", "The security token included in the request is invalid.")
        secret = assumed.secret_access_key
        principal = Principal(assumed.arn, account_id, role_arn=assumed.role_arn)
        tls = identity.issued_to_cloud_principal(signed.access_key_id) and not signed.presigned
    verify(
        signed,
        secret_access_key=secret,
        session_token=token,
        method=method,
        url=url,
        headers=headers,
        body=body,
        now=dt.datetime.now(dt.UTC),
        expires=int(expires) if expires and expires.isdigit() else None,
    )
    return principal, tls


# Actions AWS performs for any authenticated caller, whatever the policies say: "No permissions are required to
# perform this operation. If an administrator attaches a policy to your identity that explicitly denies access to
# the sts:GetCallerIdentity action, you can still perform this operation" (STS API reference, GetCallerIdentity).
ALWAYS_ALLOWED_ACTIONS = frozenset({"sts:GetCallerIdentity"})


def authorise(request: Request, *, operation: Operation | None = None) -> None:
    """Decide one request as AWS would, record it, and raise Refusal when it is not allowed."""
    principal = request.principal
    if request.action in ALWAYS_ALLOWED_ACTIONS:
        fidelity.record_decision(principal.name, "authorised", action=request.action, resource=request.resource)
        return
    if principal.is_service:
        identity_documents: list[dict[str, Any]] = []
    else:
        identity_documents = resources.identity_policies(principal.role_arn, principal.account)
    resource_document, is_key = resources.resource_policy(request.action, request.resource)
    if is_key and resource_document is None:
        resource_document = {"Statement": []}
    decision, policy_kind, unknown = decide(identity_documents, resource_document, request, key_policy=is_key)
    if decision is Decision.ALLOWED:
        fidelity.record_decision(principal.name, "authorised", action=request.action, resource=request.resource)
        return
    outcome = "not evaluable" if unknown else "denied"
    fidelity.record_decision(
        principal.name, outcome, action=request.action, resource=request.resource, detail="; ".join(sorted(unknown))
    )
    raise _access_denied(request, decision, policy_kind, operation)


def _access_denied(request: Request, decision: Decision, policy_kind: str, operation: Operation | None) -> Refusal:
    action = request.action
    service = action.split(":", 1)[0]
    shown_action = f"SNS:{action.split(':', 1)[1]}" if service == "sns" else action
    on_resource = "" if request.resource == "*" else f" on resource: {request.resource}"
    if service == "s3":
        on_resource = "" if request.resource == "*" else f' on resource: "{request.resource}"'
    if decision is Decision.EXPLICIT_DENY:
        why = f"with an explicit deny in a {policy_kind}"
    elif policy_kind == "resource-based policy":
        why = f"because no resource-based policy allows the {shown_action} action"
    else:
        why = f"because no {policy_kind} allows the {shown_action} action"
    message = f"User: {request.principal.arn} is not authorized to perform: {shown_action}{on_resource} {why}"
    # The answer is the called service's, whatever action was refused (a PassRole refusal on CreateTrainingJob
    # is SageMaker's AccessDeniedException).
    called = operation.service if operation is not None else service
    code = {
        "s3": "AccessDenied",
        "sns": "AuthorizationError",
        "sqs": "AccessDenied",
        "sts": "AccessDenied",
        "iam": "AccessDenied",
        "cloudwatch": "AccessDenied",
    }.get(called, "AccessDeniedException")
    protocol_status = 403
    if operation is not None and operation.protocol == "json" and service not in ("sqs", "cloudwatch"):
        protocol_status = 400  # JSON-protocol services declare AccessDeniedException as a 400 client error
    return Refusal(protocol_status, code, message)


def _kms_checks_for_s3(operation: Operation, region: str) -> list[Check]:
    """S3 uses the caller's permissions on an SSE-KMS key (S3 User Guide, "Using SSE-KMS": PutObject needs
    kms:GenerateDataKey, GetObject kms:Decrypt), with kms:ViaService s3.<region>.amazonaws.com."""
    if operation.service != "s3":
        return []
    bucket, key = operation.params.get("Bucket"), operation.params.get("Key")
    if not bucket or key is None:
        return []
    account = resources.bucket_account(str(bucket))
    via = {"kms:ViaService": f"s3.{region}.amazonaws.com", "kms:CallerAccount": account}
    if operation.name in ("PutObject", "CreateMultipartUpload", "CopyObject"):
        key_id = operation.params.get("SSEKMSKeyId") or resources.bucket_kms_key(str(bucket))
        action = "kms:GenerateDataKey"
    elif operation.name == "GetObject":
        key_id = resources.object_kms_key(str(bucket), str(key))
        action = "kms:Decrypt"
    else:
        return []
    if not key_id:
        return []
    return [Check(action, resources.kms_key_arn(str(key_id), account, region), via)]


# ------------------------------------------------------------------------------------------------ answers
def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        body: bytes = stream.read(int(length))
    elif environ.get("wsgi.input_terminated") or environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    if body or length:
        environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    """Request headers by lower-case name; moto's request handler keeps the spelling of underscored names
    (S3 metadata such as x-amz-meta-contract_version), which WSGI would otherwise fold into dashes."""
    original = environ.get(PRESERVED_HEADER_NAMES_ENVIRON_KEY) or {}
    return {
        (original.get(key) or key[5:].replace("_", "-")).lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }


def _url(environ: dict[str, Any]) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        raw = environ.get("PATH_INFO", "") + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
    host = environ.get("HTTP_HOST", "localhost")
    return f"http://{host}{raw}"


def _guess_signing_name(headers: dict[str, str], query: str, body: bytes) -> str:
    target = headers.get("x-amz-target", "")
    if target:
        return "sagemaker" if target.startswith("SageMaker") else "json"
    if "Action=" in query or (body[:7] == b"Action="):
        return "query"
    return "s3"


def _signature_refusal(signing_name: str, protocol: str, error: SignatureError) -> tuple[int, dict[str, str], bytes]:
    if signing_name == "s3":
        code, status = {
            "missing": ("AccessDenied", 403),
            "incomplete": ("AuthorizationHeaderMalformed", 400),
            "unknown-key": ("InvalidAccessKeyId", 403),
            "mismatch": ("SignatureDoesNotMatch", 403),
            "expired": ("RequestTimeTooSkewed", 403),
            "content-mismatch": ("XAmzContentSHA256Mismatch", 400),
        }[error.kind]
        message = {
            "missing": "Access Denied",
            "unknown-key": "The AWS Access Key Id you provided does not exist in our records.",
            "expired": "The difference between the request time and the current time is too large.",
        }.get(error.kind, error.message)
        if error.kind == "expired" and error.message == "Request has expired":
            code, message = "AccessDenied", "Request has expired"
        return _render("s3", "rest-xml", Refusal(status, code, message))
    if protocol in ("json", "rest", "rest-json", "smithy-rpc-v2-cbor"):
        code, status = {
            "missing": ("MissingAuthenticationTokenException", 403),
            "incomplete": ("IncompleteSignatureException", 400),
            "unknown-key": ("UnrecognizedClientException", 403),
            "mismatch": ("InvalidSignatureException", 403),
            "expired": ("InvalidSignatureException", 403),
            "content-mismatch": ("InvalidSignatureException", 403),
        }[error.kind]
        message = "Missing Authentication Token" if error.kind == "missing" else error.message
        return _render_json(status, code, message)
    code, status = {
        "missing": ("MissingAuthenticationToken", 403),
        "incomplete": ("IncompleteSignature", 400),
        "unknown-key": ("InvalidClientTokenId", 403),
        "mismatch": ("SignatureDoesNotMatch", 403),
        "expired": ("SignatureDoesNotMatch", 403),
        "content-mismatch": ("SignatureDoesNotMatch", 403),
    }[error.kind]
    message = "Request is missing Authentication Token" if error.kind == "missing" else error.message
    return _render(signing_name, protocol, Refusal(status, code, message))


def _render(signing_name: str, protocol: str, refusal: Refusal) -> tuple[int, dict[str, str], bytes]:
    request_id = str(uuid.uuid4())
    if signing_name == "s3":
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{refusal.code}</Code><Message>{escape(refusal.message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        return refusal.status, {"Content-Type": "application/xml", "x-amz-request-id": request_id}, body.encode()
    if protocol == "query":
        namespace = _QUERY_NS.get(signing_name, "")
        body = (
            f'<ErrorResponse xmlns="{namespace}"><Error><Type>Sender</Type><Code>{refusal.code}</Code>'
            f"<Message>{escape(refusal.message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return refusal.status, {"Content-Type": "text/xml", "x-amzn-RequestId": request_id}, body.encode()
    if protocol == "smithy-rpc-v2-cbor":
        # CloudWatch over RPC v2 CBOR: the error is a CBOR map with __type and message.
        return (
            refusal.status,
            {
                "Content-Type": "application/cbor",
                "smithy-protocol": "rpc-v2-cbor",
                "x-amzn-RequestId": request_id,
                "x-amzn-query-error": f"{refusal.code};Sender",
            },
            _cbor_error(refusal.code, refusal.message),
        )
    return _render_json(refusal.status, refusal.code, refusal.message)


def _render_json(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    request_id = str(uuid.uuid4())
    body = json.dumps({"__type": code, "message": message, "Message": message}).encode()
    return (
        status,
        {
            "Content-Type": "application/x-amz-json-1.1",
            "x-amzn-ErrorType": code,
            "x-amzn-RequestId": request_id,
        },
        body,
    )


def _cbor_error(code: str, message: str) -> bytes:
    def text(value: str) -> bytes:
        data = value.encode()
        if len(data) < 24:
            return bytes([0x60 | len(data)]) + data
        if len(data) < 256:
            return bytes([0x78, len(data)]) + data
        return bytes([0x79]) + len(data).to_bytes(2, "big") + data

    return bytes([0xA2]) + text("__type") + text(code) + text("message") + text(message)


def _answer(start_response: StartResponse, status: int, headers: dict[str, str], body: bytes) -> list[bytes]:
    reasons = {400: "Bad Request", 403: "Forbidden", 404: "Not Found"}
    headers = headers | {"Content-Length": str(len(body))}
    start_response(f"{status} {reasons.get(status, 'Error')}", list(headers.items()))
    return [body]
