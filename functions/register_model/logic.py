"""Register the approved candidate as a model package: metrics, artifacts, lineage, and the stage's approval.

The package is what serving deploys and what the next run compares with. Its CustomerMetadataProperties carry
the lineage (data, code and contract versions, the trigger, the parent model) and the URIs of the reports the
front door (fallback model) and the drift detector (baseline) load. One run registers at most one package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from functions.shared.package_metadata import evaluated_metric_key, metadata_value

ApprovalStatus = Literal["Approved", "PendingManualApproval"]
RECENT_PACKAGES_CHECKED = 20


@dataclass(frozen=True)
class RegisterSettings:
    model_package_group: str
    inference_image_uri: str
    inference_instance_type: str
    approval_status: ApprovalStatus
    code_version: str
    stage: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RegisterSettings:
        source = os.environ if env is None else env
        status = source["APPROVAL_STATUS"]
        if status not in ("Approved", "PendingManualApproval"):
            raise ValueError(f"APPROVAL_STATUS: {status!r} is not Approved or PendingManualApproval")
        return cls(
            model_package_group=source["MODEL_PACKAGE_GROUP"],
            inference_image_uri=source["INFERENCE_IMAGE_URI"],
            inference_instance_type=source["INFERENCE_INSTANCE_TYPE"],
            approval_status="Approved" if status == "Approved" else "PendingManualApproval",
            code_version=source["CODE_VERSION"],
            stage=source.get("STAGE", ""),
        )


@dataclass(frozen=True)
class Candidate:
    """What the workflow knows about the run by the time the gate approved it."""

    run_id: str
    trigger: Mapping[str, Any]
    data_version: str
    manifest_uri: str
    training_job_name: str
    model_data_url: str
    evaluation: Mapping[str, Any]

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Candidate:
        return cls(
            run_id=str(event["run_id"]),
            trigger=dict(event.get("trigger") or {}),
            data_version=str(event["data_version"]),
            manifest_uri=str(event["manifest_uri"]),
            training_job_name=str(event["training_job_name"]),
            model_data_url=str(event["model_data_url"]),
            evaluation=dict(event["evaluation"]),
        )


@dataclass(frozen=True)
class Registration:
    model_package_arn: str
    model_package_version: int
    approval_status: str
    model_version: str
    created: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def lineage_metadata(candidate: Candidate, settings: RegisterSettings) -> dict[str, str]:
    """CustomerMetadataProperties: the keys serving, monitoring and people read (docs/training-workflow.md)."""
    ev = candidate.evaluation
    trigger = candidate.trigger
    contract_ref = str(ev.get("contract_ref", ""))
    detail = trigger.get("detail") or {}
    values: dict[str, Any] = {
        "run_id": candidate.run_id,
        "model_version": ev.get("model_version", ""),
        "contract_ref": contract_ref,
        "contract_version": contract_ref.partition("@")[2],
        "data_version": candidate.data_version,
        "code_version": settings.code_version,
        "manifest_uri": candidate.manifest_uri,
        "training_job_name": candidate.training_job_name,
        "evaluation_uri": ev.get("evaluation_uri", ""),
        "fallback_model_uri": ev.get("fallback_model_uri", ""),
        "drift_baseline_uri": ev.get("drift_baseline_uri", ""),
        "model_card_uri": ev.get("model_card_uri", ""),
        "decision_uri": ev.get("decision_uri", ""),
        "trigger": trigger.get("kind", "manual"),
        "trigger_source": trigger.get("source", ""),
        "trigger_time": trigger.get("time", ""),
        "trigger_event_id": trigger.get("event_id", ""),
        "trigger_reason": detail.get("reason", "") if isinstance(detail, Mapping) else "",
        "parent_model_version": ev.get("champion_model_version") or "none",
        "parent_model_package_arn": ev.get("champion_package_arn") or "none",
        "primary_metric": ev.get("primary_metric", ""),
        "stage": settings.stage,
    }
    metrics = ev.get("metrics") or {}
    for name in ("roc_auc", "pr_auc", "log_loss", "ece"):
        if name in metrics:
            values[evaluated_metric_key(name)] = f"{float(metrics[name]):.6f}"
    return {key: metadata_value(value) for key, value in values.items() if value != ""}


def package_request(candidate: Candidate, settings: RegisterSettings) -> dict[str, Any]:
    ev = candidate.evaluation
    metric = str(ev.get("primary_metric", "roc_auc"))
    score = (ev.get("metrics") or {}).get(metric)
    described = f"{metric} {float(score):.4f}" if isinstance(score, int | float) else "see evaluation"
    return {
        "ModelPackageGroupName": settings.model_package_group,
        "ModelPackageDescription": (
            f"{ev.get('model_version', candidate.run_id)}: {described}; data {candidate.data_version}; "
            f"trigger {candidate.trigger.get('kind', 'manual')}"
        )[:1024],
        "InferenceSpecification": {
            "Containers": [
                {
                    "Image": settings.inference_image_uri,
                    "ModelDataUrl": candidate.model_data_url,
                    # The training job packs inference.py under code/ inside model.tar.gz.
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
                        "SAGEMAKER_CONTAINER_LOG_LEVEL": "20",
                    },
                    "Framework": "SKLEARN",
                    "FrameworkVersion": "1.9-0",
                }
            ],
            "SupportedContentTypes": ["application/json", "text/csv"],
            "SupportedResponseMIMETypes": ["application/json"],
            "SupportedRealtimeInferenceInstanceTypes": [settings.inference_instance_type],
        },
        "ModelMetrics": {
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": ev["evaluation_uri"]}}
        },
        "DriftCheckBaselines": {
            "ModelDataQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": ev["drift_baseline_uri"]}}
        },
        "Domain": "MACHINE_LEARNING",
        "Task": "CLASSIFICATION",
        "ModelApprovalStatus": settings.approval_status,
        "CustomerMetadataProperties": lineage_metadata(candidate, settings),
    }


def find_registered(sagemaker: Any, group: str, run_id: str) -> dict[str, Any] | None:
    """A package this run already registered (a retried step must not register twice)."""
    summaries = sagemaker.list_model_packages(
        ModelPackageGroupName=group, SortBy="CreationTime", SortOrder="Descending", MaxResults=RECENT_PACKAGES_CHECKED
    ).get("ModelPackageSummaryList", [])
    for summary in summaries:
        described: dict[str, Any] = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        if (described.get("CustomerMetadataProperties") or {}).get("run_id") == run_id:
            return described
    return None


def register_model(candidate: Candidate, *, sagemaker: Any, settings: RegisterSettings) -> Registration:
    existing = find_registered(sagemaker, settings.model_package_group, candidate.run_id)
    created = existing is None
    if existing is None:
        arn = str(sagemaker.create_model_package(**package_request(candidate, settings))["ModelPackageArn"])
        existing = sagemaker.describe_model_package(ModelPackageName=arn)
    return Registration(
        model_package_arn=str(existing["ModelPackageArn"]),
        model_package_version=int(existing.get("ModelPackageVersion") or 0),
        approval_status=str(existing.get("ModelApprovalStatus") or settings.approval_status),
        model_version=str((existing.get("CustomerMetadataProperties") or {}).get("model_version", "")),
        created=created,
    )
