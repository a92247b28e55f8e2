"""Shared by the serving and operator integration tests: register a package for a tiny model, follow its deploy,
and call the API over local HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from functools import cache
from typing import Any

from functions.shared.contract import load_contract
from functions.shared.package_metadata import evaluated_metric_key
from mlloop.archives import tar_gz as tar_files
from mlloop.datagen import generate_churn
from mlloop.localcloud import LocalCloud
from tests.integration.localcloud_support import signed_request
from tests.unit.frontdoor_support import FALLBACK_DOC

ENDPOINT = "mlloop-dev-churn"
GROUP = "mlloop-dev-churn"
DEPLOY_MACHINE = "mlloop-dev-deploy-model"
SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"
# What register_model puts in a package's container: the serving container finds code/inference.py by it.
SERVING_ENVIRONMENT = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"}

# The agreed wire format; MODEL_VERSION comes from the deploy function; BROKEN makes every call fail.
INFERENCE_PY = """
import json
import os

BROKEN = {broken}


def model_fn(model_dir):
    return None


def input_fn(body, content_type):
    payload = json.loads(body)
    return payload["instances"] if "instances" in payload else [payload]


def predict_fn(records, model):
    if BROKEN:
        raise RuntimeError("this model version is broken")
    return [min(1.0, r["tenure_months"] / {scale}) for r in records]


def output_fn(prediction, accept):
    body = {{
        "predictions": [{{"probability": p, "label": int(p >= 0.5)}} for p in prediction],
        "model_version": os.environ["MODEL_VERSION"],
        "threshold": 0.5,
    }}
    return json.dumps(body), "application/json"
"""


def stage_bucket(cloud: LocalCloud, kind: str, stage: str = "dev", project: str = "mlloop") -> str:
    names = [b["Name"] for b in cloud.client("s3").list_buckets()["Buckets"]]
    (name,) = [n for n in names if n.startswith(f"{project}-{stage}-{kind}-")]
    return name


@cache
def drift_baseline_document() -> bytes:
    """The drift baseline every registered package carries (register_model requires one): generated churn data,
    scored as the tiny model scores it (tenure / 240, INFERENCE_PY)."""
    from training.drift_profile import build_drift_baseline

    reference = generate_churn(2_000, seed=41)
    baseline = build_drift_baseline(reference, load_contract("churn"), reference["tenure_months"].to_numpy() / 240.0)
    return json.dumps(baseline).encode()


def register_package(
    cloud: LocalCloud,
    *,
    broken: bool,
    evaluated_auc: float | None = None,
    group: str = GROUP,
    stage: str = "dev",
    project: str = "mlloop",
    scale: float = 240.0,
) -> str:
    """Upload a model (probability tenure / `scale`) and its fallback into a run folder and register an approved
    package for them in `group` (with the test AUC its evaluation would have recorded, when given)."""
    s3, artifacts = cloud.client("s3"), stage_bucket(cloud, "artifacts", stage, project)
    run = f"training/runs/serving-{uuid.uuid4().hex[:8]}/output"
    s3.put_object(
        Bucket=artifacts,
        Key=f"{run}/model.tar.gz",
        Body=tar_files({"model.json": "{}", "code/inference.py": INFERENCE_PY.format(broken=broken, scale=scale)}),
    )
    s3.put_object(Bucket=artifacts, Key=f"{run}/fallback_model.json", Body=json.dumps(FALLBACK_DOC).encode())
    s3.put_object(Bucket=artifacts, Key=f"{run}/drift_baseline.json", Body=drift_baseline_document())
    arn: str = cloud.client("sagemaker").create_model_package(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        InferenceSpecification={
            "Containers": [
                {
                    "Image": SKLEARN_IMAGE,
                    "ModelDataUrl": f"s3://{artifacts}/{run}/model.tar.gz",
                    "Environment": SERVING_ENVIRONMENT,
                }
            ],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        CustomerMetadataProperties={
            "contract_ref": "churn@1.0.0",
            "fallback_model_uri": f"s3://{artifacts}/{run}/fallback_model.json",
            "drift_baseline_uri": f"s3://{artifacts}/{run}/drift_baseline.json",
            **({evaluated_metric_key("roc_auc"): f"{evaluated_auc:.6f}"} if evaluated_auc is not None else {}),
        },
    )["ModelPackageArn"]
    return arn


def deploy_executions(cloud: LocalCloud) -> list[dict[str, Any]]:
    sfn = cloud.client("stepfunctions")
    (machine,) = [m for m in sfn.list_state_machines()["stateMachines"] if m["name"] == DEPLOY_MACHINE]
    return list(sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"])


def wait_for_new_deploy(cloud: LocalCloud, before: int) -> dict[str, Any]:
    cloud.wait_idle()
    executions = deploy_executions(cloud)
    assert len(executions) == before + 1, "the approval started exactly one deploy execution"
    return cloud.wait_for_execution(executions[0]["executionArn"], timeout=180)


class Api:
    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        request = signed_request(f"{self.base}{path}", method=method, body=data)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


Cli = Callable[..., tuple[int, Any, str]]


def operator_cli(cloud: LocalCloud) -> Cli:
    """Run `mlloop` as an operator would: its own process, pointed at the embedded AWS by environment; returns
    (exit code, the --json answer, stderr)."""
    env = {**os.environ, **cloud.client_environment()}

    def run(*args: str) -> tuple[int, Any, str]:
        proc = subprocess.run(
            [sys.executable, "-m", "mlloop.cli.main", *args, "--stage", "dev", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        return proc.returncode, json.loads(proc.stdout) if proc.returncode == 0 else None, proc.stderr

    return run
