"""Of two concurrent conditional PutObjects on one key exactly one succeeds, as on S3 (the local cloud's patch)."""

from __future__ import annotations

import contextlib
import sys
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.s3.models import S3Backend
from moto.server import ThreadedMotoServer

from mlloop.localcloud import s3_conditional_writes

BUCKET = "artifacts"
KEY = "training/start-lease.json"


@pytest.fixture
def s3_with_both_writers_at_the_check(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Both writers reach the precondition's read before either writes, when nothing keeps them apart."""
    barrier = threading.Barrier(2)
    original = S3Backend.get_object

    def get_object(self: S3Backend, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        found = original(self, bucket_name, key_name, *args, **kwargs)
        # PutObject's precondition reads the current object; hold each writer after that read until both read.
        if key_name == KEY and sys._getframe(1).f_code.co_name == "put_object" and not barrier.broken:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=2)
        return found

    monkeypatch.setattr(S3Backend, "get_object", get_object)
    # A server, as the local cloud runs moto: it serves requests on threads (the in-process mock serialises them).
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        # moto's backends are per process, not per server: start from an empty account.
        urllib.request.urlopen(urllib.request.Request(f"http://{host}:{port}/moto-api/reset", method="POST"))
        s3 = boto3.session.Session(
            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        ).client("s3", endpoint_url=f"http://{host}:{port}")
        s3.create_bucket(Bucket=BUCKET)
        yield s3
    finally:
        server.stop()


def _create_if_absent(s3: Any, body: bytes) -> str:
    try:
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=body, IfNoneMatch="*")
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "created"


def _race(s3: Any) -> list[str]:
    with ThreadPoolExecutor(2) as pool:
        return sorted(pool.map(lambda body: _create_if_absent(s3, body), [b"first", b"second"]))


def test_two_concurrent_create_if_absent_writes_cannot_both_succeed(s3_with_both_writers_at_the_check: Any) -> None:
    s3_conditional_writes.install(None)
    try:
        outcomes = _race(s3_with_both_writers_at_the_check)
    finally:
        s3_conditional_writes.uninstall()

    assert outcomes == ["PreconditionFailed", "created"]


def test_without_the_patch_moto_lets_both_succeed(s3_with_both_writers_at_the_check: Any) -> None:
    """Why the patch exists: moto 5.2.5 reads and writes in two steps (a check that the patch is still needed)."""
    assert _race(s3_with_both_writers_at_the_check) == ["created", "created"]
