"""Evaluation against the champion, registration with lineage, and the outcome notice (moto S3, SageMaker, SNS)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.evaluate_candidate.logic import (
    CandidateArtifactsError,
    EvaluateSettings,
    evaluate_candidate,
)
from functions.notify_training_outcome.logic import NotifySettings, notify, summarise
from functions.register_model.logic import Candidate, RegisterSettings, metadata_value, register_model
from tests.unit.workflow_support import evaluation_report, model_archive
from training.gate import GatePolicy

REPO_ROOT = Path(__file__).resolve().parents[2]
GROUP = "mlloop-dev-churn"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
TRIGGER = {"kind": "alarm", "source": "mlloop-dev-churn-drift", "time": "2026-11-22T07:58:30Z", "event_id": "e1"}


@pytest.fixture
def aws() -> Iterator[dict[str, Any]]:
    with mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        clients = {name: session.client(name) for name in ("s3", "sagemaker", "sns")}
        clients["s3"].create_bucket(Bucket="artifacts")
        clients["sagemaker"].create_model_package_group(ModelPackageGroupName=GROUP)
        yield clients


def train_candidate(aws: dict[str, Any], run_id: str, evaluation: dict[str, Any], **kwargs: Any) -> str:
    key = f"training/runs/{run_id}/output/job/output/model.tar.gz"
    aws["s3"].put_object(Bucket="artifacts", Key=key, Body=model_archive(evaluation, **kwargs))
    return f"s3://artifacts/{key}"


def evaluate(aws: dict[str, Any], run_id: str, model_uri: str) -> Any:
    settings = EvaluateSettings("artifacts", GROUP, GatePolicy())
    return evaluate_candidate(run_id, model_uri, s3=aws["s3"], sagemaker=aws["sagemaker"], settings=settings)


def register(aws: dict[str, Any], run_id: str, model_uri: str, evaluation: Any, approval: str = "Approved") -> Any:
    settings = RegisterSettings(GROUP, IMAGE, "ml.t2.medium", approval, "sha256:code", "dev")  # type: ignore[arg-type]
    candidate = Candidate(
        run_id,
        TRIGGER,
        "sha256:data",
        f"s3://artifacts/training/runs/{run_id}/manifest.json",
        f"churn-{run_id}",
        model_uri,
        evaluation.to_dict(),
    )
    return register_model(candidate, sagemaker=aws["sagemaker"], settings=settings)


def test_the_first_candidate_passes_on_floors_and_is_registered_with_metrics_and_lineage(aws: dict[str, Any]) -> None:
    model_uri = train_candidate(aws, "run-1", evaluation_report(0.82, model_version="churn-run-1"))

    evaluation = evaluate(aws, "run-1", model_uri)
    registration = register(aws, "run-1", model_uri, evaluation)

    assert evaluation.promote
    assert evaluation.champion_model_version == ""
    package = aws["sagemaker"].describe_model_package(ModelPackageName=registration.model_package_arn)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == evaluation.evaluation_uri
    container = package["InferenceSpecification"]["Containers"][0]
    assert (container["Image"], container["ModelDataUrl"]) == (IMAGE, model_uri)
    meta = package["CustomerMetadataProperties"]
    assert meta["model_version"] == "churn-run-1"
    assert meta["data_version"] == "sha256:data"
    assert meta["code_version"] == "sha256:code"
    assert meta["contract_version"] == "1.0.0"
    assert (meta["trigger"], meta["trigger_source"]) == ("alarm", "mlloop-dev-churn-drift")
    assert meta["parent_model_version"] == "none"
    assert meta["fallback_model_uri"] == "s3://artifacts/training/runs/run-1/model/fallback_model.json"
    assert meta["drift_baseline_uri"] == "s3://artifacts/training/runs/run-1/model/drift_baseline.json"
    baseline = aws["s3"].get_object(Bucket="artifacts", Key="training/runs/run-1/model/drift_baseline.json")
    assert json.loads(baseline["Body"].read())["model_version"] == "churn-run-1"


def test_a_candidate_worse_than_the_champion_is_rejected_with_every_reason(aws: dict[str, Any]) -> None:
    champion_uri = train_candidate(aws, "run-1", evaluation_report(0.85, model_version="churn-run-1"))
    register(aws, "run-1", champion_uri, evaluate(aws, "run-1", champion_uri))
    worse_uri = train_candidate(aws, "run-2", evaluation_report(0.80, ece=0.09, model_version="churn-run-2"))

    evaluation = evaluate(aws, "run-2", worse_uri)

    assert not evaluation.promote
    assert evaluation.champion_model_version == "churn-run-1"
    assert any(r.startswith("champion.roc_auc") for r in evaluation.reasons)
    assert any(r.startswith("floor.ece") for r in evaluation.reasons)
    record = json.loads(
        aws["s3"].get_object(Bucket="artifacts", Key="training/runs/run-2/decision.json")["Body"].read()
    )
    assert record["decision"] == "reject"
    assert record["reasons"] == evaluation.reasons


def test_a_better_candidate_names_the_champion_as_its_parent(aws: dict[str, Any]) -> None:
    champion_uri = train_candidate(aws, "run-1", evaluation_report(0.80, model_version="churn-run-1"))
    register(aws, "run-1", champion_uri, evaluate(aws, "run-1", champion_uri))
    better_uri = train_candidate(aws, "run-2", evaluation_report(0.84, model_version="churn-run-2"))

    registration = register(aws, "run-2", better_uri, evaluate(aws, "run-2", better_uri))

    meta = aws["sagemaker"].describe_model_package(ModelPackageName=registration.model_package_arn)[
        "CustomerMetadataProperties"
    ]
    assert meta["parent_model_version"] == "churn-run-1"


def test_registering_the_same_run_twice_gives_one_package(aws: dict[str, Any]) -> None:
    model_uri = train_candidate(aws, "run-1", evaluation_report())
    evaluation = evaluate(aws, "run-1", model_uri)

    first = register(aws, "run-1", model_uri, evaluation)
    again = register(aws, "run-1", model_uri, evaluation)

    assert first.created and not again.created
    assert again.model_package_arn == first.model_package_arn
    assert len(aws["sagemaker"].list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]) == 1


def test_manual_approval_stages_register_pending_packages(aws: dict[str, Any]) -> None:
    model_uri = train_candidate(aws, "run-1", evaluation_report())

    registration = register(
        aws, "run-1", model_uri, evaluate(aws, "run-1", model_uri), approval="PendingManualApproval"
    )

    assert registration.approval_status == "PendingManualApproval"


def test_an_archive_without_its_reports_is_refused_by_name(aws: dict[str, Any]) -> None:
    model_uri = train_candidate(aws, "run-1", evaluation_report(), omit=("fallback_model.json",))

    with pytest.raises(CandidateArtifactsError, match=r"fallback_model\.json"):
        evaluate(aws, "run-1", model_uri)


def test_metadata_values_are_made_safe_for_the_registry() -> None:
    assert metadata_value("Drift (PSI > 0.2), plan!") == "Drift -PSI - 0.2-- plan-"
    assert len(metadata_value("x" * 400)) == 256


def test_notifications_say_what_happened(aws: dict[str, Any]) -> None:
    topic = aws["sns"].create_topic(Name="people")["TopicArn"]
    settings = NotifySettings(topic, GROUP, "dev")
    rejected_state = {
        "trigger": TRIGGER,
        "evaluation": {
            "reasons": ["champion.roc_auc: 0.80 vs 0.85"],
            "metrics": {"roc_auc": 0.8},
            "decision_uri": "s3://x",
        },
    }
    failed_state = {
        "trigger": TRIGGER,
        "failed_step": "evaluate the candidate",
        "error": {
            "Error": "CandidateArtifactsError",
            "Cause": json.dumps(
                {"errorType": "CandidateArtifactsError", "errorMessage": "model.tar.gz lacks fallback_model.json"}
            ),
        },
    }

    rejected = notify("rejected", "run-2", rejected_state, sns=aws["sns"], settings=settings)
    failed = summarise("failed", "run-3", failed_state, settings)

    assert "rejected" in rejected.subject
    assert "champion.roc_auc: 0.80 vs 0.85" in rejected.text
    assert failed.error == "CandidateArtifactsError"
    assert (
        failed.cause == "evaluate the candidate failed: CandidateArtifactsError: model.tar.gz lacks fallback_model.json"
    )


def test_the_evaluation_step_loads_without_the_scientific_stack() -> None:
    """Its Lambda has neither scikit-learn nor numpy: the promotion gate must stay pure Python."""
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'sklearn', 'numpy', 'pandas', 'scipy', 'pyarrow', 'joblib'}:\n"
        "            raise ImportError(f'{name} is not in the Lambda runtime')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import functions.evaluate_candidate.handler\n"
    )

    result = subprocess.run([sys.executable, "-c", blocker], cwd=REPO_ROOT, capture_output=True, text=True, check=False)

    assert result.returncode == 0, result.stderr[-2000:]


def test_a_rejected_empty_window_says_where_the_curated_data_is() -> None:
    state = {
        "snapshot": {
            "object_count": 0,
            "window_start": "2025-01-01",
            "window_end": "2025-12-31",
            "curated_span": "2014-02-01..2016-03-31",
            "data_version": "sha256:x",
        },
        "data_gate": {"reasons": ["rows: 0 is below min_rows 1000"]},
    }
    summary = summarise("data_rejected", "run-9", state, NotifySettings("topic", GROUP, "dev"))

    assert any("curated data spans 2014-02-01..2016-03-31" in line for line in summary.lines)


def test_a_candidate_trained_since_a_change_is_gated_against_the_champions_live_figures(aws: dict[str, Any]) -> None:
    # Given a champion that evaluated 0.85 on the old world, and a run whose snapshot started at a change where the
    # champion scored 0.76 live
    champion_uri = train_candidate(aws, "run-1", evaluation_report(0.85, model_version="churn-run-1"))
    register(aws, "run-1", champion_uri, evaluate(aws, "run-1", champion_uri))
    live = {"roc_auc": 0.76, "ece": 0.02, "labeled_predictions": 9000.0}
    manifest = {"run_id": "run-2", "champion_live_since_change": live}
    aws["s3"].put_object(Bucket="artifacts", Key="training/runs/run-2/manifest.json", Body=json.dumps(manifest))
    candidate_uri = train_candidate(aws, "run-2", evaluation_report(0.80, model_version="churn-run-2"))

    # When the gate judges a candidate scoring 0.80 on post-change data
    evaluation = evaluate(aws, "run-2", candidate_uri)

    # Then it is compared with what the champion does today, not with its old test figure, and says so
    assert evaluation.promote, evaluation.reasons
    record = json.loads(
        aws["s3"].get_object(Bucket="artifacts", Key="training/runs/run-2/decision.json")["Body"].read()
    )
    assert record["champion"]["compared_on"] == "live metrics since the change"
