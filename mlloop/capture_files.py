"""Write endpoint data capture exactly as SageMaker does (JSON lines), for demos, tests and benchmarks.

One line per request: the request body (one JSON record, or CSV rows in contract order) and the endpoint's
JSON response, under captureData.endpointInput / endpointOutput, as described in docs/monitoring.md.
"""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _csv_row(values: Sequence[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(["" if v is None else v for v in values])
    return out.getvalue()


def capture_record(
    request_body: str,
    response_body: str,
    *,
    content_type: str = "application/json",
    inference_time: datetime | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """One capture line's document for a request/response pair."""
    when = (inference_time or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": content_type,
                "mode": "INPUT",
                "data": request_body,
                "encoding": "CSV" if "csv" in content_type else "JSON",
            },
            "endpointOutput": {
                "observedContentType": "application/json",
                "mode": "OUTPUT",
                "data": response_body,
                "encoding": "JSON",
            },
        },
        "eventMetadata": {"eventId": event_id or str(uuid.uuid4()), "inferenceTime": when},
        "eventVersion": "0",
    }


def capture_lines(
    frame: pd.DataFrame,
    scores: Sequence[float] | np.ndarray,
    *,
    feature_order: Sequence[str],
    content_type: str = "application/json",
    threshold: float = 0.5,
    model_version: str = "1",
    inference_time: datetime | None = None,
    wrap_instances: bool = False,
) -> bytes:
    """Capture JSON lines for one request per row of ``frame`` answered with ``scores``.

    ``wrap_instances`` sends each record as ``{"instances": [record]}``, as the front door does.
    """
    columns = [frame[name].tolist() for name in feature_order]
    lines: list[str] = []
    for i, score in enumerate(np.asarray(scores, dtype=np.float64).tolist()):
        values = [_plain(col[i]) for col in columns]
        if "csv" in content_type:
            body = _csv_row(values)
        else:
            record_body: Any = dict(zip(feature_order, values, strict=True))
            body = json.dumps({"instances": [record_body]} if wrap_instances else record_body, separators=(",", ":"))
        response = {
            "predictions": [{"probability": score, "label": int(score >= threshold)}],
            "model_version": model_version,
            "threshold": threshold,
        }
        record = capture_record(
            body,
            json.dumps(response, separators=(",", ":")),
            content_type=content_type,
            inference_time=inference_time,
            event_id=f"{i:012d}",
        )
        lines.append(json.dumps(record, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode()
