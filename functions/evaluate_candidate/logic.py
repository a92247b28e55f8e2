"""Evaluate the candidate against the champion with the training package's promotion gate.

No scikit-learn here: the training job already scored the candidate (evaluation.json inside model.tar.gz);
this step unpacks the reports, publishes them next to the run as the package's artifacts, reads the
champion's evaluation through the registry, and applies `training.gate` (pure Python).
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from functions.prepare_training_data.logic import run_prefix
from functions.shared.champion import describe_champion
from functions.shared.settings import load_settings
from training.gate import GatePolicy, champion_since_change, evaluate_gate

REPORT_FILES: tuple[str, ...] = (
    "evaluation.json",
    "drift_baseline.json",
    "fallback_model.json",
    "model_card.json",
    "model_metadata.json",
)
# Metadata key under which every registered package points at its full evaluation report.
EVALUATION_URI_KEY = "evaluation_uri"


class CandidateArtifactsError(ValueError):
    """model.tar.gz lacks a report the package needs; the message names it."""


class ChampionEvaluationError(ValueError):
    """The champion's evaluation cannot be read, so the candidate cannot be compared with it."""


@dataclass(frozen=True)
class EvaluateSettings:
    artifacts_bucket: str
    model_package_group: str
    policy: GatePolicy

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> EvaluateSettings:
        source = os.environ if env is None else env
        return load_settings(cls, source, policy=GatePolicy.from_dict(json.loads(source.get("GATE_POLICY") or "{}")))


@dataclass(frozen=True)
class Champion:
    package_arn: str
    model_version: str
    evaluation: dict[str, Any]


@dataclass(frozen=True)
class Evaluation:
    promote: bool
    decision: str
    reasons: list[str]
    model_version: str
    contract_ref: str
    primary_metric: str
    metrics: dict[str, float]
    champion_package_arn: str
    champion_model_version: str
    evaluation_uri: str
    drift_baseline_uri: str
    fallback_model_uri: str
    model_card_uri: str
    model_metadata_uri: str
    decision_uri: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def read_reports(archive: Any) -> dict[str, bytes]:
    """The JSON reports at the root of model.tar.gz (a file object), read as a stream: the model itself is skipped."""
    found: dict[str, bytes] = {}
    with tarfile.open(fileobj=archive, mode="r|gz") as tar:
        for member in tar:
            name = member.name.removeprefix("./")
            if name in REPORT_FILES and member.isfile():
                handle = tar.extractfile(member)
                if handle is not None:
                    found[name] = handle.read()
    missing = [name for name in REPORT_FILES if name not in found]
    if missing:
        raise CandidateArtifactsError(f"model.tar.gz lacks {', '.join(missing)}")
    return found


def find_champion(sagemaker: Any, s3: Any, group: str) -> Champion | None:
    """The newest Approved package of the group, with its evaluation report; None before the first approval."""
    described = describe_champion(sagemaker, group)
    if described is None:
        return None
    arn = str(described["ModelPackageArn"])
    metadata = described.get("CustomerMetadataProperties") or {}
    uri = metadata.get(EVALUATION_URI_KEY) or (
        described.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
    )
    if not uri:
        raise ChampionEvaluationError(f"champion {arn} carries no evaluation report to compare with")
    bucket, key = split_s3_uri(uri)
    evaluation = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return Champion(arn, str(metadata.get("model_version", arn.rsplit("/", 1)[-1])), evaluation)


def run_manifest(s3: Any, bucket: str, run_id: str) -> dict[str, Any]:
    """The run's snapshot manifest (functions/prepare_training_data); empty when the run has none."""
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{run_prefix(run_id)}/manifest.json")["Body"].read()
    except s3.exceptions.NoSuchKey:
        return {}
    return dict(json.loads(body))


def evaluate_candidate(
    run_id: str, model_artifacts_uri: str, *, s3: Any, sagemaker: Any, settings: EvaluateSettings
) -> Evaluation:
    bucket, key = split_s3_uri(model_artifacts_uri)
    reports = read_reports(s3.get_object(Bucket=bucket, Key=key)["Body"])
    prefix = f"{run_prefix(run_id)}/model"
    uris: dict[str, str] = {}
    for name, body in reports.items():
        s3.put_object(
            Bucket=settings.artifacts_bucket, Key=f"{prefix}/{name}", Body=body, ContentType="application/json"
        )
        uris[name] = f"s3://{settings.artifacts_bucket}/{prefix}/{name}"
    candidate = json.loads(reports["evaluation.json"])
    metadata = json.loads(reports["model_metadata.json"])
    champion = find_champion(sagemaker, s3, settings.model_package_group)
    live = run_manifest(s3, settings.artifacts_bucket, run_id).get("champion_live_since_change")
    reference = champion_since_change(champion.evaluation, live) if champion else None
    decision = evaluate_gate(candidate, reference, settings.policy)
    test_metrics = candidate.get("metrics", {}).get("test", {})
    record = {
        "run_id": run_id,
        "model_artifacts_uri": model_artifacts_uri,
        "policy": settings.policy.to_dict(),
        "champion": {
            "package_arn": champion.package_arn,
            "model_version": champion.model_version,
            "compared_on": "live metrics since the change" if live else "its evaluation at registration",
        }
        if champion
        else None,
        **decision.to_dict(),
    }
    decision_key = f"{run_prefix(run_id)}/decision.json"
    s3.put_object(
        Bucket=settings.artifacts_bucket,
        Key=decision_key,
        Body=json.dumps(record, indent=1, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return Evaluation(
        promote=decision.approved,
        decision="promote" if decision.approved else "reject",
        reasons=decision.reasons,
        model_version=str(metadata.get("model_version", "")),
        contract_ref=str(metadata.get("contract_ref", "")),
        primary_metric=settings.policy.primary_metric,
        metrics={
            k: float(v) for k, v in test_metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
        },
        champion_package_arn=champion.package_arn if champion else "",
        champion_model_version=champion.model_version if champion else "",
        evaluation_uri=uris["evaluation.json"],
        drift_baseline_uri=uris["drift_baseline.json"],
        fallback_model_uri=uris["fallback_model.json"],
        model_card_uri=uris["model_card.json"],
        model_metadata_uri=uris["model_metadata.json"],
        decision_uri=f"s3://{settings.artifacts_bucket}/{decision_key}",
    )
