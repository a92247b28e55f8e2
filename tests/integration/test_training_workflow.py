"""The synthesized training workflow, run end to end on the local cloud with the real handlers and real training.

The state machine is the one `cdk synth` wrote (deployed from cdk.out); SageMaker training runs training/train.py
from the synthesized source bundle. The staging stage is used: it approves automatically like dev but does not
retrain on every curated file, so the data other integration tests write never starts runs here. Each scenario owns
a calendar year of curated data and names that year's end as its window end, so its training window holds its data
only; it triggers now, after its data landed (a run knows only what had landed by its trigger's time).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from moto.core.exceptions import JsonRESTError
from moto.sagemaker.responses import SageMakerResponse

from mlloop.datagen import generate_churn
from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment
from tests.unit.workflow_support import put_curated

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]
STAGE = "staging"
PREFIX = f"mlloop-{STAGE}"
GROUP = f"{PREFIX}-churn"
ROWS = 6000
EXECUTION_TIMEOUT = 600.0


class Workflow:
    def __init__(self, cloud: LocalCloud, deployment: Deployment) -> None:
        self.cloud = cloud
        self.deployment = deployment
        self.machine = deployment.physical_id(f"{PREFIX}-training/StateMachine")
        self.curated = deployment.physical_id(f"{PREFIX}-data-lake/CuratedBucket")
        self.artifacts = deployment.physical_id(f"{PREFIX}-data-lake/ArtifactsBucket")
        self.sfn = cloud.client("stepfunctions")
        self.s3 = cloud.client("s3")
        self.sagemaker = cloud.client("sagemaker")

    def stage_year(
        self,
        start: datetime,
        frame_edit: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
        seed: int | None = None,
    ) -> None:
        frame = generate_churn(ROWS, seed=seed or start.year, start=start, months=12)
        put_curated(self.s3, self.curated, frame_edit(frame) if frame_edit else frame)

    def run(self, name: str, trigger: dict[str, Any]) -> dict[str, Any]:
        started = self.sfn.start_execution(
            stateMachineArn=self.machine, name=name, input=json.dumps({"trigger": trigger})
        )
        return self.cloud.wait_for_execution(started["executionArn"], timeout=EXECUTION_TIMEOUT)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        pages = self.sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
        return [event for page in pages for event in page["events"]]

    def packages_of(self, run_id: str) -> list[dict[str, Any]]:
        found = []
        for summary in self.sagemaker.list_model_packages(ModelPackageGroupName=GROUP, MaxResults=100)[
            "ModelPackageSummaryList"
        ]:
            described = self.sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if described.get("CustomerMetadataProperties", {}).get("run_id") == run_id:
                found.append(described)
        return found

    def read_json(self, uri: str) -> dict[str, Any]:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return dict(json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


@pytest.fixture(scope="module")
def workflow(local_cloud: LocalCloud) -> Workflow:
    return Workflow(local_cloud, local_cloud.deploy(STAGE))


def year_trigger(year: int, kind: str = "manual", source: str = "integration-test") -> dict[str, Any]:
    return {
        "kind": kind,
        "source": source,
        "time": iso_now(),
        "event_id": f"{kind}-{year}",
        "detail": {"window_end": f"{year}-12-31"},
    }


def iso_now() -> str:
    """Now, to S3's precision: LastModified, the lake's arrival record, has whole seconds."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@contextlib.contextmanager
def throttled(operation: str, run_id: str, times: int) -> Iterator[list[int]]:
    """The first `times` calls to SageMaker `operation` for `run_id` are answered ThrottlingException on every attempt
    botocore makes, as a call fails once botocore has spent its own retries. The handlers run in their own processes,
    so the fault is the server's: a call is counted at its first attempt (botocore's `amz-sdk-request: attempt=1`
    header). Other runs in flight are left alone."""
    calls: list[int] = []
    method = re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
    original = getattr(SageMakerResponse, method)

    def throttle(response: SageMakerResponse) -> Any:
        params = json.loads(response.body or "{}")
        if params.get("CustomerMetadataProperties", {}).get("run_id") == run_id:
            if re.match(r"attempt=1\b", str(response.headers.get("amz-sdk-request", ""))):
                calls.append(1)
            if len(calls) <= times:
                raise JsonRESTError("ThrottlingException", "Rate exceeded")
        return original(response)

    setattr(SageMakerResponse, method, throttle)
    try:
        yield calls
    finally:
        setattr(SageMakerResponse, method, original)


