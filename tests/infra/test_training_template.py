"""The training workflow as synthesized: retries and catch on each task, the poll loop, triggers, IAM, per stage."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import pytest

from functions.check_data_gate.logic import DataGateSettings
from functions.evaluate_candidate.logic import EvaluateSettings
from infra.config import load_stage_config, read_cdk_json_context
from infra.constructs.platform_function import REPO_ROOT
from infra.constructs.training_source_bundle import build_source_tarball
from mlloop.assembly import DEFAULT_OUTDIR, load_template, synthesize

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("synth")]
STAGES = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    synthesize()
    return {stage: load_template(f"mlloop-{stage}-training") for stage in STAGES}


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _token(value: Any) -> str:
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"REF<{value['Ref']}>"
    if "Fn::Sub" in value:
        return str(value["Fn::Sub"])
    if "Fn::GetAtt" in value:
        return f"GETATT<{'.'.join(value['Fn::GetAtt'])}>"
    return "TOKEN<>"


def definition(template: dict[str, Any]) -> dict[str, Any]:
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    body = machine["Properties"]["DefinitionString"]
    text = "".join(_token(part) for part in body["Fn::Join"][1]) if isinstance(body, dict) else body
    return dict(json.loads(text))


def machine_properties(template: dict[str, Any]) -> dict[str, Any]:
    (machine,) = resources(template, "AWS::StepFunctions::StateMachine").values()
    return dict(machine["Properties"])


def functions_by_handler(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["Properties"]["Handler"].split(".")[1]: r["Properties"]
        for r in resources(template, "AWS::Lambda::Function").values()
    }


def statements(template: dict[str, Any], policy_prefix: str) -> list[dict[str, Any]]:
    found = []
    for logical_id, res in resources(template, "AWS::IAM::Policy").items():
        if logical_id.startswith(policy_prefix):
            found.extend(res["Properties"]["PolicyDocument"]["Statement"])
    return found


def test_every_task_retries_with_backoff_and_is_caught(templates: dict[str, dict[str, Any]]) -> None:
    states = definition(templates["dev"])["States"]
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}

    assert set(tasks) >= {
        "PrepareTrainingData",
        "CheckDataGate",
        "StartTrainingJob",
        "DescribeTrainingJob",
        "EvaluateCandidate",
        "RegisterModel",
        "NotifyRegistered",
        "NotifyRejected",
        "NotifyFailure",
    }
    for name, task in tasks.items():
        assert task["Retry"], name
        assert all(r["BackoffRate"] > 1 and r["MaxAttempts"] >= 3 for r in task["Retry"]), name
        assert task["Catch"][0]["ErrorEquals"] == ["States.ALL"], name
        if task["Resource"].endswith("lambda:invoke") or "lambda" in task["Resource"]:
            assert any("TransientError" in r["ErrorEquals"] for r in task["Retry"]), name
    assert any("SageMaker.AmazonSageMakerException" in r["ErrorEquals"] for r in tasks["StartTrainingJob"]["Retry"])


def test_a_caught_failure_is_notified_and_fails_the_execution_with_its_cause(
    templates: dict[str, dict[str, Any]],
) -> None:
    states = definition(templates["dev"])["States"]

    marker = states[states["EvaluateCandidate"]["Catch"][0]["Next"]]
    assert marker["Type"] == "Pass" and marker["Result"] == "evaluate the candidate"
    assert marker["Next"] == "NotifyFailure"
    assert states["NotifyFailure"]["Next"] == "TrainingRunFailed"
    assert states["TrainingRunFailed"] == {
        "Type": "Fail",
        "ErrorPath": "$.failure.error",
        "CausePath": "$.failure.cause",
    }
    assert states["DataGateRejected"]["Type"] == "Fail"


def test_training_runs_request_response_with_a_poll_loop(templates: dict[str, dict[str, Any]]) -> None:
    states = definition(templates["dev"])["States"]

    create = states["StartTrainingJob"]
    assert create["Resource"] == "arn:REF<AWS::Partition>:states:::sagemaker:createTrainingJob"
    assert create["Next"] == "WaitForTraining"
    assert states["WaitForTraining"]["Next"] == "DescribeTrainingJob"
    assert states["DescribeTrainingJob"]["Resource"].endswith(":states:::aws-sdk:sagemaker:describeTrainingJob")
    choice = states["TrainingJobStatus"]
    assert choice["Default"] == "WaitForTraining"
    assert choice["Choices"][0] == {
        "Variable": "$.training_job.status",
        "StringEquals": "Completed",
        "Next": "EvaluateCandidate",
    }
    assert [c["Next"] for c in choice["Choices"][1:]] == ["DescribeTrainingFailure", "TrainingJobStopped"]
    assert states["DescribeTrainingFailure"]["ResultSelector"] == {"reason.$": "$.FailureReason"}
    assert states["PromotionGate"]["Default"] == "NotifyRejected"


def test_the_training_job_uses_the_sklearn_container_and_the_stage_settings(
    templates: dict[str, dict[str, Any]],
) -> None:
    dev = definition(templates["dev"])["States"]["StartTrainingJob"]["Parameters"]
    prod = definition(templates["prod"])["States"]["StartTrainingJob"]["Parameters"]

    image = dev["AlgorithmSpecification"]["TrainingImage"]
    # The registry account comes from the region map (test_account_and_region_template resolves it per region).
    assert image.endswith(".dkr.ecr.REF<AWS::Region>.REF<AWS::URLSuffix>/sagemaker-scikit-learn:1.9-0-cpu-py3")
    assert dev["HyperParameters"]["sagemaker_program"] == "training/train.py"
    assert dev["HyperParameters"]["sagemaker_submit_directory"].startswith("s3://cdk-")
    assert dev["ResourceConfig"]["InstanceType"] == "ml.m5.large"
    assert dev["EnableManagedSpotTraining"] is True
    assert dev["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    assert prod["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert prod["EnableManagedSpotTraining"] is False
    assert prod["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200}
    assert dev["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri.$"] == "$.snapshot.train_uri"


def test_the_stage_decision_policy_reaches_the_training_job(templates: dict[str, dict[str, Any]]) -> None:
    context = read_cdk_json_context()
    for stage in ("dev", "prod"):
        hyperparameters = definition(templates[stage])["States"]["StartTrainingJob"]["Parameters"]["HyperParameters"]
        decision = load_stage_config(context, stage).training.decision
        assert {k: hyperparameters[k] for k in decision.hyperparameters()} == decision.hyperparameters()
        assert float(hyperparameters["cost_false_negative"]) == decision.cost_false_negative


def test_the_state_machine_logs_everything_traces_and_times_out(templates: dict[str, dict[str, Any]]) -> None:
    for stage in STAGES:
        props = machine_properties(templates[stage])
        assert props["StateMachineName"] == f"mlloop-{stage}-training"
        assert props["LoggingConfiguration"]["Level"] == "ALL"
        assert props["TracingConfiguration"] == {"Enabled": True}
        assert 0 < definition(templates[stage])["TimeoutSeconds"] <= 7200 * 2 + 7200


def test_schedule_on_every_stage_and_new_data_only_where_configured(templates: dict[str, dict[str, Any]]) -> None:
    for stage, expect_new_data in (("dev", True), ("staging", False), ("prod", False)):
        rules = list(resources(templates[stage], "AWS::Events::Rule").values())
        starter = next(
            k
            for k, v in resources(templates[stage], "AWS::Lambda::Function").items()
            if v["Properties"]["Handler"] == "functions.start_training.handler.handler"
        )
        schedules = [r for r in rules if "ScheduleExpression" in r["Properties"]]
        patterns = [r for r in rules if "EventPattern" in r["Properties"]]
        assert [r["Properties"]["ScheduleExpression"] for r in schedules] == ["rate(7 days)"]
        assert all(t["Arn"] == {"Fn::GetAtt": [starter, "Arn"]} for r in rules for t in r["Properties"]["Targets"])
        assert len(patterns) == (1 if expect_new_data else 0)
        if expect_new_data:
            pattern = patterns[0]["Properties"]["EventPattern"]
            # One trigger per ingested file, from the ingest function, not one per curated partition object.
            assert pattern["source"] == ["mlloop.ingest"] and pattern["detail-type"] == ["Curated Data Ingested"]
            assert pattern["detail"] == {"stage": [stage], "dataset": ["churn"]}


def test_start_function_applies_the_stage_cooldown_alone(templates: dict[str, dict[str, Any]]) -> None:
    # One trigger at a time where the account can afford a reservation (prod); a new account's quota (dev) cannot.
    for stage, minutes, reserved in (("dev", "60", None), ("prod", "1440", 1)):
        starter = functions_by_handler(templates[stage])["start_training"]
        assert starter["Environment"]["Variables"]["COOLDOWN_MINUTES"] == minutes
        assert starter.get("ReservedConcurrentExecutions") == reserved


def test_each_gate_gets_the_stage_policy_and_reads_it_back(templates: dict[str, dict[str, Any]]) -> None:
    context = read_cdk_json_context()
    for stage in STAGES:
        config = load_stage_config(context, stage)
        fns = functions_by_handler(templates[stage])
        data_env = fns["check_data_gate"]["Environment"]["Variables"]
        evaluate_env = fns["evaluate_candidate"]["Environment"]["Variables"]
        assert DataGateSettings.from_env(data_env).policy == config.gates.data
        assert EvaluateSettings.from_env(evaluate_env).policy == config.gates.promotion
    assert (
        json.loads(
            functions_by_handler(templates["prod"])["evaluate_candidate"]["Environment"]["Variables"]["GATE_POLICY"]
        )["min_primary"]
        == 0.75
    )


def test_approval_follows_the_stage_policy(templates: dict[str, dict[str, Any]]) -> None:
    dev = functions_by_handler(templates["dev"])["register_model"]["Environment"]["Variables"]
    prod = functions_by_handler(templates["prod"])["register_model"]["Environment"]["Variables"]

    assert dev["APPROVAL_STATUS"] == "Approved"
    assert prod["APPROVAL_STATUS"] == "PendingManualApproval"
    assert dev["CODE_VERSION"].startswith("sha256:")


def test_pass_role_is_only_for_the_training_role_and_only_to_sagemaker(templates: dict[str, dict[str, Any]]) -> None:
    template = templates["dev"]
    (role_id,) = [
        k
        for k, v in resources(template, "AWS::IAM::Role").items()
        if v["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"].get("Service")
        == "sagemaker.amazonaws.com"
    ]
    every = [
        s
        for r in resources(template, "AWS::IAM::Policy").values()
        for s in r["Properties"]["PolicyDocument"]["Statement"]
    ]
    pass_role = [
        s for s in every if "iam:PassRole" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]

    assert len(pass_role) == 1
    assert pass_role[0]["Resource"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert pass_role[0]["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    assert not [
        s
        for s in every
        if any(a.endswith(":*") or a == "*" for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
    ]


def test_the_machine_may_create_only_this_models_training_jobs(templates: dict[str, dict[str, Any]]) -> None:
    machine = statements(templates["dev"], "StateMachineRole")
    sagemaker = [s for s in machine if any(a.startswith("sagemaker:") for a in s["Action"])]

    assert len(sagemaker) == 1
    resource = "".join(_token(p) for p in sagemaker[0]["Resource"]["Fn::Join"][1])
    assert resource.endswith(":training-job/churn-*")


def test_the_model_package_group_is_named_by_the_stage(templates: dict[str, dict[str, Any]]) -> None:
    for stage in STAGES:
        (group,) = resources(templates[stage], "AWS::SageMaker::ModelPackageGroup").values()
        assert group["Properties"]["ModelPackageGroupName"] == f"mlloop-{stage}-churn"


def test_the_evaluation_function_ships_the_promotion_gate_but_not_the_training_code(
    templates: dict[str, dict[str, Any]],
) -> None:
    template = templates["dev"]
    (code,) = [
        r["Properties"]["Code"]
        for r in resources(template, "AWS::Lambda::Function").values()
        if r["Properties"]["Handler"] == "functions.evaluate_candidate.handler.handler"
    ]
    asset = DEFAULT_OUTDIR / f"asset.{code['S3Key'].split('.')[0]}"

    assert (asset / "training" / "gate.py").is_file()
    assert (asset / "functions" / "evaluate_candidate" / "handler.py").is_file()
    assert not (asset / "training" / "train.py").exists()


def test_the_source_bundle_is_reproducible_and_holds_what_train_py_imports() -> None:
    first = build_source_tarball(REPO_ROOT)
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        names = tar.getnames()

    assert build_source_tarball(REPO_ROOT) == first
    assert {"training/train.py", "training/gate.py", "functions/shared/contract.py", "contracts/churn/v1.json"} <= set(
        names
    )
    assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]


def test_a_snapshot_with_no_new_labels_stops_before_the_training_job(templates: dict[str, dict[str, Any]]) -> None:
    states = definition(templates["dev"])["States"]

    assert states["DataGatePassed"]["Choices"][0]["Next"] == "NewLabelsSinceChampion"
    choice = states["NewLabelsSinceChampion"]
    assert choice["Choices"] == [
        {"Variable": "$.snapshot.has_new_labels", "BooleanEquals": False, "Next": "NotifyNoNewLabels"}
    ]
    assert choice["Default"] == "StartTrainingJob"
    assert states["NotifyNoNewLabels"]["Next"] == "NoNewLabels"
    assert states["NoNewLabels"]["Type"] == "Succeed"
    hyperparameters = states["StartTrainingJob"]["Parameters"]["HyperParameters"]
    assert hyperparameters["label_as_of.$"] == "$.snapshot.label_as_of"
