"""Batch scoring: one curated partition through the deployed model into the lake's `predictions` table.

The live endpoint scores the records (in requests of the front door's batch size), so a batch prediction and
an online one come from the same model version and contract, and data capture sees both. Output keys are a
pure function of (partition, model version, input file): a re-run overwrites its own output, never duplicates.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from functions.frontdoor.logic import RETRYABLE, EndpointCallError, EndpointInvoker
from functions.shared.contract import DataContract, parse_contract
from functions.shared.serving_manifest import ServingManifest
from functions.shared.transient import TransientError

PARTITION_COLUMN = "event_date"


@dataclass(frozen=True)
class BatchSettings:
    endpoint_name: str
    dataset: str
    curated_bucket: str
    capture_bucket: str
    predictions_prefix: str
    manifest_bucket: str
    manifest_key: str
    batch_records: int
    # Beside other models of the stage, this model's name: models scoring one partition share the predictions
    # table and the version numbers, so the file name says whose answers it holds. Empty for a stage's only model.
    model: str = ""


def partition_prefix(dataset: str, partition_date: str) -> str:
    return f"{dataset}/{PARTITION_COLUMN}={partition_date}/"


def output_key(settings: BatchSettings, *, scored_on: str, partition_date: str, model_version: str, key: str) -> str:
    stem = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    model = f"{settings.model}-" if settings.model else ""
    return (
        f"{settings.predictions_prefix}/prediction_date={scored_on}/"
        f"batch-{model}{partition_date}-{model_version}-{stem}.json"
    )


def _clean(value: Any) -> Any:
    """Parquet nulls arrive as None, float NaN for missing doubles in some writers: both mean missing."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


class BatchScorer:
    def __init__(
        self,
        settings: BatchSettings,
        *,
        s3: Any,
        invoker: EndpointInvoker,
        read_rows: Callable[[bytes, list[str], int], Iterator[list[dict[str, Any]]]],
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
    ) -> None:
        self.settings = settings
        self.s3 = s3
        self.invoker = invoker
        self.read_rows = read_rows
        self.today = today

    def _manifest(self) -> ServingManifest | None:
        try:
            body = self.s3.get_object(Bucket=self.settings.manifest_bucket, Key=self.settings.manifest_key)[
                "Body"
            ].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        return ServingManifest.from_json(body)

    def plan(self, partition_date: str | None) -> dict[str, Any]:
        """The partition (default: yesterday, UTC) and its parquet files, scored by the deployed model."""
        day = partition_date or (self.today() - dt.timedelta(days=1)).isoformat()
        dt.date.fromisoformat(day)
        manifest = self._manifest()
        if manifest is None:
            return {"partition_date": day, "model_version": "", "files": [], "reason": "no model is deployed"}
        files: list[str] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        prefix = partition_prefix(self.settings.dataset, day)
        for page in paginator.paginate(Bucket=self.settings.curated_bucket, Prefix=prefix):
            files.extend(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".parquet"))
        return {"partition_date": day, "model_version": manifest.model_version, "files": sorted(files)}

    def score(self, *, key: str, partition_date: str, model_version: str) -> dict[str, Any]:
        manifest = self._manifest()
        if manifest is None:
            raise RuntimeError("no model is deployed: the serving manifest is missing")
        contract = parse_contract(manifest.contract)
        body = self.s3.get_object(Bucket=self.settings.curated_bucket, Key=key)["Body"].read()
        columns = [contract.entity_key, *contract.feature_names]
        scored_on = self.today().isoformat()
        lines: list[str] = []
        rows_in = 0
        versions: set[str] = set()
        for chunk in self.read_rows(body, columns, self.settings.batch_records):
            rows_in += len(chunk)
            lines.extend(self._score_chunk(contract, chunk, key=key, scored_on=scored_on, versions=versions))
        out = output_key(
            self.settings, scored_on=scored_on, partition_date=partition_date, model_version=model_version, key=key
        )
        self.s3.put_object(
            Bucket=self.settings.capture_bucket,
            Key=out,
            Body=("\n".join(lines) + "\n").encode() if lines else b"",
            ContentType="application/x-ndjson",
        )
        return {"key": key, "output": out, "rows": rows_in, "model_versions": sorted(versions)}

    def _score_chunk(
        self, contract: DataContract, chunk: list[dict[str, Any]], *, key: str, scored_on: str, versions: set[str]
    ) -> list[str]:
        records = [{name: _clean(row.get(name)) for name in contract.feature_names} for row in chunk]
        payload = json.dumps({"instances": records}, separators=(",", ":")).encode()
        try:
            answer = self.invoker.invoke(self.settings.endpoint_name, payload)
        except EndpointCallError as fault:
            if fault.reason in RETRYABLE:
                raise TransientError(f"{fault.reason}: {fault.detail}") from None
            raise
        reply = json.loads(answer.body)
        predictions = reply["predictions"]
        if len(predictions) != len(records):
            raise EndpointCallError("model_error", f"{len(predictions)} predictions for {len(records)} records")
        version = str(reply["model_version"])
        versions.add(version)
        request_id = f"batch-{key}"
        lines = []
        for row, record, prediction in zip(chunk, records, predictions, strict=True):
            entity = row.get(contract.entity_key)
            lines.append(
                json.dumps(
                    {
                        "request_id": request_id,
                        "predicted_at": f"{scored_on}T00:00:00Z",
                        contract.entity_key: None if entity is None else str(entity),
                        "endpoint_name": self.settings.endpoint_name,
                        "model_version": version,
                        "variant": answer.variant,
                        "fallback": False,
                        "probability": float(prediction["probability"]),
                        "label": int(prediction["label"]),
                        "contract_version": contract.version,
                        "features": json.dumps(record, separators=(",", ":")),
                    },
                    separators=(",", ":"),
                )
            )
        return lines


def parquet_rows(body: bytes, columns: list[str], batch_size: int) -> Iterator[list[dict[str, Any]]]:
    """Rows of a parquet file in chunks, one record batch in memory at a time."""
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(io.BytesIO(body))
    present = [c for c in columns if c in reader.schema_arrow.names]
    for batch in reader.iter_batches(batch_size=batch_size, columns=present):
        yield batch.to_pylist()