def shuffled_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """Labels that no feature explains: any model ranks at chance, below the gate's AUC floor."""
    out = frame.copy()
    out["churned"] = np.random.default_rng(0).permutation(out["churned"].to_numpy())
    return out


def leaking_feature(frame: pd.DataFrame) -> pd.DataFrame:
    """A feature that is the label in disguise: training refuses it as leakage and the job fails."""
    out = frame.copy()
    out["support_calls_90d"] = out["churned"].astype("int64") * 50
    return out


@pytest.fixture(scope="module")
def registered_run(workflow: Workflow) -> dict[str, Any]:
    """The happy path, with the registration step throttled twice on the way."""
    workflow.stage_year(datetime(2021, 1, 1, tzinfo=UTC))
    trigger = year_trigger(2021, kind="alarm", source=f"{PREFIX}-churn-retraining-needed")
    with throttled("CreateModelPackage", "it-registered-2021", times=2) as calls:
        execution = workflow.run("it-registered-2021", trigger)
    return {"execution": execution, "create_calls": len(calls), "trigger": trigger}


def test_the_happy_path_registers_a_package_with_metrics_and_lineage(
    workflow: Workflow, registered_run: dict[str, Any]
) -> None:
    execution = registered_run["execution"]
    assert execution["status"] == "SUCCEEDED", execution.get("cause")

    (package,) = workflow.packages_of("it-registered-2021")
    output = json.loads(execution["output"])
    meta = package["CustomerMetadataProperties"]
    manifest = workflow.read_json(meta["manifest_uri"])
    assert package["ModelApprovalStatus"] == "Approved"
    assert (
        workflow.read_json(package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"])[
            "binary_classification_metrics"
        ]["auc"]["value"]
        > 0.7
    )
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"].endswith("/output/model.tar.gz")
    assert meta["data_version"] == manifest["data_version"] == output["snapshot"]["data_version"]
    assert meta["code_version"].startswith("sha256:")
    assert meta["contract_version"] == "1.0.0"
    assert (meta["trigger"], meta["trigger_source"]) == ("alarm", f"{PREFIX}-churn-retraining-needed")
    assert meta["trigger_time"] == registered_run["trigger"]["time"]
    assert manifest["labels"]["cut"] == output["snapshot"]["label_as_of"]
    assert manifest["labels"]["labelled"] > 0 and manifest["retraining"]["reason"]
    assert meta["model_version"] == "churn-it-registered-2021"
    assert workflow.read_json(meta["fallback_model_uri"])
    assert workflow.read_json(meta["drift_baseline_uri"])
    assert output["notification"]["outcome"] == "registered"


def test_throttling_on_registration_is_absorbed_by_retries(workflow: Workflow, registered_run: dict[str, Any]) -> None:
    execution = registered_run["execution"]
    failures = [
        e["lambdaFunctionFailedEventDetails"]["error"]
        for e in workflow.history(execution["executionArn"])
        if e["type"] == "LambdaFunctionFailed"
    ]

    assert execution["status"] == "SUCCEEDED"
    assert failures == ["TransientError", "TransientError"]
    assert registered_run["create_calls"] == 3
    assert len(workflow.packages_of("it-registered-2021")) == 1


def test_a_candidate_below_the_gate_is_rejected_with_every_reason_and_not_registered(workflow: Workflow) -> None:
    workflow.stage_year(datetime(2019, 1, 1, tzinfo=UTC), shuffled_labels)

    execution = workflow.run("it-rejected-2019", year_trigger(2019))

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    assert output["evaluation"]["promote"] is False
    assert any(r.startswith("floor.roc_auc") for r in output["evaluation"]["reasons"])
    decision = workflow.read_json(output["evaluation"]["decision_uri"])
    assert decision["decision"] == "reject"
    assert decision["reasons"] == output["evaluation"]["reasons"]
    assert output["notification"]["outcome"] == "rejected"
    assert workflow.packages_of("it-rejected-2019") == []


