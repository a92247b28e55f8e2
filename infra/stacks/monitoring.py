"""MonitoringStack: drift and live-quality jobs, the alarms people and retraining act on, and the stage's dashboard.

The drift detector runs on the stage's schedule against the deployed model's baseline; its metrics feed a
composite "retraining needed" alarm ((drift AND enough traffic) OR live AUC dropped below the serving version's
evaluated AUC) whose entry into ALARM starts the training
workflow through the one trigger function (which holds the cooldown), or, where the stage requires approval,
asks people instead. The endpoint's own 5XX, latency and fallback alarms live with the canary deploy that they
roll back (ServingStack); this stack adds what watches the model and the data, and shows all of them.
"""

from __future__ import annotations

from aws_cdk import Duration, Environment, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.drift_detector import metric_names as drift_names
from functions.frontdoor import metric_names as frontdoor_names
from functions.label_quality import metric_names as quality_names
from functions.shared.contract import labels_dataset as labels_dataset_of
from functions.shared.contract import load_contract
from functions.shared.serving_manifest import manifest_key
from infra.config import StageConfig
from infra.constructs.canary_endpoint import lake_objects, manifest_listing, rollback_alarm_names, wildcard_finding
from infra.constructs.platform_function import PlatformFunction, acknowledge, removal_policy
from infra.stacks.data_lake import PREDICTIONS_PREFIX, DataLakeStack
from infra.stacks.serving import ServingStack
from infra.stacks.training import TrainingStack

DRIFT_MEMORY_MB = 3008
LABEL_QUALITY_MEMORY_MB = 1024
JOB_TIMEOUT = Duration.minutes(15)
DATA_CAPTURE_PREFIX = "datacapture"
LABEL_LOOKBACK_DAYS = 90
MIN_LABELED_PREDICTIONS = 200
DRIFT_REPORTS_PREFIX = "drift-reports"
QUALITY_REPORTS_PREFIX = quality_names.REPORTS_PREFIX
CLOUDWATCH_ALARM_EVENT = "CloudWatch Alarm State Change"


def alarm_names(config: StageConfig) -> dict[str, str]:
    """Physical names of this stack's alarms; the local cloud, the CLI and people find them by these."""
    kinds = (
        "drift",
        "feature-drift",
        "weighted-drift",
        "prediction-drift",
        "drift-traffic",
        "retraining-needed",
        "model-errors",
        "validation-error-rate",
        "quarantine-rate",
        "training-failures",
        "live-auc",
        "live-auc-drop",
    )
    return {kind: f"{config.prefix}-monitoring-{kind}" for kind in kinds}


class MonitoringStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        lake: DataLakeStack,
        training: TrainingStack,
        serving: ServingStack,
        env: Environment | None = None,
    ) -> None:
        super().__init__(
            scope, construct_id, env=env, description=f"{config.prefix}: drift, live quality, alarms, dashboard"
        )
        self.config = config
        self.lake = lake
        self.training = training
        self.serving = serving
        self.contract = load_contract(config.dataset)
        self.endpoint_name = serving.endpoint_name
        self.alarm_names = alarm_names(config)
        self.endpoint_dimension = {drift_names.ENDPOINT_DIMENSION: self.endpoint_name}

        self.drift_function = self._drift_function()
        self.label_quality_function = self._label_quality_function()
        self.alarms = self._alarms()
        self.retraining_alarm = self._retraining_alarm()
        self.retraining_rule = self._retraining_rule()
        self.dashboard = self._dashboard()

    # ------------------------------------------------------------------------------------------ helpers
    def _metric(
        self,
        name: str,
        *,
        statistic: str = "Maximum",
        period: Duration | None = None,
        extra: dict[str, str] | None = None,
        label: str | None = None,
    ) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self.config.metrics_namespace,
            metric_name=name,
            dimensions_map={**self.endpoint_dimension, **(extra or {})},
            statistic=statistic,
            period=period or Duration.hours(1),
            label=label,
        )

    def _frontdoor_metric(self, name: str, statistic: str = "Sum", period: Duration | None = None) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self.config.metrics_namespace,
            metric_name=name,
            dimensions_map={"service": f"{self.config.project}-frontdoor"},
            statistic=statistic,
            period=period or Duration.minutes(5),
        )

    def _endpoint_sum(self, metric: str) -> cloudwatch.MathExpression:
        # Variants are named after model versions: a Metrics Insights query follows every variant of the endpoint.
        return cloudwatch.MathExpression(
            expression=(
                f'SELECT SUM({metric}) FROM SCHEMA("AWS/SageMaker", EndpointName, VariantName) '
                f"WHERE EndpointName = '{self.endpoint_name}'"
            ),
            period=Duration.minutes(1),
            label=f"{metric} (all variants)",
            using_metrics={},
        )

    def _allow_job_basics(self, fn: PlatformFunction) -> None:
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": self.config.metrics_namespace}},
            )
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[self.lake.key.key_arn])
        )

    def _rule_dead_letters(self, construct_id: str) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            construct_id,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            removal_policy=removal_policy(self.config),
        )
        acknowledge(
            queue,
            {
                "AwsSolutions-SQS3": "This queue is the rule target's dead-letter queue; it has none itself.",
                "Serverless-SQSRedrivePolicy": "This queue is the rule target's dead-letter queue.",
            },
        )
        return queue

    def _schedule(self, construct_id: str, description: str, fn: PlatformFunction) -> events.Rule:
        return events.Rule(
            self,
            construct_id,
            description=description,
            schedule=events.Schedule.expression(self.config.monitoring.drift_schedule),
            targets=[
                targets.LambdaFunction(
                    fn,
                    dead_letter_queue=self._rule_dead_letters(f"{construct_id}DeadLetters"),
                    retry_attempts=2,
                    max_event_age=Duration.hours(1),
                )
            ],
        )

    # ------------------------------------------------------------------------------------------ jobs
    def _drift_function(self) -> PlatformFunction:
        m = self.config.monitoring
        fn = PlatformFunction(
            self,
            "DriftDetectorFunction",
            config=self.config,
            name="drift_detector",
            description="Compares the endpoint's captured traffic with the deployed model's drift baseline",
            # 1M captured rows parse in 128 MB groups (about 0.6 GB of Arrow buffers each) and 3 GB gives the
            # function two vCPUs for Arrow's threaded JSON reader: see docs/monitoring.md for the measurement.
            memory_mb=DRIFT_MEMORY_MB,
            timeout=JOB_TIMEOUT,
            with_pandas=True,
            environment={
                "ENDPOINT_NAME": self.endpoint_name,
                "ARTIFACTS_BUCKET": self.lake.artifacts_bucket.bucket_name,
                "DRIFT_WINDOW_HOURS": str(m.drift_window_hours),
                "MIN_DRIFT_SAMPLES": str(m.min_drift_samples),
                "PSI_THRESHOLD": str(m.psi_threshold),
                "DRIFTED_SHARE_THRESHOLD": str(m.drifted_share_threshold),
                "PREDICTION_PSI_THRESHOLD": str(m.prediction_psi_threshold),
                "WASSERSTEIN_THRESHOLD": str(m.wasserstein_threshold),
                "OUT_OF_RANGE_THRESHOLD": str(m.out_of_range_threshold),
                "WEIGHTED_DRIFT_THRESHOLD": str(m.weighted_drift_threshold),
                "PREDICTION_WASSERSTEIN_THRESHOLD": str(m.prediction_wasserstein_threshold),
            },
        )
        artifacts_read = lake_objects(self.config, "artifacts", "*")
        reports = lake_objects(self.config, "artifacts", f"{DRIFT_REPORTS_PREFIX}/*")
        capture = lake_objects(self.config, "capture", f"{DATA_CAPTURE_PREFIX}/*")
        fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[artifacts_read, capture]))
        fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[reports]))
        fn.add_to_role_policy(manifest_listing(self.lake.artifacts_bucket))
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.lake.capture_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{DATA_CAPTURE_PREFIX}/*"]}},
            )
        )
        fn.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sagemaker:DescribeEndpoint"],
                resources=[
                    self.format_arn(service="sagemaker", resource="endpoint", resource_name=self.endpoint_name.lower())
                ],
            )
        )
        packages = self._model_packages()
        fn.add_to_role_policy(iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=[packages]))
        self._allow_job_basics(fn)
        acknowledge(
            fn,
            {
                wildcard_finding(artifacts_read): "Baselines sit under each training run's artifact prefix; the "
                "serving manifest and the model package name them, so reads cannot be narrowed further.",
                wildcard_finding(reports): "One report per endpoint and hour under the drift reports prefix.",
                wildcard_finding(capture): "SageMaker files capture by endpoint, variant and hour.",
                wildcard_finding(packages): "Every version of this stage's model package group; the deployed one "
                "changes with each deploy.",
                "AwsSolutions-IAM5[Resource::*]": "cloudwatch:PutMetricData has no resource-level form; it is "
                "limited to the stage's namespace by condition. X-Ray has no resource-level form either.",
            },
        )
        self.drift_schedule_rule = self._schedule(
            "DriftScheduleRule", "Runs the drift detector over the last window of captured traffic", fn
        )
        return fn

    def _model_packages(self) -> str:
        return self.format_arn(
            service="sagemaker", resource="model-package", resource_name=f"{self.config.model_package_group.lower()}/*"
        )

    def _label_quality_function(self) -> PlatformFunction:
        labels_dataset = labels_dataset_of(self.config.dataset)
        fn = PlatformFunction(
            self,
            "LabelQualityFunction",
            config=self.config,
            name="label_quality",
            description="Joins delayed ground-truth labels to logged predictions and publishes live model quality",
            memory_mb=LABEL_QUALITY_MEMORY_MB,
            timeout=JOB_TIMEOUT,
            with_pandas=True,
            environment={
                "ENDPOINT_NAME": self.endpoint_name,
                "CURATED_BUCKET": self.lake.curated_bucket.bucket_name,
                "LABELS_DATASET": labels_dataset,
                "PREDICTIONS_BUCKET": self.lake.capture_bucket.bucket_name,
                "PREDICTIONS_PREFIX": PREDICTIONS_PREFIX,
                "ARTIFACTS_BUCKET": self.lake.artifacts_bucket.bucket_name,
                "LOOKBACK_DAYS": str(LABEL_LOOKBACK_DAYS),
                "MIN_LABELED": str(MIN_LABELED_PREDICTIONS),
            },
        )
        labels = lake_objects(self.config, "curated", f"{labels_dataset}/*")
        predictions = lake_objects(self.config, "capture", f"{PREDICTIONS_PREFIX}/*")
        reports = lake_objects(self.config, "artifacts", f"{QUALITY_REPORTS_PREFIX}/*")
        # The serving manifest names the version and its package, whose metadata holds the evaluated test AUC.
        manifest = lake_objects(self.config, "artifacts", manifest_key(self.endpoint_name))
        packages = self._model_packages()
        fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[labels, predictions, manifest]))
        fn.add_to_role_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[reports]))
        fn.add_to_role_policy(manifest_listing(self.lake.artifacts_bucket))
        fn.add_to_role_policy(iam.PolicyStatement(actions=["sagemaker:DescribeModelPackage"], resources=[packages]))
        for bucket, prefix in (
            (self.lake.curated_bucket, labels_dataset),
            (self.lake.capture_bucket, PREDICTIONS_PREFIX),
        ):
            fn.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{prefix}/*"]}},
                )
            )
        self._allow_job_basics(fn)
        acknowledge(
            fn,
            {
                wildcard_finding(labels): "Curated label files are partitioned by event date.",
                wildcard_finding(predictions): "Prediction logs are partitioned by prediction date and request.",
                wildcard_finding(reports): "One quality report per run under the quality reports prefix.",
                wildcard_finding(packages): "Every version of this stage's model package group; the deployed one "
                "changes with each deploy.",
                "AwsSolutions-IAM5[Resource::*]": "cloudwatch:PutMetricData has no resource-level form; it is "
                "limited to the stage's namespace by condition. X-Ray has no resource-level form either.",
            },
        )
        self.label_quality_schedule_rule = self._schedule(
            "LabelQualityScheduleRule", "Measures live model quality on the labels that have arrived", fn
        )
        return fn

    # ------------------------------------------------------------------------------------------ alarms
    def _alarm(
        self,
        construct_id: str,
        kind: str,
        *,
        metric: cloudwatch.IMetric,
        threshold: float,
        what: str,
        comparison: cloudwatch.ComparisonOperator = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        periods: int = 1,
        notify: bool = True,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_name=self.alarm_names[kind],
            alarm_description=f"{self.config.prefix}: {what} (threshold {threshold:g})",
            metric=metric,
            threshold=threshold,
            evaluation_periods=periods,
            datapoints_to_alarm=periods,
            comparison_operator=comparison,
            # No data is no evidence: a quiet endpoint or a job that had too little to judge must not page anyone.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        if notify:
            alarm.add_alarm_action(cw_actions.SnsAction(self.lake.notifications_topic))
            alarm.add_ok_action(cw_actions.SnsAction(self.lake.notifications_topic))
        return alarm

    def _alarms(self) -> dict[str, cloudwatch.Alarm]:
        m = self.config.monitoring
        ingest = {"service": f"{self.config.project}-ingest", "Dataset": self.config.dataset}
        hour, five = Duration.hours(1), Duration.minutes(5)

        def ingest_sum(name: str) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                # Ingestion is the stage's, shared by its models: it publishes in the stage's namespace.
                namespace=self.config.stage_metrics_namespace,
                metric_name=name,
                dimensions_map=ingest,
                statistic="Sum",
                period=hour,
            )

        # Answered requests are PredictLatency's sample count; rejected ones only emit ValidationErrors.
        validation_rate = cloudwatch.MathExpression(
            expression="IF(FILL(answered, 0) + FILL(rejected, 0) > 0, "
            "100 * FILL(rejected, 0) / (FILL(answered, 0) + FILL(rejected, 0)), 0)",
            using_metrics={
                "rejected": self._frontdoor_metric(frontdoor_names.VALIDATION_ERRORS),
                "answered": self._frontdoor_metric(frontdoor_names.PREDICT_LATENCY, statistic="SampleCount"),
            },
            period=five,
            label="Rejected requests (% of requests)",
        )
        quarantine_rate = cloudwatch.MathExpression(
            expression="IF(rows_in > 0, 100 * quarantined / rows_in, 0)",
            using_metrics={"quarantined": ingest_sum("RowsQuarantined"), "rows_in": ingest_sum("RowsIn")},
            period=hour,
            label="Quarantined rows (% of ingested rows)",
        )
        failures = cloudwatch.MathExpression(
            # Step Functions publishes each of these only when it happens: an absent one counts as none.
            expression="FILL(failed, 0) + FILL(timed_out, 0) + FILL(aborted, 0)",
            using_metrics={
                "failed": self.training.state_machine.metric_failed(period=hour),
                "timed_out": self.training.state_machine.metric_timed_out(period=hour),
                "aborted": self.training.state_machine.metric_aborted(period=hour),
            },
            period=hour,
            label="Training executions failed, timed out or aborted",
        )
        below = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD
        return {
            "drift": self._alarm(
                "DriftAlarm",
                "drift",
                metric=self._metric(drift_names.DRIFTED_SHARE),
                threshold=m.drifted_share_threshold,
                what="share of features whose drift effect size crossed its threshold",
            ),
            "feature-drift": self._alarm(
                "FeatureDriftAlarm",
                "feature-drift",
                metric=self._metric(drift_names.MAX_FEATURE_SEVERITY),
                threshold=1,
                what="the worst feature's drift severity (effect beyond the window's noise, in thresholds)",
            ),
            "weighted-drift": self._alarm(
                "WeightedDriftAlarm",
                "weighted-drift",
                metric=self._metric(drift_names.WEIGHTED_SEVERITY),
                threshold=m.weighted_drift_threshold,
                what="drift weighted by the model's feature importances: sum of importance x min(severity, 1)",
            ),
            "prediction-drift": self._alarm(
                "PredictionDriftAlarm",
                "prediction-drift",
                metric=self._metric(drift_names.PREDICTION_SEVERITY),
                threshold=1,
                what="drift severity of the model's scores (PSI and Wasserstein / sd against its held-out scores)",
            ),
            "drift-traffic": self._alarm(
                "DriftTrafficAlarm",
                "drift-traffic",
                metric=self._metric(drift_names.SAMPLE_COUNT),
                threshold=m.min_drift_samples,
                what=(
                    "the drift window held enough captured requests for a verdict (in ALARM = enough traffic); "
                    "no action: it only feeds the retraining-needed composite alarm, which notifies"
                ),
                notify=False,
            ),
            "model-errors": self._alarm(
                "ModelErrorsAlarm",
                "model-errors",
                metric=self._endpoint_sum("InvocationModelErrors"),
                threshold=m.errors_5xx,
                what="model container errors per minute, all variants",
            ),
            "validation-error-rate": self._alarm(
                "ValidationErrorRateAlarm",
                "validation-error-rate",
                metric=validation_rate,
                threshold=m.validation_error_rate_percent,
                what="share of front-door requests rejected by the data contract (%)",
                periods=2,
            ),
            "quarantine-rate": self._alarm(
                "QuarantineRateAlarm",
                "quarantine-rate",
                metric=quarantine_rate,
                threshold=m.quarantine_rate_percent,
                what="share of ingested rows quarantined (%)",
            ),
            "training-failures": self._alarm(
                "TrainingFailuresAlarm",
                "training-failures",
                metric=failures,
                threshold=1,
                what="training workflow executions that failed, timed out or were aborted",
            ),
            "live-auc": self._alarm(
                "LiveAucAlarm",
                "live-auc",
                metric=self._metric(quality_names.LIVE_AUC, statistic="Minimum", period=Duration.days(1)),
                threshold=m.min_live_auc,
                what="AUC of the live model on delayed ground truth fell below the minimum",
                comparison=below,
            ),
            "live-auc-drop": self._alarm(
                "LiveAucDropAlarm",
                "live-auc-drop",
                metric=self._metric(quality_names.LIVE_AUC_DROP, statistic="Maximum", period=Duration.days(1)),
                threshold=m.max_live_auc_drop,
                what=(
                    "live AUC of the serving model version on delayed labels fell below its evaluated test AUC "
                    "(recorded in its model package) by more than allowed; the value is the drop, the "
                    f"version is the {quality_names.MODEL_VERSION_DIMENSION} dimension of "
                    f"{quality_names.LIVE_AUC_DROP} and auc_drop in the latest quality report under "
                    f"{QUALITY_REPORTS_PREFIX}/{self.endpoint_name}/; entering ALARM asks for a retraining"
                ),
                comparison=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            ),
        }

    def _retraining_alarm(self) -> cloudwatch.CompositeAlarm:
        drifted = cloudwatch.AlarmRule.any_of(
            *(
                cloudwatch.AlarmRule.from_alarm(self.alarms[kind], cloudwatch.AlarmState.ALARM)
                for kind in ("drift", "feature-drift", "weighted-drift", "prediction-drift")
            )
        )
        composite = cloudwatch.CompositeAlarm(
            self,
            "RetrainingNeededAlarm",
            composite_alarm_name=self.alarm_names["retraining-needed"],
            alarm_description=(
                f"{self.config.prefix}: inputs or scores drifted on a window with enough traffic, or the serving "
                "version's live AUC fell below its evaluated AUC; entering ALARM starts a retraining "
                "(lineage: this alarm)"
            ),
            # A concept change leaves the inputs as they were: only the labels show it, so the drop alone suffices.
            alarm_rule=cloudwatch.AlarmRule.any_of(
                cloudwatch.AlarmRule.all_of(
                    drifted,
                    cloudwatch.AlarmRule.from_alarm(self.alarms["drift-traffic"], cloudwatch.AlarmState.ALARM),
                ),
                cloudwatch.AlarmRule.from_alarm(self.alarms["live-auc-drop"], cloudwatch.AlarmState.ALARM),
            ),
        )
        composite.add_alarm_action(cw_actions.SnsAction(self.lake.notifications_topic))
        return composite

    def _retraining_rule(self) -> events.Rule:
        pattern = events.EventPattern(
            source=["aws.cloudwatch"],
            detail_type=[CLOUDWATCH_ALARM_EVENT],
            detail={"alarmName": [self.alarm_names["retraining-needed"]], "state": {"value": ["ALARM"]}},
        )
        target: events.IRuleTarget
        if self.config.monitoring.retraining_needs_approval:
            # This stage retrains on a person's word: the alarm asks for it, the operator CLI starts it.
            target = targets.SnsTopic(
                self.lake.notifications_topic,
                dead_letter_queue=self._rule_dead_letters("RetrainingRuleDeadLetters"),
                retry_attempts=4,
                max_event_age=Duration.hours(2),
                message=events.RuleTargetInput.from_text(
                    f"{self.config.prefix}: retraining needed ({events.EventField.from_path('$.detail.alarmName')} "
                    f"entered ALARM at {events.EventField.from_path('$.time')}). Approve by starting it: "
                    f"mlloop retrain --stage {self.config.stage} --reason <why>"
                ),
            )
        else:
            # The alarm event itself is the input: the trigger function names the execution after it and records
            # it as the model's lineage; its cooldown absorbs a flapping alarm.
            target = targets.LambdaFunction(
                self.training.start_training_function,
                dead_letter_queue=self._rule_dead_letters("RetrainingRuleDeadLetters"),
                retry_attempts=4,
                max_event_age=Duration.hours(2),
            )
        return events.Rule(
            self,
            "RetrainingOnAlarmRule",
            description="Retraining-needed alarm entered ALARM: start a retraining, or ask for one if approval rules",
            event_pattern=pattern,
            targets=[target],
        )

    # ------------------------------------------------------------------------------------------ dashboard
    def _dashboard(self) -> cloudwatch.Dashboard:
        minute, hour = Duration.minutes(1), Duration.hours(1)
        dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=f"{self.config.prefix}-ml-platform",
            default_interval=Duration.days(1),
        )
        fallback_rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * FILL(fallbacks, 0) / requests, 0)",
            using_metrics={
                "fallbacks": self._frontdoor_metric(frontdoor_names.FALLBACK_ANSWERS, period=minute),
                "requests": self._frontdoor_metric(
                    frontdoor_names.PREDICT_LATENCY, statistic="SampleCount", period=minute
                ),
            },
            period=minute,
            label="Fallback answers (%)",
        )
        feature_psi = [
            self._metric(drift_names.FEATURE_PSI, extra={drift_names.FEATURE_DIMENSION: name}, label=name)
            for name in self.contract.feature_names
        ]
        psi_line = cloudwatch.HorizontalAnnotation(value=self.config.monitoring.psi_threshold, label="PSI threshold")
        all_alarms: list[cloudwatch.IAlarm] = [
            *(
                cloudwatch.Alarm.from_alarm_name(self, f"ServingAlarm{i}", name)
                for i, name in enumerate(rollback_alarm_names(self.config))
            ),
            # The traffic alarm is a composite input whose ALARM means "enough traffic": a red tile would mislead.
            *(alarm for kind, alarm in self.alarms.items() if kind != "drift-traffic"),
            self.retraining_alarm,
        ]
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {self.config.prefix}: {self.config.model_name} on `{self.endpoint_name}`\n"
                "Traffic and health of the endpoint, drift of its inputs and scores, live quality, deploys.",
                width=24,
                height=2,
            )
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Invocations",
                left=[
                    self._frontdoor_metric(frontdoor_names.PREDICT_LATENCY, statistic="SampleCount", period=minute),
                    self._frontdoor_metric(frontdoor_names.VALIDATION_ERRORS, period=minute),
                    self._endpoint_sum("Invocations"),
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Latency (ms)",
                left=[
                    self._frontdoor_metric(frontdoor_names.PREDICT_LATENCY, statistic="p50", period=minute),
                    self._frontdoor_metric(frontdoor_names.PREDICT_LATENCY, statistic="p99", period=minute),
                    self._frontdoor_metric(frontdoor_names.ENDPOINT_LATENCY, statistic="p99", period=minute),
                ],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=self.config.monitoring.latency_p99_ms, label="p99 limit")
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Errors and fallback rate",
                left=[
                    self._endpoint_sum("Invocation5XXErrors"),
                    self._endpoint_sum("InvocationModelErrors"),
                    self._frontdoor_metric(frontdoor_names.UNAVAILABLE_ANSWERS, period=minute),
                ],
                right=[fallback_rate],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Drift per feature (PSI)", left=feature_psi, left_annotations=[psi_line], width=12, height=8
            ),
            cloudwatch.GraphWidget(
                title="Drift summary",
                left=[
                    self._metric(drift_names.DRIFTED_SHARE, label="drifted feature share"),
                    self._metric(drift_names.MAX_PSI, label="largest feature PSI"),
                    self._metric(drift_names.PREDICTION_PSI, label="prediction score PSI"),
                    self._metric(drift_names.MAX_FEATURE_SEVERITY, label="worst feature severity (1 = drifted)"),
                    self._metric(drift_names.WEIGHTED_SEVERITY, label="importance-weighted drift"),
                    self._metric(drift_names.PREDICTION_SEVERITY, label="prediction score severity"),
                ],
                right=[
                    self._metric(drift_names.SAMPLE_COUNT, label="captured rows in window"),
                    self._metric(drift_names.INSUFFICIENT_DATA, label="too little traffic (1 = no verdict)"),
                ],
                width=12,
                height=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Model version over time",
                left=[self._metric(drift_names.DEPLOYED_MODEL_VERSION, period=hour, label="deployed model version")],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Live quality on delayed labels",
                left=[
                    self._metric(quality_names.LIVE_AUC, label="AUC", period=hour),
                    self._metric(quality_names.LIVE_PRECISION, label="precision", period=hour),
                    self._metric(quality_names.LIVE_RECALL, label="recall", period=hour),
                    self._metric(quality_names.CALIBRATION_ERROR, label="calibration error", period=hour),
                ],
                left_annotations=[
                    cloudwatch.HorizontalAnnotation(value=self.config.monitoring.min_live_auc, label="minimum AUC")
                ],
                right=[self._metric(quality_names.LIVE_AUC_DROP, label="AUC drop below evaluated", period=hour)],
                right_annotations=[
                    cloudwatch.HorizontalAnnotation(
                        value=self.config.monitoring.max_live_auc_drop, label="maximum AUC drop"
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Canary deploys and retraining",
                left=[
                    self.serving.deploy_state_machine.metric_started(period=hour),
                    self.serving.deploy_state_machine.metric_succeeded(period=hour),
                    self.serving.deploy_state_machine.metric_failed(period=hour),
                    self.training.state_machine.metric_started(period=hour),
                    self.training.state_machine.metric_failed(period=hour),
                ],
                width=8,
            ),
        )
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms (canary rollback alarms first)", alarms=all_alarms, width=24)
        )
        return dashboard
