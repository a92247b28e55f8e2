"""Signature Version 4 verification, as AWS endpoints do it, with botocore's own signer.

The signature is recomputed from the request as received (method, raw path and query, the signed headers,
the body's SHA-256 or the x-amz-content-sha256 the client signed) with the secret of the access key, and
compared. References: "Authenticating Requests (AWS Signature Version 4)" (S3 API reference) and "Elements
of an AWS API request signature" (IAM User Guide): a request more than 5 minutes away from the server's
clock is refused (S3: 15 minutes, RequestTimeTooSkewed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from botocore.auth import HmacV1Auth, S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+),\s*SignedHeaders=(?P<signed>[^,\s]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]+)"
)
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
SKEW = {"s3": dt.timedelta(minutes=15)}
DEFAULT_SKEW = dt.timedelta(minutes=5)


class SignatureError(Exception):
    """Why a request's authentication failed: `kind` is missing, incomplete, unknown-key, mismatch,
    expired or content-mismatch; the request path turns it into the service's error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class Signed:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    presigned: bool
    # S3's query-string Signature Version 2 (boto3's default for presigned S3 URLs): seconds since the epoch.
    v2_expires: int | None = None


def parse(headers: Mapping[str, str], query: str) -> Signed | None:
    """The signature a request carries (Authorization header or presigned query), None when unsigned."""
    authorization = headers.get("authorization", "")
    if authorization:
        match = _AUTH.match(authorization.strip())
        if match is None:
            raise SignatureError(
                "incomplete",
                "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters "
                "of an AWS4-HMAC-SHA256 signature.",
            )
        amz_date = headers.get("x-amz-date", "")
        if not amz_date:
            raise SignatureError(
                "incomplete", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
            )
        return _signed(match["credential"], match["signed"], match["signature"], amz_date, presigned=False)
    params = dict(parse_qsl(query, keep_blank_values=True))
    if "AWSAccessKeyId" in params and "Signature" in params and params.get("Expires", "").isdigit():
        return Signed(params["AWSAccessKeyId"], "", "", "s3", (), params["Signature"], "", True, int(params["Expires"]))
    if "X-Amz-Signature" in params:
        return _signed(
            params.get("X-Amz-Credential", ""),
            params.get("X-Amz-SignedHeaders", ""),
            params["X-Amz-Signature"],
            params.get("X-Amz-Date", ""),
            presigned=True,
        )
    return None


def _signed(credential: str, signed_headers: str, signature: str, amz_date: str, *, presigned: bool) -> Signed:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureError("incomplete", f"Credential should be scoped to a valid region, not '{credential}'.")
    return Signed(
        parts[0], parts[1], parts[2], parts[3], tuple(signed_headers.split(";")), signature, amz_date, presigned
    )


