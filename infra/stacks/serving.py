"""ServingStack: deploy-on-approval with canary guardrails, the IAM-authenticated API and its validating front door,
and scheduled batch scoring of curated partitions.

docs/calling-the-model.md shows app developers how to call the API (SigV4) and the endpoint (boto3).
"""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Duration, Environment, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from aws_cdk import aws_wafv2 as wafv2
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
        self.api = self._api()
        self.batch_score_function, self.batch_state_machine = self._batch_scoring()

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

    def _api(self) -> apigateway.RestApi:
        c = self.config
        access_logs = logs.LogGroup(
            self,
            "ApiAccessLogs",
            retention=logs.RetentionDays.ONE_MONTH if self._destroy else logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.DESTROY if self._destroy else RemovalPolicy.RETAIN,
        )
        api = apigateway.RestApi(
            self,
            "Api",
            rest_api_name=f"{c.prefix}-serving",
            description=f"{c.prefix}: predictions from the {c.model_name} model (IAM auth)",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY if self._destroy else RemovalPolicy.RETAIN,
            deploy_options=apigateway.StageOptions(
                stage_name=c.stage,
                throttling_rate_limit=c.frontdoor.throttle_rate,
                throttling_burst_limit=c.frontdoor.throttle_burst,
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                tracing_enabled=True,
                metrics_enabled=True,
            ),
            default_method_options=apigateway.MethodOptions(authorization_type=apigateway.AuthorizationType.IAM),
        )
        fd = c.frontdoor
        # The API's own 400 for a body outside the request model, in the front door's error shape. A fixed
        # message: the validator's own text carries quotes that would break the JSON of a mapping template.
        api.add_gateway_response(
            "BadRequestBody",
            type=apigateway.ResponseType.BAD_REQUEST_BODY,
            status_code="400",
            templates={
                "application/json": json.dumps(
                    {
                        "error": "invalid request",
                        "fields": {
                            "body": 'expected one JSON record or {"instances": [...]} with 1 to '
                            f"{fd.max_batch_records} records"
                        },
                        "request_id": "$context.requestId",
                    }
                )
            },
        )
        # The gateway's size limit: at most the configured batch, each record a flat object; the front door then
        # checks every field against the deployed contract.
        request_model = api.add_model(
            "PredictRequestModel",
            content_type="application/json",
            model_name="PredictRequest",
            schema=apigateway.JsonSchema(
                schema=apigateway.JsonSchemaVersion.DRAFT4,
                type=apigateway.JsonSchemaType.OBJECT,
                properties={
                    "instances": apigateway.JsonSchema(
                        type=apigateway.JsonSchemaType.ARRAY,
                        min_items=1,
                        max_items=fd.max_batch_records,
                        items=apigateway.JsonSchema(type=apigateway.JsonSchemaType.OBJECT, max_properties=64),
                    )
                },
                max_properties=64,
            ),
        )
        validator = api.add_request_validator(
            "RequestValidator",
            request_validator_name="body-and-parameters",
            validate_request_body=True,
            validate_request_parameters=True,
        )
        # No permission for the console's test-invoke-stage: nothing in the loop invokes through it (least privilege).
        integration = apigateway.LambdaIntegration(self.frontdoor_function, allow_test_invoke=False)
        routes = self.routes_root(api)
        routes.add_resource("predict").add_method(
            "POST",
            integration,
            request_validator=validator,
            request_models={"application/json": request_model},
        )
        for path in ("health", "model"):
            routes.add_resource(path).add_method("GET", integration, request_validator=validator)
        findings: dict[str, str] = {}
        if fd.waf_rate_limit_per_ip is None:
            findings["AwsSolutions-APIG3"] = (
                "No web ACL on this stage by stage config (waf_rate_limit_per_ip absent; prod has one): every method "
                "requires SigV4 (IAM), the stage is throttled per stage config and bodies are bounded."
            )
        else:
            self._web_acl(api, fd.waf_rate_limit_per_ip)
        acknowledge(
            api,
            {
                **findings,
                "AwsSolutions-COG4": "The API authenticates callers with IAM (SigV4), not Cognito user pools.",
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]": (
                    "API Gateway's account-level logging role; the managed policy is the documented one."
                ),
                "Serverless-APIGWDefaultThrottling": "Throttling is set on the stage from stage config.",
            },
        )
        return api

    def routes_root(self, api: apigateway.RestApi) -> apigateway.IResource:
        """`/` for a stage's only model (`POST /predict`), `/models/<name>/` beside other models."""
        if self.config.sole_model:
            return api.root
        return api.root.add_resource("models").add_resource(self.config.model_name)

    def _web_acl(self, api: apigateway.RestApi, rate_limit: int) -> wafv2.CfnWebACL:
        """AWS WAF in front of the API stage: AWS's common and known-bad-inputs rule sets, and a per-IP rate rule."""
        prefix = self.config.prefix

        def visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
            return wafv2.CfnWebACL.VisibilityConfigProperty(
                cloud_watch_metrics_enabled=True, metric_name=f"{prefix}-{name}", sampled_requests_enabled=True
            )

        def managed(priority: int, name: str, overrides: list[str]) -> wafv2.CfnWebACL.RuleProperty:
            return wafv2.CfnWebACL.RuleProperty(
                name=name,
                priority=priority,
                override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
                statement=wafv2.CfnWebACL.StatementProperty(
                    managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                        vendor_name="AWS",
                        name=name,
                        rule_action_overrides=[
                            wafv2.CfnWebACL.RuleActionOverrideProperty(
                                name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                            )
                            for rule in overrides
                        ]
                        or None,
                    )
                ),
                visibility_config=visibility(name),
            )

        acl = wafv2.CfnWebACL(
            self,
            "ApiWebAcl",
            name=f"{prefix}-serving-api",
            description=f"{prefix}: web ACL of the prediction API",
            scope="REGIONAL",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=visibility("serving-api"),
            rules=[
                wafv2.CfnWebACL.RuleProperty(
                    name="RatePerIp",
                    priority=0,
                    action=wafv2.CfnWebACL.RuleActionProperty(block={}),
                    # Requests per client IP over the last 300 s (AWS WAF's default evaluation window).
                    statement=wafv2.CfnWebACL.StatementProperty(
                        rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                            limit=rate_limit, aggregate_key_type="IP", evaluation_window_sec=300
                        )
                    ),
                    visibility_config=visibility("rate-per-ip"),
                ),
                # SizeRestrictions_BODY blocks bodies over 8 KB; a full batch is larger, and the front door bounds
                # the body itself (max_batch_records x max_record_bytes): counted, not blocked.
                managed(1, "AWSManagedRulesCommonRuleSet", ["SizeRestrictions_BODY"]),
                managed(2, "AWSManagedRulesKnownBadInputsRuleSet", []),
            ],
        )
        wafv2.CfnWebACLAssociation(
            self, "ApiWebAclAssociation", resource_arn=api.deployment_stage.stage_arn, web_acl_arn=acl.attr_arn
        )
        return acl

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
