"""TrainingStack: the governed retraining workflow (Step Functions) and the model's package group in the registry.

prepare (snapshot cut at the run's time, labels joined point-in-time + manifest) -> data gate -> new labels since
the champion? (none: notify and stop, nothing trained or registered) -> SageMaker training job (request-response
create, then a Wait/describe/Choice poll loop) -> evaluate (promotion gate vs the champion) -> register (approval
by stage policy) -> notify. Every trigger (schedule, new curated data, drift alarm, manual) enters through one function
that applies the cooldown and names the execution after the trigger. docs/training-workflow.md tells the story.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aws_cdk import (
    Aws,
    CfnOutput,
    Duration,
    Environment,
    Stack,
)
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from functions.check_data_gate.logic import LATEST_PROFILE_KEY
from functions.drift_detector import metric_names as drift_names
from functions.label_quality import metric_names as quality_names
from functions.prepare_training_data.change import min_split_span_days
from functions.prepare_training_data.logic import RUNS_PREFIX
from functions.shared.contract import labels_dataset, load_contract
from functions.shared.platform_events import CURATED_DATA_INGESTED, INGEST_SOURCE
from functions.start_training.logic import TRIGGER_RECORDS_PREFIX, start_lease_key
from infra.config import StageConfig
from infra.constructs.platform_function import PlatformFunction, acknowledge, removal_policy
from infra.constructs.training_source_bundle import TrainingSourceBundle
from infra.regional import RegionalValues
from infra.stacks.data_lake import DataLakeStack, bucket_name
from training.split_shares import TEST_FRACTION, VALIDATION_FRACTION

# SageMaker bills and finishes a training job in minutes at best; polling faster only costs transitions.
POLL_INTERVAL = Duration.seconds(60)
# Room around the training job for the Lambda steps and the polling granularity.
WORKFLOW_OVERHEAD = Duration.hours(2)
STEP_TIMEOUT = Duration.seconds(60)
LAMBDA_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException"]
THROTTLING_ERRORS = ["TransientError", "Lambda.TooManyRequestsException"]
RUN_FOLDER_REASON = "Each run reads and writes only under training/runs/<run>/, named at run time."
PACKAGE_VERSIONS_REASON = "The registry numbers package versions; access stays within the model's package group."
LIST_PACKAGES_REASON = "sagemaker:ListModelPackages has no resource-level permissions."
TRAINING_JOB_REASON = "Training job names derive from each run (<model>-<run>)."


def _arn(template: str) -> str:
    """An ARN from a template with {partition}, {region} and {account}: the deployable form."""
    return _fill(template, Aws.PARTITION, Aws.REGION, Aws.ACCOUNT_ID)


def _nag_resource(template: str) -> str:
    """The same ARN as cdk-nag prints it in a finding's id, so an acknowledgement names exactly that resource."""
    return _fill(template, "<AWS::Partition>", "<AWS::Region>", "<AWS::AccountId>")


def _fill(template: str, partition: str, region: str, account: str) -> str:
    # Plain replacement: resolved tokens inside a template carry braces of their own.
    return template.replace("{partition}", partition).replace("{region}", region).replace("{account}", account)


def _retry_with_backoff(task: sfn.TaskStateBase, errors: list[str]) -> None:
    """Five attempts from 5 s, doubling up to 2 min, fully jittered: for throttling and other passing faults."""
    task.add_retry(
        errors=errors,
        interval=Duration.seconds(5),
        max_attempts=5,
        backoff_rate=2,
        max_delay=Duration.minutes(2),
        jitter_strategy=sfn.JitterType.FULL,
    )


class TrainingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        lake: DataLakeStack,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            env=env,
            description=f"{config.prefix}: training workflow and model registry",
        )
        self.config = config
        self.lake = lake
        self.contract = load_contract(config.dataset)
        self.model_package_group_name = config.model_package_group
        self._destroy = config.removal_policy == "destroy"
        # Resolved for the region the stack deploys to (infra/regional.py), never baked for cdk.json's region.
        self.regional = RegionalValues.of(self)
        self.training_image_uri = self.regional.sklearn_image_uri(config.training.instance_type)
        self.inference_image_uri = self.regional.sklearn_image_uri(config.endpoint.instance_type)

        self.package_group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=self.model_package_group_name,
            model_package_group_description=(
                f"{config.prefix}: {config.model_name} models trained on contract {self.contract.ref}"
            ),
        )
        self.package_group.apply_removal_policy(removal_policy(self.config))
        self.source_bundle = TrainingSourceBundle(self, "TrainingSource")
        self.training_role = self._training_role()

        self.prepare_function = self._prepare_function()
        self.data_gate_function = self._data_gate_function()
        self.evaluate_function = self._evaluate_function()
        self.register_function = self._register_function()
        self.notify_function = self._notify_function()
        self.state_machine = self._state_machine()
        self.start_training_function = self._start_training_function()
        self._triggers()

        CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)
        CfnOutput(self, "StartTrainingFunctionName", value=self.start_training_function.function_name)
        CfnOutput(self, "ModelPackageGroupName", value=self.model_package_group_name)

    # ----------------------------------------------------------------------------------------------- grants
    def _bucket(self, kind: str) -> str:
        """ARN template of a lake bucket, from the lake's own naming rule, so nag findings name it predictably."""
        name = bucket_name(self.config, kind).replace(Aws.ACCOUNT_ID, "{account}").replace(Aws.REGION, "{region}")
        return f"arn:{{partition}}:s3:::{name}"

    def _artifacts(self, pattern: str) -> str:
        return f"{self._bucket('artifacts')}/{pattern}"

    def _curated(self, pattern: str) -> str:
        return f"{self._bucket('curated')}/{pattern}"

    def _allow(
        self,
        grantee: iam.IGrantable,
        actions: list[str],
        templates: list[str],
        reason: str = "",
        conditions: dict[str, Any] | None = None,
    ) -> None:
        """Grant `actions` on the ARN templates; a wildcard resource is acknowledged to cdk-nag with `reason`."""
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=actions, resources=[_arn(t) for t in templates], conditions=conditions)
        )
        wildcards = [t for t in templates if "*" in t]
        if wildcards and not reason:
            raise ValueError(f"wildcard resources {wildcards} need a reason")
        construct = grantee if isinstance(grantee, Construct) else self
        acknowledge(construct, {f"AwsSolutions-IAM5[Resource::{_nag_resource(t)}]": reason for t in wildcards})

    def _grant_key(self, grantee: iam.IGrantable, *actions: str) -> None:
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=list(actions), resources=[self.lake.key.key_arn])
        )

    # ------------------------------------------------------------------------------------------ training role
    def _training_role(self) -> iam.Role:
        role = iam.Role(
            self,
            "TrainingJobRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{self.config.prefix}: SageMaker training jobs of the training workflow",
        )
        self._allow(
            role,
            ["s3:GetObject"],
            [self._artifacts(f"{RUNS_PREFIX}/*/data/*")],
            "Each run snapshots its data into its own folder, named at run time.",
        )
        self._allow(
            role,
            ["s3:ListBucket"],
            [self._bucket("artifacts")],
            conditions={"StringLike": {"s3:prefix": [f"{RUNS_PREFIX}/*"]}},
        )
        self._allow(
            role,
            ["s3:PutObject", "s3:AbortMultipartUpload"],
            [self._artifacts(f"{RUNS_PREFIX}/*/output/*")],
            "Each run's model.tar.gz goes to its own output folder, named at run time.",
        )
        asset = self.source_bundle.asset
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[asset.bucket.arn_for_objects(asset.s3_object_key)])
        )
        # OutputDataConfig.KmsKeyId: SageMaker encrypts the job's output as the role (CreateTrainingJob API
        # reference, OutputDataConfig: "the role must include permissions to call kms:Encrypt").
        self._grant_key(role, "kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt")
        self._allow(
            role,
            ["cloudwatch:PutMetricData"],
            ["*"],
            "cloudwatch:PutMetricData has no resource-level form; the namespace condition limits it to training jobs.",
            conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}},
        )
        self._allow(
            role,
            ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            ["arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/TrainingJobs:*"],
            "SageMaker names one log stream per training job in its fixed log group.",
        )
        self._allow(
            role,
            ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            [self.regional.sklearn_repository_arn],
        )
        self._allow(
            role,
            ["ecr:GetAuthorizationToken"],
            ["*"],
            "ecr:GetAuthorizationToken has no resource-level permissions; pulls are limited to one repository.",
        )
        return role

    # ------------------------------------------------------------------------------------------- functions
    def _function(
        self,
        construct_id: str,
        name: str,
        description: str,
        environment: dict[str, str],
        *,
        timeout: Duration = STEP_TIMEOUT,
        memory_mb: int = 512,
        with_pandas: bool = False,
    ) -> PlatformFunction:
        return PlatformFunction(
            self,
            construct_id,
            config=self.config,
            name=name,
            description=description,
            timeout=timeout,
            memory_mb=memory_mb,
            with_pandas=with_pandas,
            environment=environment,
        )

    def _prepare_function(self) -> PlatformFunction:
        fn = self._function(
            "PrepareTrainingDataFunction",
            "prepare_training_data",
            "Snapshots the training window as known at the run's cut, labels joined point-in-time",
            {
                "CURATED_BUCKET": self.lake.curated_bucket.bucket_name,
                "ARTIFACTS_BUCKET": self.lake.artifacts_bucket.bucket_name,
                "DATASET": self.config.dataset,
                "LABELS_DATASET": labels_dataset(self.config.dataset),
                "MODEL_NAME": self.config.model_name,
                "MODEL_PACKAGE_GROUP": self.model_package_group_name,
                "WINDOW_DAYS": str(self.config.training.window_days),
                # A window cut at a change the detectors found (change.window_rule): enough rows for the data gate,
                # over enough days for the training split; the detectors' reports, judged by the alarms' thresholds.
                "MIN_ROWS": str(self.config.gates.data.min_rows),
                "MIN_SPAN_DAYS": str(self._min_span_days()),
                "ENDPOINT_NAME": self.config.endpoint_name,
                "MIN_LIVE_AUC": str(self.config.monitoring.min_live_auc),
                "MAX_LIVE_AUC_DROP": str(self.config.monitoring.max_live_auc_drop),
            },
            timeout=Duration.minutes(10),
            memory_mb=1024,
            # pandas/pyarrow: the snapshot joins labels to rows and writes the labelled rows per day.
            with_pandas=True,
        )
        prefixes = [f"{self.config.dataset}/*", f"{labels_dataset(self.config.dataset)}/*"]
        self._allow(
            fn, ["s3:ListBucketVersions"], [self._bucket("curated")], conditions={"StringLike": {"s3:prefix": prefixes}}
        )
        self._allow(
            fn,
            ["s3:GetObject", "s3:GetObjectVersion"],
            [self._curated(prefix) for prefix in prefixes],
            "Curated partitions (event_date=...) of the model's dataset and its labels are named by the data.",
        )
        # Its own run folder, and the champion's manifest (the cut of the labels it was trained on).
        self._allow(fn, ["s3:PutObject", "s3:GetObject"], [self._artifacts(f"{RUNS_PREFIX}/*")], RUN_FOLDER_REASON)
        self._allow(fn, ["sagemaker:DescribeModelPackage"], self._package_arns(), PACKAGE_VERSIONS_REASON)
        self._allow(fn, ["sagemaker:ListModelPackages"], ["*"], LIST_PACKAGES_REASON)
        detector_reports = [
            f"{drift_names.REPORTS_PREFIX}/{self.config.endpoint_name}/*",
            f"{quality_names.REPORTS_PREFIX}/{self.config.endpoint_name}/*",
        ]
        self._allow(
            fn,
            ["s3:ListBucket"],
            [self._bucket("artifacts")],
            conditions={"StringLike": {"s3:prefix": detector_reports}},
        )
        self._allow(
            fn,
            ["s3:GetObject"],
            [self._artifacts(prefix) for prefix in detector_reports],
            "The detectors' reports say when the world changed; they are filed by date under the endpoint.",
        )
        self._grant_key(fn, "kms:Decrypt", "kms:GenerateDataKey")
        return fn

    def _min_span_days(self) -> float:
        window = load_contract(labels_dataset(self.config.dataset)).label.window_days
        return min_split_span_days(window, VALIDATION_FRACTION, TEST_FRACTION)

    def _data_gate_function(self) -> PlatformFunction:
        fn = self._function(
            "CheckDataGateFunction",
            "check_data_gate",
            "Data gate over the run's snapshot: row count, null rates, label balance, change since the last one",
            {
                "ARTIFACTS_BUCKET": self.lake.artifacts_bucket.bucket_name,
                "DATASET": self.config.dataset,
                "DATA_GATE_POLICY": json.dumps(dataclasses.asdict(self.config.gates.data), sort_keys=True),
            },
            timeout=Duration.minutes(10),
            memory_mb=3008,
            with_pandas=True,
        )
        self._allow(
            fn,
            ["s3:GetObject", "s3:PutObject"],
            [self._artifacts(f"{RUNS_PREFIX}/*"), self._artifacts(LATEST_PROFILE_KEY)],
            RUN_FOLDER_REASON,
        )
        # The first run finds no latest profile: S3 answers NoSuchKey only to a caller that may list the bucket,
        # AccessDenied to anyone else (S3 API reference, GetObject, "Permissions").
        self._allow(fn, ["s3:ListBucket"], [self._bucket("artifacts")])
        self._grant_key(fn, "kms:Decrypt", "kms:GenerateDataKey")
        return fn

    def _package_arns(self) -> list[str]:
        group = self.model_package_group_name
        return [
            f"arn:{{partition}}:sagemaker:{{region}}:{{account}}:model-package-group/{group}",
            f"arn:{{partition}}:sagemaker:{{region}}:{{account}}:model-package/{group}/*",
        ]

    def _evaluate_function(self) -> PlatformFunction:
        fn = self._function(
            "EvaluateCandidateFunction",
            "evaluate_candidate",
            "Applies the promotion gate to the candidate's evaluation against the champion's",
            {
                "ARTIFACTS_BUCKET": self.lake.artifacts_bucket.bucket_name,
                "MODEL_PACKAGE_GROUP": self.model_package_group_name,
                "GATE_POLICY": json.dumps(self.config.gates.promotion.to_dict(), sort_keys=True),
            },
            timeout=Duration.minutes(5),
            memory_mb=1024,
        )
        self._allow(fn, ["s3:GetObject", "s3:PutObject"], [self._artifacts(f"{RUNS_PREFIX}/*")], RUN_FOLDER_REASON)
        self._grant_key(fn, "kms:Decrypt", "kms:GenerateDataKey")
        self._allow(fn, ["sagemaker:DescribeModelPackage"], self._package_arns(), PACKAGE_VERSIONS_REASON)
        self._allow(fn, ["sagemaker:ListModelPackages"], ["*"], LIST_PACKAGES_REASON)
        return fn

    def _register_function(self) -> PlatformFunction:
        fn = self._function(
            "RegisterModelFunction",
            "register_model",
            "Registers the approved candidate as a model package with metrics, artifacts and lineage",
            {
                "MODEL_PACKAGE_GROUP": self.model_package_group_name,
                "INFERENCE_IMAGE_URI": self.inference_image_uri,
                "INFERENCE_INSTANCE_TYPE": self.config.endpoint.instance_type,
                "APPROVAL_STATUS": "Approved" if self.config.approval == "auto" else "PendingManualApproval",
                "CODE_VERSION": self.source_bundle.code_version,
            },
        )
        self._allow(
            fn,
            ["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage"],
            self._package_arns(),
            PACKAGE_VERSIONS_REASON,
        )
        self._allow(fn, ["sagemaker:ListModelPackages"], ["*"], LIST_PACKAGES_REASON)
        return fn

    def _notify_function(self) -> PlatformFunction:
        fn = self._function(
            "NotifyTrainingOutcomeFunction",
            "notify_training_outcome",
            "Publishes a training run's outcome (registered, rejected with reasons, failed) to the people's topic",
            {
                "NOTIFICATIONS_TOPIC_ARN": self.lake.notifications_topic.topic_arn,
                "MODEL_PACKAGE_GROUP": self.model_package_group_name,
            },
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self.lake.notifications_topic.topic_arn])
        )
        self._grant_key(fn, "kms:Decrypt", "kms:GenerateDataKey")
        return fn

    def _start_training_function(self) -> PlatformFunction:
        fn = PlatformFunction(
            self,
            "StartTrainingFunction",
            config=self.config,
            name="start_training",
            description="Starts a retraining for a schedule, new data, a drift alarm or a person; applies the cooldown",
            environment={
                "STATE_MACHINE_ARN": self.state_machine.state_machine_arn,
                "ARTIFACTS_BUCKET": self.lake.artifacts_bucket.bucket_name,
                "COOLDOWN_MINUTES": str(self.config.training.cooldown_minutes),
            },
        )
        machine = f"{self.config.prefix}-training"
        self._allow(
            fn,
            ["states:StartExecution", "states:ListExecutions"],
            [f"arn:{{partition}}:states:{{region}}:{{account}}:stateMachine:{machine}"],
        )
        self._allow(
            fn,
            ["states:DescribeExecution"],
            [f"arn:{{partition}}:states:{{region}}:{{account}}:execution:{machine}:*"],
            "Execution names derive from each trigger; the grant stays within this state machine.",
        )
        self._allow(
            fn,
            ["s3:PutObject"],
            [self._artifacts(f"{TRIGGER_RECORDS_PREFIX}/*")],
            "One record per trigger, named by date and execution.",
        )
        self._allow(
            fn,
            ["s3:GetObject", "s3:PutObject"],
            [self._artifacts(start_lease_key("" if self.config.sole_model else self.config.model_name))],
        )
        self._grant_key(fn, "kms:Decrypt", "kms:GenerateDataKey")
        return fn

    # -------------------------------------------------------------------------------------- state machine
    def _invoke(
        self, construct_id: str, function: PlatformFunction, payload: dict[str, Any], result_path: str
    ) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            construct_id,
            lambda_function=function,
            payload=sfn.TaskInput.from_object(payload),
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=result_path,
        )
        task.add_retry(errors=LAMBDA_ERRORS, interval=Duration.seconds(2), max_attempts=6, backoff_rate=2)
        _retry_with_backoff(task, THROTTLING_ERRORS)
        return task

    def _state_machine(self) -> sfn.StateMachine:
        config = self.config
        run_id = sfn.JsonPath.string_at("$$.Execution.Name")
        notify_failure = self._invoke(
            "NotifyFailure",
            self.notify_function,
            {"outcome": "failed", "run_id": run_id, "state": sfn.JsonPath.entire_payload},
            "$.failure",
        )
        workflow_failed = sfn.Fail(
            self, "TrainingRunFailed", error_path="$.failure.error", cause_path="$.failure.cause"
        )
        notification_failed = sfn.Fail(
            self, "NotificationFailed", error_path="$.error.Error", cause_path="$.error.Cause"
        )
        notify_failure.add_catch(notification_failed, errors=["States.ALL"], result_path="$.notify_error")
        notify_failure.next(workflow_failed)

        def catch(state: sfn.TaskStateBase | sfn.CustomState, step: str) -> None:
            marker = sfn.Pass(
                self, f"{state.node.id}Failed", result=sfn.Result.from_string(step), result_path="$.failed_step"
            )
            marker.next(notify_failure)
            state.add_catch(marker, errors=["States.ALL"], result_path="$.error")

        prepare = self._invoke(
            "PrepareTrainingData",
            self.prepare_function,
            {"run_id": run_id, "trigger": sfn.JsonPath.object_at("$.trigger")},
            "$.snapshot",
        )
        catch(prepare, "prepare training data")
        data_gate = self._invoke(
            "CheckDataGate",
            self.data_gate_function,
            {"run_id": run_id, "manifest_key": sfn.JsonPath.string_at("$.snapshot.manifest_key")},
            "$.data_gate",
        )
        catch(data_gate, "data gate")
        notify_data_rejected = self._invoke(
            "NotifyDataRejected",
            self.notify_function,
            {"outcome": "data_rejected", "run_id": run_id, "state": sfn.JsonPath.entire_payload},
            "$.failure",
        )
        notify_data_rejected.add_catch(notification_failed, errors=["States.ALL"], result_path="$.error")
        notify_data_rejected.next(
            sfn.Fail(self, "DataGateRejected", error_path="$.failure.error", cause_path="$.failure.cause")
        )

        create_job = sfn.CustomState(self, "StartTrainingJob", state_json=self._create_training_job_json())
        create_job.add_retry(
            errors=["SageMaker.AmazonSageMakerException", "SageMaker.ThrottlingException"],
            interval=Duration.seconds(10),
            max_attempts=4,
            backoff_rate=2,
            jitter_strategy=sfn.JitterType.FULL,
        )
        catch(create_job, "start the training job")
        wait = sfn.Wait(self, "WaitForTraining", time=sfn.WaitTime.duration(POLL_INTERVAL))
        # Only the fields the workflow reads, and the secondary status for whoever watches the execution: the full
        # answer carries timestamps, which state data cannot hold.
        describe = self._describe_training_job(
            "DescribeTrainingJob",
            {"name.$": "$.TrainingJobName", "status.$": "$.TrainingJobStatus", "secondary.$": "$.SecondaryStatus"},
            "$.training_job",
        )
        catch(describe, "poll the training job")
        failure_reason = self._describe_training_job(
            "DescribeTrainingFailure", {"reason.$": "$.FailureReason"}, "$.training_failure"
        )
        catch(failure_reason, "read the training failure")
        failed_step = sfn.Pass(
            self, "TrainingJobFailedStep", result=sfn.Result.from_string("training job"), result_path="$.failed_step"
        )
        failed_step.next(notify_failure)
        job_failed = sfn.Pass(
            self,
            "TrainingJobFailed",
            parameters={
                "Error": "TrainingJobFailed",
                "Cause": sfn.JsonPath.format(
                    "SageMaker training job {} failed: {}",
                    sfn.JsonPath.string_at("$.training_job.name"),
                    sfn.JsonPath.string_at("$.training_failure.reason"),
                ),
            },
            result_path="$.error",
        )
        failure_reason.next(job_failed)
        job_failed.next(failed_step)
        job_stopped = sfn.Pass(
            self,
            "TrainingJobStopped",
            parameters={
                "Error": "TrainingJobStopped",
                "Cause": sfn.JsonPath.format(
                    "SageMaker training job {} was stopped", sfn.JsonPath.string_at("$.training_job.name")
                ),
            },
            result_path="$.error",
        )
        job_stopped.next(failed_step)

        evaluate = self._invoke(
            "EvaluateCandidate",
            self.evaluate_function,
            {
                "run_id": run_id,
                "model_artifacts_uri": sfn.JsonPath.string_at("$.snapshot.model_artifacts_uri"),
            },
            "$.evaluation",
        )
        catch(evaluate, "evaluate the candidate")
        register = self._invoke(
            "RegisterModel",
            self.register_function,
            {
                "run_id": run_id,
                "trigger": sfn.JsonPath.object_at("$.trigger"),
                "data_version": sfn.JsonPath.string_at("$.snapshot.data_version"),
                "manifest_uri": sfn.JsonPath.string_at("$.snapshot.manifest_uri"),
                "training_job_name": sfn.JsonPath.string_at("$.snapshot.training_job_name"),
                "model_data_url": sfn.JsonPath.string_at("$.snapshot.model_artifacts_uri"),
                "evaluation": sfn.JsonPath.object_at("$.evaluation"),
            },
            "$.registration",
        )
        catch(register, "register the model package")
        notify_registered = self._invoke(
            "NotifyRegistered",
            self.notify_function,
            {"outcome": "registered", "run_id": run_id, "state": sfn.JsonPath.entire_payload},
            "$.notification",
        )
        catch(notify_registered, "notify the registration")
        notify_rejected = self._invoke(
            "NotifyRejected",
            self.notify_function,
            {"outcome": "rejected", "run_id": run_id, "state": sfn.JsonPath.entire_payload},
            "$.notification",
        )
        catch(notify_rejected, "notify the rejection")

        notify_no_new_labels = self._invoke(
            "NotifyNoNewLabels",
            self.notify_function,
            {"outcome": "no_new_labels", "run_id": run_id, "state": sfn.JsonPath.entire_payload},
            "$.notification",
        )
        catch(notify_no_new_labels, "notify that there are no new labels")
        notify_no_new_labels.next(sfn.Succeed(self, "NoNewLabels", comment="Nothing new to learn since the champion"))

        # After the data gate: broken data fails loudly even when there is nothing new to learn from.
        definition = prepare.next(data_gate).next(
            sfn.Choice(self, "DataGatePassed")
            .when(
                sfn.Condition.boolean_equals("$.data_gate.passed", True),
                sfn.Choice(self, "NewLabelsSinceChampion")
                .when(sfn.Condition.boolean_equals("$.snapshot.has_new_labels", False), notify_no_new_labels)
                .otherwise(create_job),
            )
            .otherwise(notify_data_rejected)
        )
        create_job.next(wait)
        wait.next(describe)
        describe.next(
            sfn.Choice(self, "TrainingJobStatus")
            .when(sfn.Condition.string_equals("$.training_job.status", "Completed"), evaluate)
            .when(sfn.Condition.string_equals("$.training_job.status", "Failed"), failure_reason)
            .when(sfn.Condition.string_equals("$.training_job.status", "Stopped"), job_stopped)
            .otherwise(wait)
        )
        evaluate.next(
            sfn.Choice(self, "PromotionGate")
            .when(sfn.Condition.boolean_equals("$.evaluation.promote", True), register)
            .otherwise(notify_rejected)
        )
        register.next(notify_registered)
        notify_registered.next(sfn.Succeed(self, "ModelRegistered"))
        notify_rejected.next(sfn.Succeed(self, "CandidateRejected"))

        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"/aws/vendedlogs/states/{config.prefix}-training",
            retention=logs.RetentionDays.ONE_MONTH if self._destroy else logs.RetentionDays.ONE_YEAR,
            removal_policy=removal_policy(self.config),
        )
        runtime = Duration.seconds(config.training.max_runtime_seconds * (2 if config.training.use_spot else 1))
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=f"{config.prefix}-training",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=runtime.plus(WORKFLOW_OVERHEAD),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment=f"{config.prefix}: snapshot, data gate, train, evaluate vs champion, register, notify",
        )
        self._allow(
            machine,
            ["sagemaker:CreateTrainingJob", "sagemaker:AddTags"],
            [self._training_job_arn()],
            TRAINING_JOB_REASON,
        )
        self._allow(
            machine,
            ["iam:PassRole"],
            [self.training_role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        )
        findings = {
            f"AwsSolutions-IAM5[Resource::{_nag_resource(self._training_job_arn())}]": TRAINING_JOB_REASON,
            "AwsSolutions-IAM5[Resource::*]": "X-Ray and CloudWatch Logs delivery actions have no resource-level form.",
        }
        for function in (
            self.prepare_function,
            self.data_gate_function,
            self.evaluate_function,
            self.register_function,
            self.notify_function,
        ):
            logical = self.resolve(function.node.default_child.get_att("Arn"))["Fn::GetAtt"][0]  # type: ignore[union-attr]
            findings[f"AwsSolutions-IAM5[Resource::<{logical}.Arn>:*]"] = (
                "CDK's Lambda task grant covers the function's versions and aliases."
            )
        acknowledge(machine, findings)
        return machine

    def _describe_training_job(
        self, construct_id: str, selector: dict[str, str], result_path: str
    ) -> tasks.CallAwsService:
        task = tasks.CallAwsService(
            self,
            construct_id,
            service="sagemaker",
            action="describeTrainingJob",
            parameters={"TrainingJobName": sfn.JsonPath.string_at("$.snapshot.training_job_name")},
            iam_resources=[_arn(self._training_job_arn())],
            result_selector=selector,
            result_path=result_path,
        )
        # A read-only call: any failure of it is worth retrying before giving up on the run.
        _retry_with_backoff(task, ["States.TaskFailed"])
        return task

    def _training_job_arn(self) -> str:
        return f"arn:{{partition}}:sagemaker:{{region}}:{{account}}:training-job/{self.config.model_name}-*"

    def _create_training_job_json(self) -> dict[str, Any]:
        training = self.config.training
        stopping: dict[str, Any] = {"MaxRuntimeInSeconds": training.max_runtime_seconds}
        if training.use_spot:
            stopping["MaxWaitTimeInSeconds"] = training.max_runtime_seconds * 2
        return {
            "Type": "Task",
            "Resource": f"arn:{Aws.PARTITION}:states:::sagemaker:createTrainingJob",
            "Parameters": {
                "TrainingJobName.$": "$.snapshot.training_job_name",
                "RoleArn": self.training_role.role_arn,
                "AlgorithmSpecification": {"TrainingImage": self.training_image_uri, "TrainingInputMode": "File"},
                "HyperParameters": {
                    "sagemaker_program": self.source_bundle.entry_point,
                    "sagemaker_submit_directory": self.source_bundle.s3_uri,
                    "sagemaker_region": Aws.REGION,
                    "dataset": self.config.dataset,
                    "contract_version": self.contract.version,
                    "model_version.$": "$.snapshot.training_job_name",
                    "data_version.$": "$.snapshot.data_version",
                    # Labels are known up to the snapshot's cut, not up to its newest event.
                    "label_as_of.$": "$.snapshot.label_as_of",
                    "code_version": self.source_bundle.code_version,
                    "candidate": training.candidate,
                    **training.decision.hyperparameters(),
                },
                "InputDataConfig": [
                    {
                        "ChannelName": "train",
                        "ContentType": "application/x-parquet",
                        "DataSource": {
                            "S3DataSource": {
                                "S3DataType": "S3Prefix",
                                "S3Uri.$": "$.snapshot.train_uri",
                                "S3DataDistributionType": "FullyReplicated",
                            }
                        },
                    }
                ],
                "OutputDataConfig": {"S3OutputPath.$": "$.snapshot.output_uri", "KmsKeyId": self.lake.key.key_arn},
                "ResourceConfig": {
                    "InstanceType": training.instance_type,
                    "InstanceCount": training.instance_count,
                    "VolumeSizeInGB": 30,
                },
                "StoppingCondition": stopping,
                "EnableManagedSpotTraining": training.use_spot,
                "Tags": [
                    {"Key": "project", "Value": self.config.project},
                    {"Key": "stage", "Value": self.config.stage},
                    {"Key": "run_id", "Value.$": "$$.Execution.Name"},
                ],
            },
            "ResultPath": "$.training_request",
        }

    # ------------------------------------------------------------------------------------------- triggers
    def _triggers(self) -> None:
        dead_letters = sqs.Queue(
            self,
            "TriggerDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=removal_policy(self.config),
        )
        reason = "This queue is the trigger rules' dead-letter queue; it has none itself."
        acknowledge(dead_letters, {"AwsSolutions-SQS3": reason, "Serverless-SQSRedrivePolicy": reason})

        def target() -> targets.LambdaFunction:
            return targets.LambdaFunction(
                self.start_training_function,
                dead_letter_queue=dead_letters,
                retry_attempts=4,
                max_event_age=Duration.hours(2),
            )

        self.schedule_rule = events.Rule(
            self,
            "ScheduleRule",
            rule_name=f"{self.config.prefix}-training-schedule",
            description="Scheduled retraining",
            schedule=events.Schedule.expression(self.config.training.schedule),
            targets=[target()],
        )
        self.new_data_rule: events.Rule | None = None
        if self.config.training.retrain_on_new_data:
            self.new_data_rule = events.Rule(
                self,
                "NewCuratedDataRule",
                rule_name=f"{self.config.prefix}-training-new-data",
                description="A raw file produced curated data: retrain (debounced by the cooldown)",
                event_pattern=events.EventPattern(
                    source=[INGEST_SOURCE],
                    detail_type=[CURATED_DATA_INGESTED],
                    detail={"stage": [self.config.stage], "dataset": [self.config.dataset]},
                ),
                targets=[target()],
            )
