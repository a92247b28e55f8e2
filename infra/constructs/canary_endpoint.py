"""CanaryEndpoint: the SageMaker endpoint's deployment guardrails, which CDK has no L2 for.

It owns what makes a deploy safe rather than the endpoint resource itself: the endpoint is created and updated
by the deploy function at approval time (a CloudFormation-managed endpoint would redeploy on every stack
update and could not run a blue/green canary per model version). Here: the model execution role, the rollback
alarms SageMaker watches during a blue/green update, the deploy state machine (start, then a Wait/check loop
that outlives any Lambda timeout and verifies what really runs), the deploy function and the EventBridge rule
on the package group's approvals.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from functions.frontdoor import metric_names
from functions.shared.serving_manifest import manifest_key
from infra.config import StageConfig
from infra.constructs.platform_function import PlatformFunction, acknowledge
from infra.regional import RegionalValues
from infra.stacks.data_lake import bucket_name

# How often the deploy loop looks at the endpoint: a canary step lasts minutes, so faster only costs transitions.
DEPLOY_POLL_SECONDS = 30
# SageMaker's own guardrail has its maximum execution time; the loop waits that long plus this margin.
DEPLOY_LOOP_MARGIN = Duration.hours(1)
DATA_CAPTURE_PREFIX = "datacapture"


@dataclass(frozen=True)
class FrontDoorMetrics:
    """Where the front door publishes (its Powertools namespace and service name), for the fallback-rate alarm."""

    namespace: str
    service: str


def wildcard_finding(resource: str) -> str:
    """The cdk-nag finding id of a wildcard resource, as cdk-nag renders pseudo parameters."""
    rendered = (
        resource.replace(Aws.PARTITION, "<AWS::Partition>")
        .replace(Aws.REGION, "<AWS::Region>")
        .replace(Aws.ACCOUNT_ID, "<AWS::AccountId>")
    )
    return f"AwsSolutions-IAM5[Resource::{rendered}]"


def lake_objects(config: StageConfig, kind: str, pattern: str) -> str:
    """ARN of objects in a lake bucket, from the bucket's deterministic name: no cross-stack token, so the
    wildcard stays readable (and acknowledgeable) and the stacks share no export for it."""
    return f"arn:{Aws.PARTITION}:s3:::{bucket_name(config, kind)}/{pattern}"


def function_versions_finding(function: Construct) -> str:
    """The finding for `<function arn>:*`, which Step Functions' LambdaInvoke grants to call any version."""
    logical_id = Stack.of(function).get_logical_id(function.node.default_child)  # type: ignore[arg-type]
    return f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]"


def manifest_listing(artifacts: s3.IBucket) -> iam.PolicyStatement:
    """ListBucket on the artifacts bucket: without it S3 answers a missing manifest (before the first deploy)
    with AccessDenied instead of NoSuchKey (S3 API reference, GetObject, "Permissions"). AWS documents no
    s3:prefix for that check, so a grant conditioned on the manifest's key may not count: it stays unconditioned."""
    return iam.PolicyStatement(actions=["s3:ListBucket"], resources=[artifacts.bucket_arn])


def rollback_alarm_names(config: StageConfig) -> list[str]:
    """5XX errors, latency p99, fallback rate: the alarms that roll an endpoint deploy back, in that order."""
    return [f"{config.prefix}-serving-{kind}" for kind in ("5xx", "latency-p99", "fallback-rate")]


