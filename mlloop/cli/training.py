"""Retraining on request, through the same start function (and cooldown) every other trigger uses."""

from __future__ import annotations

import json
import uuid
from typing import Any

from mlloop.cli.platform import OperatorError, Platform


def request_retraining(
    platform: Platform, *, reason: str, force: bool, window_end: str | None = None
) -> dict[str, Any]:
    if not reason.strip():
        raise OperatorError("a reason is required: it becomes the execution's trigger")
    payload = {
        "trigger": "manual",
        "requested_by": platform.actor,
        "reason": reason,
        "force": force,
        "request_id": str(uuid.uuid4()),
    }
    if window_end:
        payload["window_end"] = window_end
    response = platform.client("lambda").invoke(
        FunctionName=platform.find_function("start_training"),
        InvocationType="RequestResponse",
        Payload=json.dumps(payload).encode(),
    )
    body = json.loads(response["Payload"].read() or b"{}")
    if response.get("FunctionError"):
        raise OperatorError(f"retraining request failed: {body.get('errorMessage', body)}")
    return dict(body)
