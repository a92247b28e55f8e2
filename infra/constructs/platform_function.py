"""PlatformFunction: the one place that sets runtime, packaging, tracing, logging and Powertools for every Lambda."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Size, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from functions.shared.settings import MODEL_VARIABLE
from infra.config import StageConfig
from infra.regional import RegionalValues

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNTIME = lambda_.Runtime.PYTHON_3_11
DEFAULT_TIMEOUT = Duration.seconds(30)
BASIC_EXECUTION_ROLE_FINDING = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]"
)
# The asset is the repository filtered to the function code and the contracts it loads, plus the training package's
# promotion gate (pure Python), which the training workflow's evaluation step applies, and the calibration
# figures (numpy only) the live label-quality job shares with training's evaluation.
ASSET_EXCLUDES = [
    "*",
    "!functions",
    "!functions/**",
    "!contracts",
    "!contracts/**",
    "!training",
    "!training/__init__.py",
    "!training/calibration.py",
    "!training/gate.py",
    "!training/metric_directions.py",
    "**/__pycache__",
    "**/*.pyc",
]


def acknowledge(construct: IConstruct, findings: dict[str, str]) -> None:
    """Acknowledge cdk-nag findings on `construct`, each with the reason it is accepted."""
    for rule_id, reason in findings.items():
        Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def removal_policy(config: StageConfig) -> RemovalPolicy:
    """What deleting the stack does to a stateful resource: dev cleans up, the other stages keep it."""
    return RemovalPolicy.DESTROY if config.removal_policy == "destroy" else RemovalPolicy.RETAIN


def function_code() -> lambda_.Code:
    return lambda_.Code.from_asset(str(REPO_ROOT), exclude=ASSET_EXCLUDES)


class PlatformFunction(lambda_.Function):
    """A Python Lambda running `functions.<name>.handler.handler` with Powertools wired in."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        name: str,
        description: str,
        memory_mb: int = 256,
        timeout: Duration = DEFAULT_TIMEOUT,
        environment: dict[str, str] | None = None,
        with_pandas: bool = False,
        ephemeral_storage_mb: int | None = None,
    ) -> None:
        # Public managed layers (no bundling, no Docker at synth), pinned, for the region the stack deploys to.
        regional = RegionalValues.of(scope)
        layers = [
            lambda_.LayerVersion.from_layer_version_arn(
                scope, f"{construct_id}Powertools", regional.powertools_layer_arn
            )
        ]
        if with_pandas:
            layers.append(
                lambda_.LayerVersion.from_layer_version_arn(scope, f"{construct_id}Pandas", regional.pandas_layer_arn)
            )
        log_group = logs.LogGroup(
            scope,
            f"{construct_id}Logs",
            retention=logs.RetentionDays.ONE_MONTH
            if config.removal_policy == "destroy"
            else logs.RetentionDays.ONE_YEAR,
            removal_policy=removal_policy(config),
        )
        # Failed asynchronous invocations (EventBridge, S3, SNS) are kept, never dropped after the retries.
        dead_letter_queue = sqs.Queue(
            scope,
            f"{construct_id}DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=removal_policy(config),
        )
        for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
            Validations.of(dead_letter_queue).acknowledge(
                Acknowledgment(id=rule, reason="This queue is the dead-letter queue; it has no queue of its own.")
            )
        super().__init__(
            scope,
            construct_id,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            code=function_code(),
            handler=f"functions.{name}.handler.handler",
            description=description,
            memory_size=memory_mb,
            timeout=timeout,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            layers=layers,
            # From stage config, which never reserves more than the declared account quota leaves above Lambda's floor.
            reserved_concurrent_executions=config.concurrency.for_function(name),
            ephemeral_storage_size=Size.mebibytes(ephemeral_storage_mb) if ephemeral_storage_mb else None,
            dead_letter_queue=dead_letter_queue,
            on_failure=destinations.SqsDestination(dead_letter_queue),
            environment={
                "STAGE": config.stage,
                "POWERTOOLS_SERVICE_NAME": f"{config.project}-{name}",
                "POWERTOOLS_METRICS_NAMESPACE": config.metrics_namespace,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                # Beside other models of the stage, which model the function serves (tools find functions by it).
                **({} if config.sole_model else {MODEL_VARIABLE: config.model_name}),
                **(environment or {}),
            },
        )
        for rule, reason in (
            (
                "AwsSolutions-L1",
                "Python 3.11 on purpose: the pinned AWS SDK for pandas layer and the SageMaker scikit-learn "
                "container both run 3.11.",
            ),
            ("Serverless-LambdaLatestVersion", "Python 3.11 on purpose, to match the pinned pandas layer."),
            (BASIC_EXECUTION_ROLE_FINDING, "The AWS managed policy grants only writing to the function's own logs."),
            (
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray tracing (PutTraceSegments, PutTelemetryRecords) has no resource-level permissions.",
            ),
        ):
            Validations.of(self).acknowledge(Acknowledgment(id=rule, reason=reason))