def test_a_failing_training_job_reaches_the_catch_and_fails_the_run_with_its_cause(workflow: Workflow) -> None:
    workflow.stage_year(datetime(2017, 1, 1, tzinfo=UTC), leaking_feature)

    execution = workflow.run("it-failed-2017", year_trigger(2017))

    assert execution["status"] == "FAILED"
    assert execution["error"] == "TrainingJobFailed"
    assert execution["cause"].startswith("training job failed: SageMaker training job churn-it-failed-2017 failed:")
    assert "LeakageError" in execution["cause"]
    assert "support_calls_90d" in execution["cause"]
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in workflow.history(execution["executionArn"])
        if "stateEnteredEventDetails" in e
    ]
    assert entered[-2:] == ["NotifyFailure", "TrainingRunFailed"]
    assert workflow.packages_of("it-failed-2017") == []


def test_a_snapshot_the_data_gate_refuses_never_trains(workflow: Workflow) -> None:
    execution = workflow.run("it-no-data-2013", year_trigger(2013))

    assert execution["status"] == "FAILED"
    assert execution["error"] == "DataGateRejected"
    assert "row count 0" in execution["cause"]
    assert not [e for e in workflow.history(execution["executionArn"]) if e["type"] == "TaskScheduled"]


def test_the_same_trigger_delivered_twice_gives_one_execution_and_one_package(workflow: Workflow) -> None:
    now = datetime.now(UTC)
    # The 2021 champion's rows again, twelve months ending a label window ago (every label closed): the same model,
    # which the promotion gate passes whatever the noise of its slices.
    workflow.stage_year(now - timedelta(days=390), seed=2021)
    starter = workflow.deployment.physical_id(f"{PREFIX}-training/StartTrainingFunction")
    request = {
        "trigger": "manual",
        "requested_by": "integration-test",
        "reason": "twice",
        "force": True,
        "request_id": f"dup-{now:%Y%m%d%H%M%S}",
    }
    lam = workflow.cloud.client("lambda")

    answers = [
        json.loads(lam.invoke(FunctionName=starter, Payload=json.dumps(request).encode())["Payload"].read())
        for _ in range(2)
    ]
    execution = workflow.cloud.wait_for_execution(answers[0]["execution_arn"], timeout=EXECUTION_TIMEOUT)
    third = json.loads(lam.invoke(FunctionName=starter, Payload=json.dumps(request).encode())["Payload"].read())

    assert answers[0]["started"] is True
    assert answers[1]["started"] is False
    assert third["started"] is False and "duplicate" in third["reason"]
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert len(workflow.packages_of(answers[0]["execution_name"])) == 1


def _snapshot_rows(workflow: Workflow, manifest: dict[str, Any]) -> pd.DataFrame:
    keys = sorted({o["snapshot_key"] for o in manifest["objects"] if o["snapshot_key"]})
    frames = [
        pd.read_parquet(io.BytesIO(workflow.s3.get_object(Bucket=workflow.artifacts, Key=k)["Body"].read()))
        for k in keys
    ]
    return pd.concat(frames, ignore_index=True)


def _prepare(workflow: Workflow, run_id: str, trigger: dict[str, Any]) -> dict[str, Any]:
    """The deployed snapshot step, invoked as the workflow invokes it (its own role, its own process)."""
    function = workflow.deployment.physical_id(f"{PREFIX}-training/PrepareTrainingDataFunction")
    answer = workflow.cloud.client("lambda").invoke(
        FunctionName=function, Payload=json.dumps({"run_id": run_id, "trigger": trigger}).encode()
    )
    snapshot = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, snapshot
    return {"snapshot": snapshot, "manifest": workflow.read_json(snapshot["manifest_uri"])}


def _wait_for_the_next_second() -> None:
    """S3's LastModified has whole seconds: what lands after a cut must land in a later second."""
    start = datetime.now(UTC).replace(microsecond=0)
    while datetime.now(UTC).replace(microsecond=0) <= start:
        time.sleep(0.05)


