"""DataLakeStack: the stateful lake (buckets, key, catalog, idempotency table, people's topic) and its ingestion.

Retained in prod and destroyable in dev, by stage config. Every bucket is encrypted with the stack's
customer-managed key (except the access-log bucket: S3 server access logging only writes to SSE-S3
buckets), versioned, private, TLS-only and logs its access. Raw and curated buckets send their events to
EventBridge; a rule on the raw bucket's "Object Created" runs the ingestion function.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Aws, Duration, Environment, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from functions.ingest.layout import QUARANTINE_ROWS_PREFIX
from functions.ingest.ranges import largest_single_file
from functions.shared.contract import DataContract, load_contract
from infra.config import StageConfig
from infra.constructs.platform_function import (
    BASIC_EXECUTION_ROLE_FINDING,
    PlatformFunction,
    acknowledge,
    removal_policy,
)

GLUE_TYPES = {"integer": "bigint", "float": "double", "categorical": "string", "boolean": "boolean"}
# Where the front door writes its prediction log (docs/data-lake.md).
PREDICTIONS_PREFIX = "predictions"
INGEST_MEMORY_MB = 3008
INGEST_TIMEOUT = Duration.minutes(15)
# Raw files are downloaded to /tmp and streamed from there in chunks: up to 10 GiB per file.
INGEST_EPHEMERAL_MB = 10240
# Byte ranges of a split file ingested at once; each holds up to the split threshold in memory.
SPLIT_MAX_CONCURRENCY = 20
# Passing Lambda faults, and throttling when two split files' ranges together pass the function's reserved concurrency.
SPLIT_LAMBDA_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]


def bucket_name(config: StageConfig, kind: str) -> str:
    """The physical name of a lake bucket; tools and tests find buckets by it."""
    return f"{config.stage_prefix}-{kind}-{Aws.ACCOUNT_ID}-{Aws.REGION}"


def _construct_suffix(dataset: str) -> str:
    return "".join(part.capitalize() for part in dataset.split("_"))


def glue_database_name(config: StageConfig) -> str:
    # Athena accepts only lower-case letters, digits and underscores in database names.
    return f"{config.project}_{config.stage}_lake".replace("-", "_")


class DataLakeStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        datasets: list[str] | None = None,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope, construct_id, env=env, description=f"{config.prefix}: data lake (stateful) and ingestion"
        )
        self.config = config
        # Every dataset the stage's models train on; ingestion validates any dataset with a contract in contracts/.
        self.contracts = [load_contract(d) for d in dict.fromkeys(datasets or [config.dataset])]
        destroy = config.removal_policy == "destroy"
        self._removal = RemovalPolicy.DESTROY if destroy else RemovalPolicy.RETAIN
        self._removal_destroys = destroy

        self.key = kms.Key(
            self,
            "LakeKey",
            alias=f"alias/{config.prefix}-lake",
            description=f"{config.prefix}: encrypts the lake's buckets, table, topic and logs",
            enable_key_rotation=True,
            pending_window=Duration.days(7 if destroy else 30),
            removal_policy=self._removal,
        )
        # Alarms (CloudWatch) and rules (EventBridge) publish to the encrypted topic.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                principals=[
                    iam.ServicePrincipal("cloudwatch.amazonaws.com"),
                    iam.ServicePrincipal("events.amazonaws.com"),
                ],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )

        # CloudWatch Logs encrypts the stage's log groups with this key (infra/constructs/encrypted_logs.py), as
        # the documented key policy allows it: the regional logs principal, bound by the encryption context to
        # this account's log groups (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html).
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsToEncryptTheStagesLogGroups",
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:*"
                        )
                    }
                },
            )
        )

        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            bucket_name=bucket_name(config, "access-logs"),
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365 if not destroy else 90)),
                *self._housekeeping_rules(),
            ],
            removal_policy=self._removal,
            auto_delete_objects=destroy,
        )
        Validations.of(self.access_logs_bucket).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1", reason="This is the access-log bucket; logging it into itself would loop."
            )
        )

        raw_lifecycle = [
            s3.LifecycleRule(
                id="raw-to-cheaper-storage",
                transitions=[
                    s3.Transition(
                        storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                        transition_after=Duration.days(config.lake.raw_infrequent_access_days),
                    ),
                    s3.Transition(
                        storage_class=s3.StorageClass.GLACIER,
                        transition_after=Duration.days(config.lake.raw_glacier_days),
                    ),
                ],
            )
        ]
        self.raw_bucket = self._lake_bucket("raw", "RawBucket", events_on=True, extra_rules=raw_lifecycle)
        self.curated_bucket = self._lake_bucket("curated", "CuratedBucket", events_on=True)
        self.quarantine_bucket = self._lake_bucket("quarantine", "QuarantineBucket")
        self.artifacts_bucket = self._lake_bucket("artifacts", "ArtifactsBucket")
        self.capture_bucket = self._lake_bucket("capture", "CaptureBucket")

        self.notifications_topic = sns.Topic(
            self,
            "NotificationsTopic",
            topic_name=f"{config.prefix}-notifications",
            display_name=f"{config.prefix} ML platform notifications",
            master_key=self.key,
            enforce_ssl=True,
        )
        # enforce_ssl writes a topic policy, which replaces SNS's default one: the services that publish here
        # (alarm actions, rule targets) are allowed explicitly, each only for this account's alarms and rules.
        for service, source in (("cloudwatch", "alarm:*"), ("events", "rule/*")):
            self.notifications_topic.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=f"Allow{service.capitalize()}Publish",
                    actions=["sns:Publish"],
                    principals=[iam.ServicePrincipal(f"{service}.amazonaws.com")],
                    resources=[self.notifications_topic.topic_arn],
                    conditions={
                        "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                        "ArnLike": {
                            "aws:SourceArn": f"arn:{Aws.PARTITION}:{service}:{Aws.REGION}:{Aws.ACCOUNT_ID}:{source}"
                        },
                    },
                )
            )

        self.idempotency_table = dynamodb.Table(
            self,
            "IdempotencyTable",
            table_name=f"{config.prefix}-idempotency",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            time_to_live_attribute="expiration",
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self.key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=self._removal,
        )

        self.glue_database_name = glue_database_name(config)
        self._catalog(self.contracts)
        self.split_bytes = config.lake.ingest_split_bytes or largest_single_file(
            INGEST_MEMORY_MB, INGEST_TIMEOUT.to_seconds(), INGEST_EPHEMERAL_MB
        )
        self.ingest_range_function = self._ingest_range_function(config)
        self.split_state_machine = self._split_state_machine(config)
        self.ingest_function = self._ingestion(config)
        self._acknowledge_cdk_helpers()

    def _housekeeping_rules(self) -> list[s3.LifecycleRule]:
        return [
            s3.LifecycleRule(
                id="expire-noncurrent-versions",
                noncurrent_version_expiration=Duration.days(self.config.lake.noncurrent_expiry_days),
                abort_incomplete_multipart_upload_after=Duration.days(7),
                expired_object_delete_marker=True,
            )
        ]

    def _lake_bucket(
        self,
        kind: str,
        construct_id: str,
        *,
        events_on: bool = False,
        extra_rules: list[s3.LifecycleRule] | None = None,
    ) -> s3.Bucket:
        return s3.Bucket(
            self,
            construct_id,
            bucket_name=bucket_name(self.config, kind),
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix=f"{kind}/",
            event_bridge_enabled=events_on,
            lifecycle_rules=[*(extra_rules or []), *self._housekeeping_rules()],
            removal_policy=self._removal,
            auto_delete_objects=self.config.removal_policy == "destroy",
        )

    def _catalog(self, contracts: list[DataContract]) -> None:
        database = glue.CfnDatabase(
            self,
            "LakeDatabase",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.glue_database_name,
                description=f"{self.config.prefix}: curated data, quarantine and predictions",
            ),
        )
        for index, contract in enumerate(contracts):
            self._dataset_tables(database, contract, "" if index == 0 else _construct_suffix(contract.dataset))
        self._predictions_table(database, contracts[0])

    def _dataset_tables(self, database: glue.CfnDatabase, contract: DataContract, suffix: str) -> None:
        """The curated and quarantine tables of one dataset; the first dataset's keep their original ids."""
        columns = [
            (contract.entity_key, "string", "Entity key."),
            (contract.event_timestamp, "timestamp", "Event time, UTC."),
            *((f.name, GLUE_TYPES[f.type], f.description) for f in contract.features),
            (contract.label.name, "bigint", contract.label.definition),
            ("contract_version", "string", "Version of the data contract the row was validated against."),
            ("source_file", "string", "s3:// URI and version id of the raw file the row came from."),
        ]
        curated_location = f"s3://{self.curated_bucket.bucket_name}/{contract.dataset}/"
        self._table(
            database,
            f"CuratedTable{suffix}",
            name=contract.dataset,
            description=f"Curated {contract.dataset} rows that passed contract {contract.ref}.",
            location=curated_location,
            columns=columns,
            partition="event_date",
            serde="parquet",
        )
        quarantine_location = f"s3://{self.quarantine_bucket.bucket_name}/{QUARANTINE_ROWS_PREFIX}/{contract.dataset}/"
        self._table(
            database,
            f"QuarantineTable{suffix}",
            name=f"{contract.dataset}_quarantine",
            description=f"{contract.dataset} rows that broke the contract, with the rules and values.",
            location=quarantine_location,
            columns=[
                ("source_file", "string", "s3:// URI and version id of the raw file."),
                ("source_row", "bigint", "Zero-based row number in the raw file."),
                ("rules", "string", "Comma-separated names of the rules the row broke."),
                ("reason", "string", "Each broken rule with the column and the offending value."),
                ("contract_version", "string", "Version of the data contract applied."),
                ("record", "string", "The raw row as JSON, every value as read."),
            ],
            partition="ingest_date",
            serde="parquet",
        )

    def _predictions_table(self, database: glue.CfnDatabase, contract: DataContract) -> None:
        predictions_location = f"s3://{self.capture_bucket.bucket_name}/{PREDICTIONS_PREFIX}/"
        self._table(
            database,
            "PredictionsTable",
            name="predictions",
            description="Prediction log of the front door, one JSON object per line.",
            location=predictions_location,
            columns=[
                ("request_id", "string", "Front-door request id."),
                ("predicted_at", "string", "ISO-8601 UTC time of the answer."),
                (contract.entity_key, "string", "Entity key of the scored row."),
                ("endpoint_name", "string", "Endpoint that answered: the model, in a stage with several."),
                ("model_version", "string", "Model package version that answered."),
                ("variant", "string", "Endpoint production variant that answered."),
                ("fallback", "boolean", "True when the fallback model answered."),
                ("probability", "double", "Predicted probability of the positive label."),
                ("contract_version", "string", "Contract version the request was validated against."),
                ("features", "string", "The request's features as JSON."),
            ],
            partition="prediction_date",
            serde="json",
        )

    def _table(
        self,
        database: glue.CfnDatabase,
        construct_id: str,
        *,
        name: str,
        description: str,
        location: str,
        columns: list[tuple[str, str, str]],
        partition: str,
        serde: str,
    ) -> None:
        formats: dict[str, Any] = {
            "parquet": {
                "input_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "output_format": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "serialization_library": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
            },
            "json": {
                "input_format": "org.apache.hadoop.mapred.TextInputFormat",
                "output_format": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
                "serialization_library": "org.openx.data.jsonserde.JsonSerDe",
            },
        }[serde]
        table = glue.CfnTable(
            self,
            construct_id,
            catalog_id=Aws.ACCOUNT_ID,
            database_name=self.glue_database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=name,
                description=description,
                table_type="EXTERNAL_TABLE",
                partition_keys=[glue.CfnTable.ColumnProperty(name=partition, type="string")],
                # Partition projection: Athena derives partitions from the path, so no crawler and no MSCK REPAIR.
                parameters={
                    "classification": serde,
                    "projection.enabled": "true",
                    f"projection.{partition}.type": "date",
                    f"projection.{partition}.format": "yyyy-MM-dd",
                    f"projection.{partition}.range": "2015-01-01,NOW+1DAYS",
                    f"projection.{partition}.interval": "1",
                    f"projection.{partition}.interval.unit": "DAYS",
                    "storage.location.template": f"{location}{partition}=${{{partition}}}/",
                },
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    columns=[glue.CfnTable.ColumnProperty(name=n, type=t, comment=c) for n, t, c in columns],
                    input_format=formats["input_format"],
                    output_format=formats["output_format"],
                    serde_info=glue.CfnTable.SerdeInfoProperty(serialization_library=formats["serialization_library"]),
                ),
            ),
        )
        table.add_dependency(database)

    def _ingest_environment(self, config: StageConfig) -> dict[str, str]:
        return {
            "CURATED_BUCKET": self.curated_bucket.bucket_name,
            "QUARANTINE_BUCKET": self.quarantine_bucket.bucket_name,
            "IDEMPOTENCY_TABLE": self.idempotency_table.table_name,
            "NOTIFICATIONS_TOPIC_ARN": self.notifications_topic.topic_arn,
            "INGEST_CHUNK_ROWS": str(config.lake.ingest_chunk_rows),
        }

    def _ingest_range_function(self, config: StageConfig) -> PlatformFunction:
        """The split execution's steps: one byte range of a large file, then the merge into the file's report."""
        function = PlatformFunction(
            self,
            "IngestRangeFunction",
            config=config,
            name="ingest_range",
            description="Ingests one byte range of a split raw file, or merges the ranges into the file's report",
            memory_mb=INGEST_MEMORY_MB,
            timeout=INGEST_TIMEOUT,
            ephemeral_storage_mb=INGEST_EPHEMERAL_MB,
            with_pandas=True,
            environment=self._ingest_environment(config),
        )
        self._grant_ingest_writes(function)
        # The merge reads the ranges' outcomes and quarantined rows back from the quarantine bucket.
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.quarantine_bucket.arn_for_objects("*")])
        )
        return function

    def _split_state_machine(self, config: StageConfig) -> sfn.StateMachine:
        """A file larger than one invocation holds: its byte ranges in a Distributed Map, then one merged report."""
        ingest_range = tasks.LambdaInvoke(
            self,
            "IngestRange",
            lambda_function=self.ingest_range_function,
            payload_response_only=True,
            retry_on_service_exceptions=False,
        )
        merge = tasks.LambdaInvoke(
            self,
            "MergeRangeReports",
            lambda_function=self.ingest_range_function,
            payload=sfn.TaskInput.from_object(
                {
                    "step": "merge",
                    "source": sfn.JsonPath.object_at("$.source"),
                    "started_at": sfn.JsonPath.string_at("$.started_at"),
                    "range_count": sfn.JsonPath.number_at("$.range_count"),
                }
            ),
            payload_response_only=True,
            retry_on_service_exceptions=False,
        )
        for task in (ingest_range, merge):
            task.add_retry(errors=SPLIT_LAMBDA_ERRORS, interval=Duration.seconds(2), max_attempts=6, backoff_rate=2)
        ranges = sfn.DistributedMap(
            self,
            "IngestRanges",
            items_path="$.ranges",
            item_selector={
                "step": "range",
                "range": sfn.JsonPath.object_at("$$.Map.Item.Value"),
                "source": sfn.JsonPath.object_at("$.source"),
                "header_end": sfn.JsonPath.number_at("$.header_end"),
                "started_at": sfn.JsonPath.string_at("$.started_at"),
            },
            max_concurrency=SPLIT_MAX_CONCURRENCY,
            result_path=sfn.JsonPath.DISCARD,
        )
        ranges.item_processor(ingest_range)
        log_group = logs.LogGroup(
            self,
            "IngestSplitLogs",
            log_group_name=f"/aws/vendedlogs/states/{config.prefix}-ingest-split",
            retention=logs.RetentionDays.ONE_MONTH if self._removal_destroys else logs.RetentionDays.ONE_YEAR,
            removal_policy=removal_policy(config),
        )
        machine = sfn.StateMachine(
            self,
            "IngestSplitStateMachine",
            state_machine_name=f"{config.prefix}-ingest-split",
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(ranges.next(merge)),
            timeout=Duration.hours(6),
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment=f"{config.prefix}: a raw file larger than one ingest invocation, by byte ranges, one report",
        )
        # CDK's Distributed Map grants the machine the map runs of its own executions; the LambdaInvoke task
        # grants the function's versions.
        machine_ref = self.resolve(machine.state_machine_arn)["Ref"]
        executions = (
            "arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{machine_ref}"}}]}}]}}'
        )
        range_function = self.ingest_range_function.node.default_child
        function_logical = self.resolve(range_function.get_att("Arn"))["Fn::GetAtt"][0]  # type: ignore[union-attr]
        own_runs = "The Distributed Map's own map runs and child executions, of this machine only."
        acknowledge(
            machine,
            {
                f"AwsSolutions-IAM5[Resource::{executions}:*]": own_runs,
                f"AwsSolutions-IAM5[Resource::{executions}/*:*]": own_runs,
                f"AwsSolutions-IAM5[Resource::<{function_logical}.Arn>:*]": "LambdaInvoke calls its versions.",
                "AwsSolutions-IAM5[Resource::*]": "X-Ray and CloudWatch Logs delivery have no resource-level form.",
            },
        )
        return machine

    def _ingestion(self, config: StageConfig) -> PlatformFunction:
        function = PlatformFunction(
            self,
            "IngestFunction",
            config=config,
            name="ingest",
            description="Validates raw files against the data contract into curated and quarantine",
            memory_mb=INGEST_MEMORY_MB,
            timeout=INGEST_TIMEOUT,
            ephemeral_storage_mb=INGEST_EPHEMERAL_MB,
            with_pandas=True,
            environment={
                **self._ingest_environment(config),
                "INGEST_SPLIT_BYTES": str(self.split_bytes),
                "INGEST_SPLIT_STATE_MACHINE_ARN": self.split_state_machine.state_machine_arn,
            },
        )
        self._grant_ingest_writes(function)
        self.split_state_machine.grant_start_execution(function)
        # Powertools idempotency's calls exactly; the table's and topic's own grants would add kms wildcards.
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"],
                resources=[self.idempotency_table.table_arn],
            )
        )
        self._ingest_rule(function)
        return function

    def _grant_ingest_writes(self, function: PlatformFunction) -> None:
        # Exact actions instead of grant_read_write: ingestion never deletes and never writes raw. It lists and
        # reads the curated partitions it writes to, so the lake holds each fact once (functions/shared/facts.py).
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[self.raw_bucket.arn_for_objects("*")]
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.curated_bucket.arn_for_objects("*")])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self.curated_bucket.bucket_arn])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[self.curated_bucket.arn_for_objects("*"), self.quarantine_bucket.arn_for_objects("*")],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[self.key.key_arn])
        )
        events.EventBus.from_event_bus_name(self, f"{function.node.id}DefaultBus", "default").grant_put_events_to(
            function
        )
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self.notifications_topic.topic_arn])
        )
        for bucket in (self.raw_bucket, self.curated_bucket, self.quarantine_bucket):
            arn = self.resolve(bucket.node.default_child.get_att("Arn"))["Fn::GetAtt"][0]  # type: ignore[union-attr]
            Validations.of(function).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::<{arn}.Arn>/*]",
                    reason="Object keys are data-driven (dataset, partition, file); access stays within this bucket.",
                )
            )

    def _ingest_rule(self, function: PlatformFunction) -> None:

        rule_dead_letters = sqs.Queue(
            self,
            "IngestRuleDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=self._removal,
        )
        for rule_id in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy"):
            Validations.of(rule_dead_letters).acknowledge(
                Acknowledgment(id=rule_id, reason="This queue is the rule's dead-letter queue; it has none itself.")
            )
        events.Rule(
            self,
            "RawObjectCreatedRule",
            description="A file landed in the raw bucket: validate and ingest it",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={"bucket": {"name": [self.raw_bucket.bucket_name]}},
            ),
            targets=[
                targets.LambdaFunction(
                    function,
                    dead_letter_queue=rule_dead_letters,
                    retry_attempts=4,
                    max_event_age=Duration.hours(6),
                )
            ],
        )

    def _acknowledge_cdk_helpers(self) -> None:
        """CDK's own singleton helper for bucket notifications is built with the AWS managed execution policy."""
        for child in self.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                Validations.of(child).acknowledge(
                    Acknowledgment(
                        id=BASIC_EXECUTION_ROLE_FINDING,
                        reason="CDK's deploy-time bucket-notification helper; its role is not configurable.",
                    )
                )
