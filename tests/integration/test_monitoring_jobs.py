"""The monitoring jobs as deployed in the dev stage run their real handlers with the template's environment."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]


def _invoke(cloud: LocalCloud, deployment: Deployment, name: str, event: dict[str, Any]) -> dict[str, Any]:
    answer = cloud.client("lambda").invoke(FunctionName=deployment.physical_id(name), Payload=json.dumps(event))
    payload = json.loads(answer["Payload"].read())
    assert answer.get("FunctionError") is None, payload
    return dict(payload)


def test_drift_detector_runs_on_schedule_events(local_cloud: LocalCloud, dev_stage: Deployment) -> None:
    event = {"detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-11-22T09:00:00Z", "detail": {}}

    summary = _invoke(local_cloud, dev_stage, "DriftDetectorFunction", event)

    # Which verdict depends on whether another test deployed a model meanwhile; each is a complete answer.
    assert summary["verdict"] in {"no_model", "insufficient_data", "no_drift", "drift"}
    assert summary["endpoint"] == "mlloop-dev-churn"


def test_label_quality_without_labels_gives_no_verdict_and_says_so(
    local_cloud: LocalCloud, dev_stage: Deployment
) -> None:
    summary = _invoke(local_cloud, dev_stage, "LabelQualityFunction", {"detail-type": "Scheduled Event"})

    assert summary["verdict"] == "insufficient_data"
    metrics = local_cloud.client("cloudwatch").list_metrics(
        Namespace="MLLoop/dev", MetricName="LabelQualityInsufficientData"
    )["Metrics"]
    assert metrics
    report = summary["report"].removeprefix("s3://").split("/", 1)
    assert local_cloud.client("s3").head_object(Bucket=report[0], Key=report[1])