def test_a_snapshot_never_holds_an_immature_or_not_yet_arrived_label(workflow: Workflow) -> None:
    # Given recent rows, some still inside their 30-day label window, some whose inline label is missing
    now = datetime.now(UTC)
    recent = generate_churn(800, seed=31, start=now - timedelta(days=55), months=2)
    recent = recent[pd.to_datetime(recent["event_time"], utc=True) <= now - timedelta(hours=1)].reset_index(drop=True)
    times = pd.to_datetime(recent["event_time"], utc=True)
    mature = times + timedelta(days=30) <= now
    awaiting = recent[mature].sample(frac=0.3, random_state=1).index
    staged = recent.astype({"churned": "float64"})
    staged.loc[awaiting, "churned"] = np.nan
    put_curated(workflow.s3, workflow.curated, staged, file_stem="leakage-0000")
    _wait_for_the_next_second()
    cut = iso_now()
    _wait_for_the_next_second()
    # ... and after the cut: the missing outcomes land through the label dataset, and a late file of rows
    outcomes = recent.loc[awaiting, ["customer_id", "event_time", "churned"]].assign(label_source="window_elapsed")
    put_curated(workflow.s3, workflow.curated, outcomes, dataset="churn_labels", file_stem="leakage-0000")
    late = generate_churn(200, seed=32, start=now - timedelta(days=50), months=1)
    put_curated(workflow.s3, workflow.curated, late, file_stem="leakage-late-0000")
    trigger = {"kind": "manual", "source": "leakage-test", "time": cut, "event_id": "leakage", "detail": {}}

    # When a snapshot is cut at that time, and another one now
    at_cut = _prepare(workflow, "it-leakage-at-cut", trigger)
    later = _prepare(workflow, "it-leakage-later", {**trigger, "time": iso_now(), "event_id": "leakage-later"})

    # Then at the cut: no row whose window was open, no label or row that landed after it
    rows = _snapshot_rows(workflow, at_cut["manifest"])
    cut_time = pd.Timestamp(cut)
    assert (pd.to_datetime(rows["event_time"], utc=True) + pd.Timedelta(days=30) <= cut_time).all()
    assert rows["churned"].notna().all()
    keys = set(zip(rows["customer_id"], pd.to_datetime(rows["event_time"], utc=True), strict=True))
    assert not keys & set(zip(outcomes["customer_id"], pd.to_datetime(outcomes["event_time"], utc=True), strict=True))
    assert not keys & set(zip(late["customer_id"], pd.to_datetime(late["event_time"], utc=True), strict=True))
    labels = at_cut["manifest"]["labels"]
    assert labels["cut"] == at_cut["snapshot"]["label_as_of"] == cut_time.isoformat()
    assert labels["immature_dropped"] >= int((~mature).sum())
    assert labels["unlabelled_dropped"] >= len(awaiting)
    assert labels["labels_not_yet_arrived"] >= len(awaiting)
    assert labels["rows_not_yet_arrived"] >= len(late)
    assert labels["labelled"] == len(rows)
    # ... and once they have landed, the outcomes label their rows
    rows_later = _snapshot_rows(workflow, later["manifest"])
    later_keys = set(zip(rows_later["customer_id"], pd.to_datetime(rows_later["event_time"], utc=True), strict=True))
    awaited = set(zip(outcomes["customer_id"], pd.to_datetime(outcomes["event_time"], utc=True), strict=True))
    assert awaited <= later_keys
    assert later["manifest"]["labels"]["feed_labels"] >= len(awaiting)


def test_a_retraining_with_no_new_labels_stops_with_its_reason_and_registers_nothing(
    workflow: Workflow, registered_run: dict[str, Any]
) -> None:
    # Given a champion trained on 2021, and nothing about 2021 landed since
    trigger = year_trigger(2021, kind="alarm", source=f"{PREFIX}-churn-retraining-needed")
    trigger["event_id"] = "alarm-2021-again"

    # When the alarm asks for a retraining of the same window
    execution = workflow.run("it-no-new-labels-2021", trigger)

    # Then the run stops before the training job, says why, keeps its trigger, and registers nothing
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    output = json.loads(execution["output"])
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in workflow.history(execution["executionArn"])
        if "stateEnteredEventDetails" in e
    ]
    assert "StartTrainingJob" not in entered
    assert entered[-2:] == ["NotifyNoNewLabels", "NoNewLabels"]
    assert output["snapshot"]["has_new_labels"] is False
    assert output["snapshot"]["labels"]["newly_matured"] == 0
    assert output["snapshot"]["labels"]["champion_model_version"]
    assert output["snapshot"]["retraining_reason"].startswith("no new labels")
    assert output["notification"]["outcome"] == "no_new_labels"
    assert "no new labels" in output["notification"]["subject"]
    assert output["trigger"]["source"] == f"{PREFIX}-churn-retraining-needed"
    manifest = workflow.read_json(output["snapshot"]["manifest_uri"])
    assert manifest["retraining"] == {"has_new_labels": False, "reason": output["snapshot"]["retraining_reason"]}
    assert manifest["trigger"]["kind"] == "alarm"
    assert workflow.packages_of("it-no-new-labels-2021") == []
