"""Shared plumbing for the SageMaker and CloudWatch emulation: moto's in-process state, S3 I/O, the clock, events.

The emulation runs in the same process as moto's ThreadedMotoServer, so it reads and writes moto's
backends directly: no HTTP round trip, and none of moto's S3 bucket-policy misjudgements (see
notes/moto-5.2.5.md) get in the way of what the service itself does inside AWS.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from mlloop.localcloud.clock import Clock

DEFAULT_TIME_SCALE = 0.01

EventEmitter = Callable[..., Any]

_bind_lock = threading.Lock()
_emitter: EventEmitter | None = None
_time_scale: float | None = None
_endpoint_url: str = ""
_clock: Clock | None = None


def time_scale() -> float:
    """Factor applied to service waits (bake times, evaluation intervals): 0.01 makes 300 s take 3 s."""
    if _time_scale is not None:
        return _time_scale
    raw = os.environ.get("LOCALCLOUD_TIME_SCALE", "")
    return float(raw) if raw else DEFAULT_TIME_SCALE


def scaled(seconds: float) -> float:
    """Real seconds for `seconds` of service time in scaled mode (for ages compared with real time, not waits)."""
    return max(0.0, float(seconds)) * time_scale()


def clock() -> Clock:
    """The bound cloud's clock; unbound (a unit test of one emulation), a scaled clock of its own."""
    global _clock  # noqa: PLW0603
    with _bind_lock:
        if _clock is None:
            _clock = Clock(time_scale())
        return _clock


def utcnow() -> datetime:
    return clock().now()


def clock_offset() -> float:
    """Seconds the clock is ahead of the host (0 in scaled mode): what a host timestamp needs to be on the clock."""
    return clock().host_offset()


def iso_millis(moment: datetime) -> str:
    """The timestamp format CloudWatch uses in alarm events and SNS messages (2019-10-02T17:04:40.985+0000)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def bind(cloud: Any) -> None:
    """Take the cloud's time scale and endpoint, and send service events through its EventBridge delivery."""
    global _emitter, _time_scale, _endpoint_url, _clock  # noqa: PLW0603
    with _bind_lock:
        _emitter = cloud.emit_event
        _time_scale = getattr(cloud, "time_scale", None)
        _endpoint_url = str(getattr(cloud, "endpoint_url", "") or "")
        _clock = getattr(cloud, "clock", None)


def unbind() -> None:
    global _emitter, _time_scale, _endpoint_url, _clock  # noqa: PLW0603
    with _bind_lock:
        _emitter = None
        _time_scale = None
        _endpoint_url = ""
        _clock = None


def endpoint_url() -> str:
    """Where processes the cloud starts (training jobs, serving containers) reach its API; empty when unbound."""
    with _bind_lock:
        return _endpoint_url


def emit(source: str, detail_type: str, detail: dict[str, Any], resources: list[str]) -> None:
    with _bind_lock:
        emitter = _emitter
    if emitter is not None:
        emitter(source, detail_type, detail, resources=resources)


def iter_backends(backend_dict: Any) -> Iterator[tuple[str, str, Any]]:
    """(account, region, backend) for every backend moto has instantiated so far."""
    for account_id, by_region in list(backend_dict.items()):
        for region, backend in list(by_region.items()):
            yield account_id, region, backend


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _s3_backend(account_id: str) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[account_id]["aws"]


def read_s3(account_id: str, uri: str) -> bytes:
    bucket, key = split_s3_uri(uri)
    obj = _s3_backend(account_id).get_object(bucket, key)
    if obj is None:
        raise FileNotFoundError(f"{uri} does not exist")
    return bytes(obj.value)


def write_s3(account_id: str, uri: str, body: bytes, *, kms_key_id: str | None = None) -> None:
    bucket, key = split_s3_uri(uri)
    encryption = "aws:kms" if kms_key_id else None
    _s3_backend(account_id).put_object(bucket, key, body, encryption=encryption, kms_key_id=kms_key_id)


def put_log_lines(account_id: str, region: str, group: str, stream: str, lines: list[str]) -> None:
    """Append lines to a CloudWatch Logs stream (created with its group when missing), as a container's output."""
    from moto.logs.models import logs_backends

    logs = logs_backends[account_id][region]
    if group not in logs.groups:
        logs.create_log_group(group, {})
    if stream not in logs.groups[group].streams:
        logs.create_log_stream(group, stream)
    now = int(utcnow().timestamp() * 1000)
    events = [{"timestamp": now, "message": line} for line in lines if line.strip()]
    if events:
        logs.put_log_events(group, stream, events)
