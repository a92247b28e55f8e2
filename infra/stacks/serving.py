"""ServingStack: deploy-on-approval with canary guardrails, the IAM-authenticated API and its validating front door,
and scheduled batch scoring of curated partitions.

docs/calling-the-model.md shows app developers how to call the API (SigV4) and the endpoint (boto3).
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from functions.shared.serving_manifest import manifest_key
from infra.config import StageConfig
from infra.constructs.canary_endpoint import (
    CanaryEndpoint,
    FrontDoorMetrics,
    function_versions_finding,
    lake_objects,
    manifest_listing,
    wildcard_finding,
)
from infra.constructs.platform_function import PlatformFunction, acknowledge
from infra.constructs.prediction_api import ApiRoute, prediction_api
from infra.stacks.data_lake import PREDICTIONS_PREFIX, DataLakeStack
from infra.stacks.training import TrainingStack

# Predictions for yesterday's curated partition, after the night's ingestion.
BATCH_SCORING_SCHEDULE = events.Schedule.cron(minute="30", hour="3")
# Per-record size the API's request model allows before the front door counts bytes itself.
FRONTDOOR_MEMORY_MB = 1024


def _synchronous(function: PlatformFunction, caller: str) -> None:
    reason = f"Invoked synchronously by {caller}, which sees and handles every failure."
    acknowledge(
        function,
        {"Serverless-LambdaDLQ": reason, "Serverless-LambdaAsyncFailureDestination": reason},
    )


class ServingStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        lake: DataLakeStack,
        training: TrainingStack | None = None,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope, construct_id, env=env, description=f"{config.prefix}: canary deploys, front door API, batch scoring"
        )
        self.config = config
        self.lake = lake
        self.endpoint_name = config.endpoint_name
        self.model_package_group_name = (
            training.model_package_group_name if training is not None else config.model_package_group
        )
        self._destroy = config.removal_policy == "destroy"

        self.frontdoor_function = self._frontdoor_function()
        self.canary = CanaryEndpoint(
            self,
            "CanaryEndpoint",
            config=config,
            model_package_group_name=self.model_package_group_name,
            key=lake.key,
            artifacts_bucket=lake.artifacts_bucket,
            capture_bucket=lake.capture_bucket,
            notifications_topic=lake.notifications_topic,
            front_door_metrics=FrontDoorMetrics(
                namespace=config.metrics_namespace, service=f"{config.project}-frontdoor"
            ),
        )
        self.deploy_function = self.canary.deploy_function
        self.deploy_state_machine = self.canary.state_machine
        self.rollback_alarm_names: list[str] = self.canary.rollback_alarm_names
        # A stage's only model has its API here; beside other models the stage's API stack routes to this front door.
        self.api = (
            prediction_api(
                self,
                prefix=config.prefix,
                stage=config.stage,
                destroy=self._destroy,
                description=f"{config.prefix}: predictions from the {config.model_name} model (IAM auth)",
                routes=[ApiRoute(config.api_path_prefix, self.frontdoor_function, config.frontdoor)],
            )
            if config.sole_model
            else None
        )
        self.batch_score_function, self.batch_state_machine = self._batch_scoring()

        if self.api is not None:
            CfnOutput(self, "ApiUrl", value=self.api.url)
        CfnOutput(self, "EndpointName", value=self.endpoint_name)
        CfnOutput(self, "DeployStateMachineArn", value=self.deploy_state_machine.state_machine_arn)
        CfnOutput(self, "BatchScoringStateMachineArn", value=self.batch_state_machine.state_machine_arn)

    # ----------------------------------------------------------------------------------------------- front door
    def _frontdoor_function(self) -> PlatformFunction:
        c = self.config
        fd = c.frontdoor
        # Every attempt may take the full timeout; the rest is validation, the fallback and the log write.
        timeout_seconds = max(5, int(fd.endpoint_timeout_ms * (fd.endpoint_retries + 1) / 1000) + 4)
        fn = PlatformFunction(
            self,
            "FrontDoorFunction",
            config=c,
            name="frontdoor",
            description="Validates prediction requests against the deployed contract, calls the endpoint, falls back",
            # Lambda CPU scales with memory: 1 GB roughly halves cold start and validation time against 256 MB.
            memory_mb=FRONTDOOR_MEMORY_MB,
            timeout=Duration.seconds(timeout_seconds),
            environment={
                "ENDPOINT_NAME": self.endpoint_name,
                "MANIFEST_BUCKET": self.lake.artifacts_bucket.bucket_name,
                "MANIFEST_KEY": manifest_key(self.endpoint_name),
                "CAPTURE_BUCKET": self.lake.capture_bucket.bucket_name,
                **fd.function_environment(),
                "MANIFEST_REFRESH_SECONDS": "60",
            },
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:InvokeEndpoint"],
                resources=[self.format_arn(service="sagemaker", resource="endpoint", resource_name=self.endpoint_name)],
            )
        )
        predictions = self._grant_lake_io(fn, reads=[lake_objects(c, "artifacts", manifest_key(self.endpoint_name))])
        _synchronous(fn, "API Gateway")
        acknowledge(fn, {wildcard_finding(predictions): "Prediction logs are one object per request, by day."})
        return fn

    def _grant_lake_io(self, fn: PlatformFunction, *, reads: list[str]) -> str:
        """Read the given lake objects, write the predictions table; returns the predictions' wildcard ARN."""
        predictions = lake_objects(self.config, "capture", f"{PREDICTIONS_PREFIX}/*")
        fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=reads))
        fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[predictions]))
        fn.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[self.lake.key.key_arn])
        )
        fn.add_to_role_policy(manifest_listing(self.lake.artifacts_bucket))
        return predictions

    # ----------------------------------------------------------------------------------------------- batch scoring
    def _batch_scoring_failed(self) -> sfn.Chain:
        """Tell people which run failed and why, then end the run FAILED with the caught error as its cause."""
        c = self.config
        notify = tasks.SnsPublish(
            self,
            "NotifyBatchScoringFailed",
            topic=self.lake.notifications_topic,
            subject=f"{c.prefix}: batch scoring failed",
            message=sfn.TaskInput.from_object(
                {
                    "event": "batch_scoring_failed",
                    "execution": sfn.JsonPath.execution_name,
                    "input": sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$$.Execution.Input")),
                    "error": sfn.JsonPath.string_at("$.failure.Error"),
                    "cause": sfn.JsonPath.string_at("$.failure.Cause"),
                }
            ),
            result_path=sfn.JsonPath.DISCARD,
            comment="A failed run is never silent: the stage's notification topic hears of it",
        )
        fail = sfn.Fail(
            self,
            "BatchScoringFailed",
            error="BatchScoringFailed",
            cause_path="$.failure.Cause",
            comment="The run is marked FAILED (ExecutionsFailed counts it), with the caught cause",
        )
        return notify.next(fail)

    def _batch_scoring(self) -> tuple[PlatformFunction, sfn.StateMachine]:
        c = self.config
        fn = PlatformFunction(
            self,
            "BatchScoreFunction",
            config=c,
            name="batch_score",
            description="Scores one curated parquet file with the deployed model into the predictions table",
            memory_mb=1024,
            timeout=Duration.minutes(15),
            with_pandas=True,
            environment={
                "ENDPOINT_NAME": self.endpoint_name,
                "DATASET": c.dataset,
                "CURATED_BUCKET": self.lake.curated_bucket.bucket_name,
                "CAPTURE_BUCKET": self.lake.capture_bucket.bucket_name,
                "PREDICTIONS_PREFIX": PREDICTIONS_PREFIX,
                "MANIFEST_BUCKET": self.lake.artifacts_bucket.bucket_name,
                "MANIFEST_KEY": manifest_key(self.endpoint_name),
                "BATCH_RECORDS": str(c.frontdoor.max_batch_records),
            },
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:InvokeEndpoint"],
                resources=[self.format_arn(service="sagemaker", resource="endpoint", resource_name=self.endpoint_name)],
            )
        )
        curated = lake_objects(c, "curated", f"{c.dataset}/*")
        predictions = self._grant_lake_io(
            fn, reads=[curated, lake_objects(c, "artifacts", manifest_key(self.endpoint_name))]
        )
        fn.add_to_role_policy(manifest_listing(self.lake.artifacts_bucket))
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.lake.curated_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{c.dataset}/*"]}},
            )
        )
        _synchronous(fn, "the batch scoring state machine")
        acknowledge(
            fn,
            {
                wildcard_finding(curated): "Curated files are read per partition: <dataset>/event_date=<day>/<file>.",
                wildcard_finding(predictions): "Predictions are written per day and file under predictions/.",
            },
        )
        plan = tasks.LambdaInvoke(
            self,
            "PlanBatchScoring",
            lambda_function=fn,
            payload=sfn.TaskInput.from_object(
                {"action": "plan", "partition_date": sfn.JsonPath.string_at("$.partition_date")}
            ),
            result_selector={"plan": sfn.JsonPath.object_at("$.Payload")},
            comment="Pick the partition (default: yesterday) and the deployed model; list the partition's files",
        )
        score = tasks.LambdaInvoke(
            self,
            "ScoreFile",
            lambda_function=fn,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "score",
                    "key": sfn.JsonPath.string_at("$.key"),
                    "partition_date": sfn.JsonPath.string_at("$.partition_date"),
                    "model_version": sfn.JsonPath.string_at("$.model_version"),
                }
            ),
            output_path="$.Payload",
        )
        score.add_retry(errors=["TransientError"], interval=Duration.seconds(30), max_attempts=5, backoff_rate=2)
        each_file = sfn.Map(
            self,
            "ScoreEachFile",
            items_path="$.plan.files",
            max_concurrency=2,
            item_selector={
                "key": sfn.JsonPath.string_at("$$.Map.Item.Value"),
                "partition_date": sfn.JsonPath.string_at("$.plan.partition_date"),
                "model_version": sfn.JsonPath.string_at("$.plan.model_version"),
            },
            result_path="$.scored",
        )
        each_file.item_processor(score)
        failed = self._batch_scoring_failed()
        for step in (plan, each_file):
            # Past its retries, any failure is caught: people are told, and the run ends marked FAILED.
            step.add_catch(failed, errors=[sfn.Errors.ALL], result_path="$.failure")
        nothing = sfn.Succeed(self, "NothingToScore", comment="No deployed model yet, or an empty partition")
        definition = plan.next(
            sfn.Choice(self, "AnythingToScore")
            .when(sfn.Condition.is_present("$.plan.files[0]"), each_file.next(sfn.Succeed(self, "Scored")))
            .otherwise(nothing)
        )
        log_group = logs.LogGroup(
            self,
            "BatchScoringLogs",
            log_group_name=f"/aws/vendedlogs/states/{c.prefix}-batch-scoring",
            retention=logs.RetentionDays.ONE_MONTH if self._destroy else logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.DESTROY if self._destroy else RemovalPolicy.RETAIN,
        )
        machine = sfn.StateMachine(
            self,
            "BatchScoringStateMachine",
            state_machine_name=f"{c.prefix}-batch-scoring",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.hours(6),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment=f"{c.prefix}: score a curated partition with the deployed model into the predictions table",
        )
        # The notification topic is encrypted with the lake key: publishing needs a data key from it.
        machine.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[self.lake.key.key_arn])
        )
        acknowledge(
            machine,
            {
                function_versions_finding(fn): "Step Functions' Lambda task may invoke any version of the function.",
                "AwsSolutions-IAM5[Resource::*]": "X-Ray and log delivery actions have no resource-level permissions.",
            },
        )
        events.Rule(
            self,
            "BatchScoringSchedule",
            rule_name=f"{c.prefix}-batch-scoring",
            description=f"{c.prefix}: nightly scoring of yesterday's curated partition",
            schedule=BATCH_SCORING_SCHEDULE,
        ).add_target(
            targets.SfnStateMachine(
                machine,
                input=events.RuleTargetInput.from_object({"partition_date": ""}),
                retry_attempts=4,
                dead_letter_queue=fn.dead_letter_queue,
            )
        )
        return fn, machine