class CanaryEndpoint(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        model_package_group_name: str,
        key: kms.IKey,
        artifacts_bucket: s3.IBucket,
        capture_bucket: s3.IBucket,
        notifications_topic: sns.ITopic,
        front_door_metrics: FrontDoorMetrics,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.config = config
        self.endpoint_name = config.endpoint_name
        self.model_package_group_name = model_package_group_name
        destroy = config.removal_policy == "destroy"
        self._removal = RemovalPolicy.DESTROY if destroy else RemovalPolicy.RETAIN
        self._retention = logs.RetentionDays.ONE_MONTH if destroy else logs.RetentionDays.ONE_YEAR

        self.model_role = self._model_role(key)
        self.rollback_alarms = self._rollback_alarms(front_door_metrics, notifications_topic)
        # Plain strings, not the alarms' Ref tokens: SageMaker and people look the alarms up by these names.
        self.rollback_alarm_names = rollback_alarm_names(config)
        self.state_machine_name = f"{config.prefix}-deploy-model"
        # Built from the name, not the resource, so the function (which starts executions) and the machine
        # (which invokes the function) do not depend on each other.
        state_machine_arn = stack.format_arn(
            service="states",
            resource="stateMachine",
            resource_name=self.state_machine_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.deploy_function = self._deploy_function(
            stack=stack,
            key=key,
            artifacts=artifacts_bucket,
            capture=capture_bucket,
            topic=notifications_topic,
            state_machine_arn=state_machine_arn,
        )
        self.state_machine = self._state_machine()
        self.approval_rule = self._approval_rule()

    # ------------------------------------------------------------------------------------------- model role
    def _model_role(self, key: kms.IKey) -> iam.Role:
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "ModelRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"{self.config.prefix}: the endpoint's models (read model artifacts, write data capture)",
        )
        model_artifacts = lake_objects(self.config, "artifacts", "training/*")
        data_capture = lake_objects(self.config, "capture", f"{DATA_CAPTURE_PREFIX}/*")
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[model_artifacts]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[data_capture]))
        role.add_to_policy(iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[key.key_arn]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                # The container's repository in the region the stack deploys to (infra/regional.py).
                resources=[RegionalValues.of(self).sklearn_repository_arn],
            )
        )
        role.add_to_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    stack.format_arn(
                        service="logs",
                        resource="log-group",
                        resource_name="/aws/sagemaker/Endpoints/*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}},
            )
        )
        log_streams = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/sagemaker/Endpoints/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        acknowledge(
            role,
            {
                wildcard_finding(model_artifacts): "Model artifacts live in per-run folders training/runs/<run>/.",
                wildcard_finding(data_capture): "SageMaker writes data capture under per-endpoint/variant/hour keys.",
                wildcard_finding(log_streams): "SageMaker names endpoint log groups and streams per endpoint/instance.",
                "AwsSolutions-IAM5[Resource::*]": (
                    "ecr:GetAuthorizationToken and cloudwatch:PutMetricData have no resource-level form; the latter "
                    "is limited to the SageMaker endpoint namespace by condition."
                ),
            },
        )
        return role

    # ------------------------------------------------------------------------------------------- alarms
    def _rollback_alarms(self, front_door: FrontDoorMetrics, topic: sns.ITopic) -> list[cloudwatch.Alarm]:
        """The alarms SageMaker watches during a blue/green update; any one in ALARM rolls the deploy back.

        Variants are named after model versions, so a per-variant alarm would watch the old fleet only: the 5XX
        alarm sums every variant of the endpoint with a Metrics Insights query, and latency is the front door's
        measured endpoint round trip (p99), which follows whichever variant answers.
        """
        prefix = self.config.prefix
        monitoring = self.config.monitoring
        minute = Duration.minutes(1)
        errors = cloudwatch.MathExpression(
            expression=(
                'SELECT SUM(Invocation5XXErrors) FROM SCHEMA("AWS/SageMaker", EndpointName, VariantName) '
                f"WHERE EndpointName = '{self.endpoint_name}'"
            ),
            period=minute,
            label="Invocation5XXErrors (all variants)",
            using_metrics={},
        )
        service = {"service": front_door.service}
        latency = cloudwatch.Metric(
            namespace=front_door.namespace,
            metric_name=metric_names.ENDPOINT_LATENCY,
            dimensions_map=service,
            statistic="p99",
            period=minute,
        )
        fallback_rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * FILL(fallbacks, 0) / requests, 0)",
            using_metrics={
                "fallbacks": cloudwatch.Metric(
                    namespace=front_door.namespace,
                    metric_name=metric_names.FALLBACK_ANSWERS,
                    dimensions_map=service,
                    statistic="Sum",
                    period=minute,
                ),
                "requests": cloudwatch.Metric(
                    namespace=front_door.namespace,
                    metric_name=metric_names.PREDICT_LATENCY,
                    dimensions_map=service,
                    statistic="SampleCount",
                    period=minute,
                ),
            },
            period=minute,
            label="Fallback answers (% of requests)",
        )
        errors_name, latency_name, fallback_name = rollback_alarm_names(self.config)
        specs: list[tuple[str, str, cloudwatch.IMetric, float, int, str]] = [
            (
                "Errors5xxAlarm",
                errors_name,
                errors,
                monitoring.errors_5xx,
                1,
                "endpoint 5XX errors (all variants) per minute",
            ),
            (
                "LatencyP99Alarm",
                latency_name,
                latency,
                monitoring.latency_p99_ms,
                2,
                "p99 of the endpoint round trip seen by the front door (ms)",
            ),
            (
                "FallbackRateAlarm",
                fallback_name,
                fallback_rate,
                monitoring.fallback_rate_percent,
                2,
                "share of front-door answers given by the fallback model (%)",
            ),
        ]
        alarms = []
        for construct_id, name, metric, threshold, periods, what in specs:
            alarm = cloudwatch.Alarm(
                self,
                construct_id,
                alarm_name=name,
                alarm_description=f"{prefix}: rolls back an endpoint deploy when {what} breaches {threshold}",
                metric=metric,
                threshold=threshold,
                evaluation_periods=periods,
                datapoints_to_alarm=periods,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                # No traffic is no evidence against a deploy.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(topic))
            alarms.append(alarm)
        return alarms

    # ------------------------------------------------------------------------------------------- deploy function
    def _deploy_function(
        self,
        *,
        stack: Stack,
        key: kms.IKey,
        artifacts: s3.IBucket,
        capture: s3.IBucket,
        topic: sns.ITopic,
        state_machine_arn: str,
    ) -> PlatformFunction:
        c = self.config
        fn = PlatformFunction(
            self,
            "DeployFunction",
            config=c,
            name="deploy_model",
            description="Deploys approved model packages behind blue/green guardrails and verifies what runs",
            timeout=Duration.minutes(2),
            environment={
                "ENDPOINT_NAME": self.endpoint_name,
                "MODEL_PACKAGE_GROUP": self.model_package_group_name,
                "DATASET": c.dataset,
                "SAGEMAKER_ROLE_ARN": self.model_role.role_arn,
                "INSTANCE_TYPE": c.endpoint.instance_type,
                "INSTANCE_COUNT": str(c.endpoint.instance_count),
                "CAPTURE_BUCKET": capture.bucket_name,
                "DATA_CAPTURE_PERCENT": str(c.endpoint.data_capture_percent),
                "KMS_KEY_ARN": key.key_arn,
                "ARTIFACTS_BUCKET": artifacts.bucket_name,
                "DEPLOYMENT_MODE": c.deployment.mode,
                "CANARY_PERCENT": str(c.deployment.canary_percent),
                "LINEAR_STEP_PERCENT": str(c.deployment.linear_step_percent),
                "WAIT_SECONDS": str(c.deployment.wait_seconds),
                "TERMINATION_WAIT_SECONDS": str(c.deployment.termination_wait_seconds),
                "MAX_EXECUTION_SECONDS": str(c.deployment.max_execution_seconds),
                "ROLLBACK_ALARM_NAMES": ",".join(self.rollback_alarm_names),
                "NOTIFICATIONS_TOPIC_ARN": topic.topic_arn,
                "STATE_MACHINE_ARN": state_machine_arn,
                "POLL_SECONDS": str(DEPLOY_POLL_SECONDS),
                # 0 keeps no standby: the stage pays for no idle instance and rollbacks take the guarded path.
                "STANDBY_INSTANCE_COUNT": str(c.rollback.standby_instance_count if c.rollback.standby else 0),
                "FAST_ROLLBACK_WINDOW_HOURS": str(c.rollback.window_hours),
            },
        )
        group_packages = stack.format_arn(
            service="sagemaker", resource="model-package", resource_name=f"{self.model_package_group_name}/*"
        )
        named = [
            stack.format_arn(service="sagemaker", resource=kind, resource_name=f"{self.endpoint_name}-*")
            for kind in ("model", "endpoint-config")
        ]
        endpoint_arn = stack.format_arn(service="sagemaker", resource="endpoint", resource_name=self.endpoint_name)
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeModelPackage", "sagemaker:UpdateModelPackage"], resources=[group_packages]
            )
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateModel",
                    "sagemaker:DescribeModel",
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:AddTags",
                ],
                resources=named,
            )
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "sagemaker:CreateEndpoint",
                    "sagemaker:UpdateEndpoint",
                    "sagemaker:UpdateEndpointWeightsAndCapacities",
                    "sagemaker:DescribeEndpoint",
                    "sagemaker:AddTags",
                ],
                resources=[endpoint_arn],
            )
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.model_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            )
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:DescribeAlarms"],
                resources=[alarm.alarm_arn for alarm in self.rollback_alarms],
            )
        )
        fn.add_to_role_policy(iam.PolicyStatement(actions=["states:StartExecution"], resources=[state_machine_arn]))
        # CreateEndpointConfig with a KMS key checks that the caller may use it and grant it to SageMaker.
        key.grant(fn, "kms:DescribeKey", "kms:CreateGrant", "kms:Decrypt", "kms:GenerateDataKey")
        # The fallback model sits in the run folder the package names; the manifest is the deploy's output.
        run_objects = lake_objects(c, "artifacts", "training/*")
        manifest = lake_objects(c, "artifacts", manifest_key(self.endpoint_name))
        fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[run_objects, manifest]))
        fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[manifest]))
        fn.add_to_role_policy(manifest_listing(artifacts))
        # Explicit rather than topic.grant_publish, whose key grant is the wildcard kms:GenerateDataKey*.
        fn.add_to_role_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]))
        acknowledge(
            fn,
            {
                wildcard_finding(group_packages): "Package versions are created per training run (<group>/<n>).",
                wildcard_finding(named[0]): "Models are created per approval: <endpoint>-v<version>-<event hash>.",
                wildcard_finding(named[1]): "Endpoint configs are created per approval, named like their model.",
                wildcard_finding(run_objects): "The fallback model is read from the run folder the package names.",
            },
        )
        return fn

    # ------------------------------------------------------------------------------------------- state machine
    def _state_machine(self) -> sfn.StateMachine:
        fn = self.deploy_function
        start = tasks.LambdaInvoke(
            self,
            "StartDeploy",
            lambda_function=fn,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "start",
                    "event_id": sfn.JsonPath.string_at("$.event_id"),
                    "model_package_arn": sfn.JsonPath.string_at("$.model_package_arn"),
                    # An operator's emergency rollback: ALL_AT_ONCE without baking (the deploy function sets it).
                    "emergency": sfn.JsonPath.string_at("$.emergency"),
                }
            ),
            result_selector={"deploy": sfn.JsonPath.object_at("$.Payload")},
            comment="Create the Model and EndpointConfig, then create or blue/green-update the endpoint",
        )
        # Another deploy is still settling: wait for it rather than fail this approval.
        start.add_retry(
            errors=["EndpointBusyError"],
            interval=Duration.minutes(1),
            max_attempts=30,
            backoff_rate=1.5,
            max_delay=Duration.minutes(10),
        )
        abandon = tasks.LambdaInvoke(
            self,
            "AbandonDeploy",
            lambda_function=fn,
            payload=sfn.TaskInput.from_object(
                {
                    "action": "abandon",
                    "event_id": sfn.JsonPath.string_at("$.event_id"),
                    "model_package_arn": sfn.JsonPath.string_at("$.model_package_arn"),
                    "error": sfn.JsonPath.object_at("$.error"),
                }
            ),
            result_selector={"deploy": sfn.JsonPath.object_at("$.Payload")},
            comment="The package cannot be deployed: mark it rejected and tell people; traffic is untouched",
        )
        start.add_catch(abandon, errors=["States.ALL"], result_path="$.error")
        wait = sfn.Wait(self, "WaitForEndpoint", time=sfn.WaitTime.seconds_path("$.deploy.poll_seconds"))
        check = tasks.LambdaInvoke(
            self,
            "CheckDeploy",
            lambda_function=fn,
            payload=sfn.TaskInput.from_object({"action": "check", "deploy": sfn.JsonPath.object_at("$.deploy")}),
            result_selector={"deploy": sfn.JsonPath.object_at("$.Payload")},
            comment="Wait for InService, then compare the running EndpointConfig with the target",
        )
        check.add_retry(errors=["ClientError"], interval=Duration.seconds(10), max_attempts=3, backoff_rate=2)
        not_deployed = sfn.Fail(
            self,
            "DeployNotCompleted",
            error="DeployNotCompleted",
            cause_path="$.deploy.detail",
        )
        start.next(wait)
        wait.next(check)
        check.next(
            sfn.Choice(self, "EndpointSettled")
            .when(sfn.Condition.string_equals("$.deploy.status", "in_progress"), wait)
            .when(sfn.Condition.string_equals("$.deploy.status", "deployed"), sfn.Succeed(self, "Deployed"))
            .otherwise(not_deployed)
        )
        abandon.next(not_deployed)
        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"/aws/vendedlogs/states/{self.state_machine_name}",
            retention=self._retention,
            removal_policy=self._removal,
        )
        machine = sfn.StateMachine(
            self,
            "DeployStateMachine",
            state_machine_name=self.state_machine_name,
            definition_body=sfn.DefinitionBody.from_chainable(start),
            timeout=Duration.seconds(self.config.deployment.max_execution_seconds).plus(DEPLOY_LOOP_MARGIN),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment=f"{self.config.prefix}: deploy an approved model package and verify the endpoint runs it",
        )
        acknowledge(
            machine,
            {
                function_versions_finding(fn): "Step Functions' Lambda task may invoke any version of the function.",
                "AwsSolutions-IAM5[Resource::*]": "X-Ray and log delivery actions have no resource-level permissions.",
            },
        )
        return machine

    # ------------------------------------------------------------------------------------------- approval rule
    def _approval_rule(self) -> events.Rule:
        rule = events.Rule(
            self,
            "DeployOnApproval",
            rule_name=f"{self.config.prefix}-deploy-on-approval",
            description=f"{self.config.prefix}: an Approved package of {self.model_package_group_name} deploys",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Package State Change"],
                detail={
                    "ModelPackageGroupName": [self.model_package_group_name],
                    "ModelApprovalStatus": ["Approved"],
                },
            ),
        )
        dead_letters = self.deploy_function.dead_letter_queue
        rule.add_target(
            targets.LambdaFunction(
                self.deploy_function,
                retry_attempts=8,
                max_event_age=Duration.hours(24),
                dead_letter_queue=dead_letters,
            )
        )
        return rule
