"""Callers of the deployed model, as an application would call it, each answer kept for the report and the tests.

Two doors: the REST API over real HTTP (the local API Gateway on 127.0.0.1 routes to the front-door Lambda)
and SageMaker Runtime through boto3. Every request is recorded, answered or not, so "no request went
unanswered" is a fact the run can show rather than an impression.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from functions.shared.contract import DataContract
from mlloop.localcloud.authz.sigv4 import signed_headers
from mlloop.localcloud.identity import ADMIN_ACCESS_KEY_ID, ADMIN_SECRET_ACCESS_KEY


@dataclass(frozen=True)
class Answer:
    """One request and what came back: who answered (variant, version) and whether it was the fallback."""

    phase: str
    door: str  # "api" or "runtime"
    at: float  # seconds since the run started
    status: int  # HTTP status; 0 when no answer came back at all
    records: int
    model_version: str
    variant: str
    fallback: bool
    fallback_reason: str
    error: str

    @property
    def answered(self) -> bool:
        return self.status == 200

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def feature_records(frame: pd.DataFrame, contract: DataContract) -> list[dict[str, Any]]:
    """Request bodies: the contract's features of each row, JSON-ready (NaN becomes an omitted nullable field)."""
    records = []
    for row in frame[list(contract.feature_names)].to_dict(orient="records"):
        record: dict[str, Any] = {}
        for name, value in row.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            record[name] = value.item() if hasattr(value, "item") else value
        records.append(record)
    return records


def batches(records: Sequence[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [list(records[i : i + size]) for i in range(0, len(records), size)]


class Traffic:
    """Sends requests through both doors and keeps every answer in order."""

    def __init__(self, *, api_base: str, runtime: Any, endpoint_name: str, started: float) -> None:
        self.api_base = api_base.rstrip("/")
        self.runtime = runtime
        self.endpoint_name = endpoint_name
        self.started = started
        self.answers: list[Answer] = []

    def _clock(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        return self._http("GET", path, None)

    def post(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        """A raw POST, not recorded as traffic (e.g. a request that must be refused)."""
        return self._http("POST", path, body)

    def _http(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        url = f"{self.api_base}{path}"
        # The API's methods use AWS_IAM authorization: requests are SigV4-signed, as an app's SDK signs them.
        headers = signed_headers(
            method,
            url,
            data,
            region=self.runtime.meta.region_name,
            access_key_id=ADMIN_ACCESS_KEY_ID,
            secret_access_key=ADMIN_SECRET_ACCESS_KEY,
            headers={"Content-Type": "application/json"},
        )
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                return error.code, json.loads(raw)
            except ValueError:
                return error.code, {"message": raw.decode(errors="replace")}
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            return 0, {"message": str(error)}

    def predict(self, phase: str, records: Sequence[Mapping[str, Any]]) -> Answer:
        """POST /predict through the API: one record as itself, several as {"instances": [...]}."""
        body: Any = dict(records[0]) if len(records) == 1 else {"instances": [dict(r) for r in records]}
        status, answer = self._http("POST", "/predict", body)
        recorded = Answer(
            phase=phase,
            door="api",
            at=self._clock(),
            status=status,
            records=len(records),
            model_version=str(answer.get("model_version", "")),
            variant=str(answer.get("variant", "")),
            fallback=bool(answer.get("fallback", False)),
            fallback_reason=str(answer.get("fallback_reason") or ""),
            error="" if status == 200 else json.dumps(answer)[:300],
        )
        self.answers.append(recorded)
        return recorded

    def invoke_endpoint(self, phase: str, records: Sequence[Mapping[str, Any]]) -> Answer:
        """InvokeEndpoint through boto3's sagemaker-runtime client: no validation, no fallback."""
        try:
            response = self.runtime.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=json.dumps({"instances": [dict(r) for r in records]}),
            )
            answer = json.loads(response["Body"].read())
            recorded = Answer(
                phase=phase,
                door="runtime",
                at=self._clock(),
                status=200,
                records=len(records),
                model_version=str(answer.get("model_version", "")),
                variant=str(response.get("InvokedProductionVariant", "")),
                fallback=False,
                fallback_reason="",
                error="",
            )
        except Exception as error:  # a caller of the raw endpoint sees every failure; the run records it
            meta = getattr(error, "response", {}) or {}
            recorded = Answer(
                phase=phase,
                door="runtime",
                at=self._clock(),
                status=int(meta.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0) or 500,
                records=len(records),
                model_version="",
                variant="",
                fallback=False,
                fallback_reason="",
                error=f"{type(error).__name__}: {error}"[:300],
            )
        self.answers.append(recorded)
        return recorded

    def of_phase(self, phase: str) -> list[Answer]:
        return [a for a in self.answers if a.phase == phase]