def verify(
    signed: Signed,
    *,
    secret_access_key: str,
    session_token: str | None,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    now: dt.datetime,
    expires: int | None = None,
) -> None:
    """Raise SignatureError unless `signed` is the request's valid, current signature."""
    if signed.v2_expires is not None:
        _verify_v2(signed, secret_access_key, session_token, method=method, url=url, headers=headers, now=now)
        return
    try:
        when = dt.datetime.strptime(signed.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise SignatureError(
            "incomplete", f"Date must be in ISO-8601 'basic format'. Got '{signed.amz_date}'."
        ) from exc
    if signed.presigned:
        if expires is not None and now > when + dt.timedelta(seconds=expires):
            raise SignatureError("expired", "Request has expired")
    else:
        skew = SKEW.get(signed.service, DEFAULT_SKEW)
        if abs(now - when) > skew:
            stamp = now.strftime("%Y%m%dT%H%M%SZ")
            earliest = (now - skew).strftime("%Y%m%dT%H%M%SZ")
            minutes = int(skew.total_seconds() // 60)
            raise SignatureError(
                "expired",
                f"Signature expired: {signed.amz_date} is now earlier than {earliest} ({stamp} - {minutes} min.)"
                if when < now
                else f"Signature not yet current: {signed.amz_date} is still later than "
                f"{(now + skew).strftime('%Y%m%dT%H%M%SZ')} ({stamp} + {minutes} min.)",
            )
    content_sha = headers.get("x-amz-content-sha256", "")
    signed_payload = content_sha and not content_sha.startswith(("UNSIGNED-PAYLOAD", "STREAMING-"))
    if signed_payload and content_sha != hashlib.sha256(body).hexdigest():
        raise SignatureError(
            "content-mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."
        )
    expected = _signature(
        signed, secret=secret_access_key, token=session_token, method=method, url=url, headers=headers, body=body
    )
    if not hmac.compare_digest(expected, signed.signature):
        raise SignatureError(
            "mismatch",
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.",
        )


class _HmacV1AtExpiry(HmacV1Auth):  # type: ignore[misc]
    """botocore's SigV2 signer with the URL's Expires where the Date goes, as query-string authentication has it."""

    def __init__(self, credentials: Credentials, expires: int) -> None:
        super().__init__(credentials)
        self._expires = str(expires)

    def _get_date(self) -> str:
        return self._expires


def _verify_v2(
    signed: Signed,
    secret: str,
    token: str | None,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    now: dt.datetime,
) -> None:
    """S3 query-string authentication, Signature Version 2 (S3 API reference, "Signing and authenticating REST
    requests"): HMAC-SHA1 over the method, Content-MD5, Content-Type, Expires and the canonical resource."""
    assert signed.v2_expires is not None
    if now.timestamp() > signed.v2_expires:
        raise SignatureError("expired", "Request has expired")
    signing_headers = HTTPHeaders()
    for name in ("content-md5", "content-type"):
        if name in headers:
            signing_headers[name] = headers[name]
    auth = _HmacV1AtExpiry(Credentials(signed.access_key_id, secret, token), signed.v2_expires)
    expected = auth.get_signature(method, urlsplit(url), signing_headers)
    if not hmac.compare_digest(expected, signed.signature):
        raise SignatureError(
            "mismatch",
            "The request signature we calculated does not match the signature you provided. Check your key and "
            "signing method.",
        )


def _signature(
    signed: Signed,
    *,
    secret: str,
    token: str | None,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    credentials = Credentials(signed.access_key_id, secret, token)
    auth: Any = (S3SigV4Auth if signed.service == "s3" else SigV4Auth)(credentials, signed.service, signed.region)
    if signed.presigned:
        # The canonical query string of a presigned URL is everything but the signature itself.
        base, _, query = url.partition("?")
        kept = "&".join(p for p in query.split("&") if not p.startswith("X-Amz-Signature="))
        url = f"{base}?{kept}" if kept else base
    request = AWSRequest(
        method=method,
        url=url,
        data=body,
        headers={name: headers[name] for name in signed.signed_headers if name in headers},
    )
    request.context["timestamp"] = signed.amz_date
    if signed.presigned:
        request.context["payload_signing_enabled"] = False
    content_sha = headers.get("x-amz-content-sha256", "")
    canonical = auth.canonical_request(request)
    if signed.presigned:
        # botocore appends the header hash for S3; a presigned URL's canonical request ends with UNSIGNED-PAYLOAD.
        canonical = canonical.rsplit("\n", 1)[0] + "\n" + (content_sha or UNSIGNED_PAYLOAD)
    string_to_sign = auth.string_to_sign(request, canonical)
    return str(auth.signature(string_to_sign, request))


def signed_headers(
    method: str,
    url: str,
    body: bytes | None,
    *,
    region: str,
    service: str = "execute-api",
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, str]:
    """Headers that sign a plain HTTP request with SigV4 (botocore's signer), e.g. for an AWS_IAM API method."""
    request = AWSRequest(method=method, url=url, data=body or b"", headers=dict(headers or {}))
    SigV4Auth(Credentials(access_key_id, secret_access_key, session_token), service, region).add_auth(request)
    return dict(request.headers.items())
