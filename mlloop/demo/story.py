"""The whole life of a model on the embedded AWS, phase by phase, recorded as facts a person can check.

Every phase acts only through what the dev stage deploys (buckets, rules, state machines, the API, the endpoint)
or through what an operator has (boto3, the operator CLI's functions), then reads back from the cloud what a
person would look at: packages and their approval, the endpoint's config and weights, alarms and their events,
executions and their input. The record (`Story.record`) feeds the summary, the HTML report and the e2e tests.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import statistics
import tarfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from functions.deploy_model.standby import FAST_ROLLBACK_BOUND_SECONDS
from functions.shared.contract import load_contract
from infra.config import StageConfig, load_dataset_model, load_stage_models
from infra.context import effective_context
from mlloop import assembly, recovery
from mlloop.cli import registry, serving
from mlloop.cli.platform import Platform
from mlloop.datagen import generate_churn
from mlloop.demo import second_model
from mlloop.demo.errors import StoryError
from mlloop.demo.traffic import Traffic, batches, feature_records
from mlloop.localcloud import LocalCloud, fidelity
from mlloop.localcloud import sagemaker as local_sagemaker
from mlloop.localcloud.deployer import Deployment

STAGE = "dev"
# The story's data is generated churn: it follows the stage's model of that dataset.
STORY_DATASET = "churn"
TIMELINE_RULE = "mlloop-demo-timeline"
# Features the drifted traffic moves, and how far (see mlloop.datagen: standard deviations or probability share).
DRIFT = {"monthly_charges": 1.5, "tenure_months": -1.0, "contract_type": 0.6, "support_calls_90d": 1.5}
BROKEN_PREDICT = '''

def predict_fn(data, model):
    """Deliberately broken for the demo: every prediction fails, as a bad release would."""
    raise RuntimeError("deliberately broken model: predict_fn always fails")
'''


@dataclass
class DemoOptions:
    rows: int = 5000
    # The time split needs train, validation and test windows apart by the 30-day label window: 8 months.
    months: int = 8
    corrupt_fraction: float = 0.03
    serve_requests: int = 40
    drift_rows: int = 900
    # Labelled rows of the drifted customers (their snapshots of the last months whose label windows have closed)
    # that land after the alarm's retraining stopped for want of labels.
    fresh_rows: int = 900
    fresh_months: int = 6
    fallback_requests: int = 60
    time_scale: float = 0.01
    seed: int = 7


@dataclass
class Phase:
    name: str
    title: str
    seconds: float = 0.0
    facts: list[str] = field(default_factory=list)


class Story:
    """One run of the demo. `phases()` lists the steps; each is a method that records what it saw."""

    def __init__(
        self,
        options: DemoOptions,
        *,
        output_dir: Path,
        cdk_out: Path,
        on_fact: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options
        self.output_dir = output_dir
        self.cdk_out = cdk_out
        self.models = {c.model_name: c for c in load_stage_models(effective_context(), STAGE)}
        self.config: StageConfig = load_dataset_model(effective_context(), STAGE, STORY_DATASET)
        self.contract = load_contract(self.config.dataset)
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.on_fact = on_fact or (lambda _text: None)
        self.cloud: LocalCloud | None = None
        self.deployment: Deployment | None = None
        self.platform: Platform | None = None
        self.traffic: Traffic | None = None
        self.current: Phase | None = None
        self._saved_env: dict[str, str | None] = {}
        # The recovery phase's simulation runs in a worker process from the first phase on (it needs no cloud).
        self._recovery_pool: ProcessPoolExecutor | None = None
        self._recovery: Future[list[dict[str, Any]]] | None = None
        self._timeline_queue = ""
        self.record: dict[str, Any] = {
            "stage": STAGE,
            "models": {name: second_model.model_names(config) for name, config in self.models.items()},
            "started_at": self.started_at.isoformat(),
            "options": vars(options),
            "phases": [],
            "packages": [],
            "trainings": [],
            "deploys": [],
            "endpoint_snapshots": [],
            "traffic_split": [],
            "alarm_history": {},
            "events": [],
        }

    # ------------------------------------------------------------------ plumbing
    def phases(self) -> list[tuple[str, str, Callable[[], None]]]:
        return [
            ("synthesize", "Synthesize the CDK app (every stage, cdk-nag checked)", self.synthesize),
            ("deploy", "Start the local cloud and deploy the dev stage", self.deploy),
            ("ingest", "Ingest raw data (bad rows go to quarantine)", self.ingest),
            ("train_v1", "Train, evaluate and register v1 (training state machine)", self.train_v1),
            ("deploy_v1", "Deploy v1 on approval", self.deploy_v1),
            ("serve", "Serve traffic: HTTP API and sagemaker-runtime", self.serve),
            ("drift", "Drifted traffic: detector, alarm, no new labels yet; fresh labels land, retraining", self.drift),
            ("canary_v2", "v2 through a canary, promoted", self.canary_v2),
            # After the drift story's canary: v2's deploy starts when the drift phase ends and the canary phase
            # watches it happen.
            ("recovery", "The world changes twice: the loop's recovery over simulated days", self.recovery),
            ("bad_canary", "A bad model: its canary trips an alarm and rolls back", self.bad_canary),
            ("fast_rollback", "v2 turns out slow under load after its canary: fast rollback", self.fast_rollback),
            (second_model.PHASE, second_model.TITLE, lambda: second_model.serve_side_by_side(self)),
            ("fallback", "Kill the endpoint mid-traffic: the fallback answers", self.fallback),
        ]

    @contextmanager
    def phase(self, name: str, title: str) -> Iterator[Phase]:
        phase = Phase(name, title)
        self.current = phase
        began = time.monotonic()
        try:
            yield phase
        finally:
            phase.seconds = round(time.monotonic() - began, 2)
            self.record["phases"].append(
                {"name": name, "title": title, "seconds": phase.seconds, "facts": list(phase.facts)}
            )
            self.current = None

    def fact(self, text: str) -> None:
        if self.current is not None:
            self.current.facts.append(text)
        self.on_fact(text)

    def clock(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def client(self, service: str) -> Any:
        assert self.cloud is not None
        return self.cloud.client(service)

    def stop(self) -> None:
        """Leave nothing running: the endpoint threads, the API server and the cloud stop with it."""
        if self._recovery_pool is not None:
            self._recovery_pool.shutdown(wait=True, cancel_futures=True)
            self._recovery_pool = None
        if self.cloud is not None:
            try:
                # What the embedded AWS authorised, refused or could not evaluate, per principal.
                self.record["fidelity"] = fidelity.report()
                if self._timeline_queue:
                    self.record["events"] = self._drain_timeline()
            finally:
                self.cloud.stop()
                self.cloud = None
                for key, value in self._saved_env.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value

    # ------------------------------------------------------------------ lookups
    def _machine(self, suffix: str, config: StageConfig | None = None) -> str:
        """A state machine of the story's model (or of `config`'s model)."""
        c = config or self.config
        return f"arn:aws:states:{c.region}:{LocalCloud.account_id}:stateMachine:{c.prefix}-{suffix}"

    def _executions(self, suffix: str, config: StageConfig | None = None) -> list[dict[str, Any]]:
        pages = (
            self.client("stepfunctions")
            .get_paginator("list_executions")
            .paginate(stateMachineArn=self._machine(suffix, config))
        )
        return sorted((e for page in pages for e in page["executions"]), key=lambda e: e["startDate"])

    def _new_execution(
        self, suffix: str, known: set[str], timeout: float, config: StageConfig | None = None
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            fresh = [e for e in self._executions(suffix, config) if e["executionArn"] not in known]
            if fresh:
                return fresh[0]
            time.sleep(0.1)
        raise StoryError(f"no new {(config or self.config).prefix}-{suffix} execution started within {timeout:.0f} s")

    def _bucket(self, logical: str) -> str:
        assert self.deployment is not None
        return str(self.deployment.physical_id(logical))

    def _package(self, arn: str) -> dict[str, Any]:
        described: dict[str, Any] = self.client("sagemaker").describe_model_package(ModelPackageName=arn)
        metadata = described.get("CustomerMetadataProperties") or {}
        return {
            "arn": arn,
            "version": int(described["ModelPackageVersion"]),
            "approval": described.get("ModelApprovalStatus", ""),
            "approval_description": described.get("ApprovalDescription", ""),
            "model_data_url": described["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
            "metadata": metadata,
        }

    def _snapshot_endpoint(self, label: str) -> dict[str, Any]:
        described = self.client("sagemaker").describe_endpoint(EndpointName=self.config.endpoint_name)
        snapshot = {
            "label": label,
            "at": self.clock(),
            "status": described["EndpointStatus"],
            "config": described["EndpointConfigName"],
            "version": _config_version(described["EndpointConfigName"]),
            "failure_reason": described.get("FailureReason", ""),
            "variants": {v["VariantName"]: v.get("CurrentWeight") for v in described.get("ProductionVariants", [])},
        }
        self.record["endpoint_snapshots"].append(snapshot)
        return snapshot

    def _wait_for(self, execution_arn: str, timeout: float) -> dict[str, Any]:
        assert self.cloud is not None
        described = self.cloud.wait_for_execution(execution_arn, timeout=timeout)
        return {
            "name": described["name"],
            "arn": execution_arn,
            "status": described["status"],
            "error": described.get("error", ""),
            "cause": described.get("cause", "")[:500],
            "input": json.loads(described.get("input") or "{}"),
            "output": json.loads(described.get("output") or "{}"),
            "started": self.started_seconds(described["startDate"]),
            "stopped": self.started_seconds(described.get("stopDate")),
        }

    def started_seconds(self, when: datetime | None) -> float | None:
        """A cloud timestamp as seconds since the run started (the report's time axis)."""
        if when is None:
            return None
        return round((when.astimezone(UTC) - self.started_at).total_seconds(), 3)

    # ------------------------------------------------------------------ phases
    def synthesize(self) -> None:
        # Spawned, not forked: the parent is about to start the cloud's threads.
        self._recovery_pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self._recovery = self._recovery_pool.submit(recovery.demo_runs, self.options.seed)
        # Its own output folder: the demo's models differ from cdk.json's, and a shared cdk.out synthesized with
        # them would be stale for every other tool (mlloop/assembly.py keeps the context it was made with).
        fresh = assembly.is_fresh(self.cdk_out)
        assembly.synthesize(self.cdk_out)
        models = ", ".join(self.models)
        self.fact(
            f"{self.cdk_out} was up to date ({STAGE}: {models})"
            if fresh
            else f"synthesized every stage into {self.cdk_out} (cdk-nag passed; {STAGE}: {models})"
        )

    def deploy(self) -> None:
        self.cloud = LocalCloud.start(time_scale=self.options.time_scale)
        # As a person's shell after `mlloop.localcloud up`: boto3 anywhere in the process finds the cloud and its
        # region, and functions overlaying their environment restore these values instead of removing them.
        self._saved_env = {key: os.environ.get(key) for key in self.cloud.client_environment()}
        os.environ.update(self.cloud.client_environment())
        self.deployment = self.cloud.deploy(STAGE, cdk_out=self.cdk_out, synthesize=False)
        self.platform = Platform(config=self.config, session=self.cloud.session, endpoint_url=self.cloud.endpoint_url)
        self.fact(f"local cloud on {self.cloud.endpoint_url} (time scale {self.options.time_scale})")
        self.fact(f"deployed stacks: {', '.join(self.deployment.stack_names)}")
        self._keep_warm_standby()
        self._watch_timeline()
        (rest_api,) = [
            r for r in self.deployment.of_type("AWS::ApiGateway::RestApi") if r.stack == self.config.api_stack_name
        ]
        api_url = self.cloud.api_url(rest_api.physical_id, STAGE)
        self.traffic = Traffic(
            api_base=api_url + self.config.api_path_prefix,
            runtime=self.client("sagemaker-runtime"),
            endpoint_name=self.config.endpoint_name,
            started=self.started,
        )
        self.record["api_url"] = api_url
        self.fact(f"front door API at {api_url}, {self.config.model_name} at {self.config.api_path_prefix or '/'}")

    def _keep_warm_standby(self) -> None:
        """dev keeps no standby by default (an idle instance on AWS); staging and prod do: the demo turns it on."""
        assert self.platform is not None
        name = self.platform.find_function("deploy_model")
        lam = self.client("lambda")
        variables = dict(lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"])
        # Two instances: a blue/green canary step of 50 % must be a whole instance of every variant, the standby too.
        variables["STANDBY_INSTANCE_COUNT"] = "2"
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
        self.fact("warm standby on (2 instances, as staging and prod keep it; dev's cdk.json keeps none)")

    def _watch_timeline(self) -> None:
        """An audit rule, as an operator would add one: every alarm and SageMaker event lands in a queue."""
        sqs, events = self.client("sqs"), self.client("events")
        queue_url = sqs.create_queue(QueueName=TIMELINE_RULE)["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        rule_arn = events.put_rule(
            Name=TIMELINE_RULE,
            EventPattern=json.dumps({"source": ["aws.cloudwatch", "aws.sagemaker"]}),
            State="ENABLED",
        )["RuleArn"]
        # EventBridge sends as events.amazonaws.com: the queue's policy must allow this rule, as in AWS.
        allow_rule = {
            "Effect": "Allow",
            "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sqs:SendMessage",
            "Resource": queue_arn,
            "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
        }
        policy = {"Version": "2012-10-17", "Statement": [allow_rule]}
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
        events.put_targets(Rule=TIMELINE_RULE, Targets=[{"Id": "queue", "Arn": queue_arn}])
        self._timeline_queue = queue_url

    def _drain_timeline(self) -> list[dict[str, Any]]:
        sqs = self.client("sqs")
        drained: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self._timeline_queue, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return sorted(drained, key=lambda e: e["time"])
            for message in messages:
                event = json.loads(message["Body"])
                drained.append(_timeline_entry(event))
                sqs.delete_message(QueueUrl=self._timeline_queue, ReceiptHandle=message["ReceiptHandle"])

    def _compress_cooldown(self) -> None:
        """Local time runs faster (the time scale): the retraining cooldown shrinks with it, as every wait does."""
        assert self.platform is not None
        name = self.platform.find_function("start_training")
        lam = self.client("lambda")
        variables = dict(lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"])
        cooldown = int(self.config.training.cooldown_minutes * self.options.time_scale)
        variables["COOLDOWN_MINUTES"] = str(cooldown)
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
        self.fact(
            f"retraining cooldown {self.config.training.cooldown_minutes} min scaled to {cooldown} min "
            f"(time scale {self.options.time_scale})"
        )

    def ingest(self) -> None:
        assert self.cloud is not None
        o = self.options
        frame = generate_churn(o.rows, seed=o.seed, months=o.months, corrupt_fraction=o.corrupt_fraction)
        key = f"{self.config.dataset}/demo-{datetime.now(UTC):%Y%m%dT%H%M%S}.csv"
        self.client("s3").put_object(Bucket=self._bucket("RawBucket"), Key=key, Body=frame.to_csv(index=False).encode())
        report = self._ingest_report(key, timeout=600)
        self.record["ingest"] = {
            "raw_key": key,
            "rows_generated": len(frame),
            "rows_corrupted": len(frame.attrs["corrupt_rows"]),
            "corruptions": _count(frame.attrs["corruptions"]),
            "rows_in": report["rows_in"],
            "rows_curated": report["rows_curated"],
            "rows_quarantined": report["rows_quarantined"],
            "rule_counts": report["rule_counts"],
            "curated_objects": len(report["curated_objects"]),
        }
        self.fact(f"raw file s3://{self._bucket('RawBucket')}/{key}: {len(frame)} rows")
        rules = ", ".join(f"{rule} {count}" for rule, count in report["rule_counts"].items())
        self.fact(
            f"curated {report['rows_curated']} rows in {len(report['curated_objects'])} daily Parquet files; "
            f"quarantined {report['rows_quarantined']} ({rules})"
        )

    def _ingest_report(self, raw_key: str, timeout: float) -> dict[str, Any]:
        """The ingest function's validation report, written once the file is fully processed."""
        s3, bucket = self.client("s3"), self._bucket("QuarantineBucket")
        stem = raw_key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="reports/"):
                for item in page.get("Contents", []):
                    if stem in item["Key"] and item["Key"].endswith(".json"):
                        body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                        report: dict[str, Any] = json.loads(body)
                        return report
            time.sleep(0.2)
        raise StoryError(f"no ingest report for {raw_key} in s3://{bucket}/reports/ after {timeout:.0f} s")

    def _training_run(self, execution: dict[str, Any], label: str, *, registers: bool = True) -> dict[str, Any]:
        finished = self._wait_for(execution["executionArn"], timeout=900)
        history = self.client("stepfunctions").get_execution_history(
            executionArn=execution["executionArn"], maxResults=1000
        )["events"]
        states = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
        registration = finished["output"].get("registration") or {}
        run = {**finished, "label": label, "states": states, "trigger": finished["input"].get("trigger", {})}
        run["evaluation"] = finished["output"].get("evaluation", {})
        run["package_arn"] = registration.get("model_package_arn", "")
        run["snapshot"] = finished["output"].get("snapshot", {})
        run["notification"] = finished["output"].get("notification", {})
        self.record["trainings"].append(run)
        if finished["status"] != "SUCCEEDED" or (registers and not run["package_arn"]):
            raise StoryError(f"training {finished['name']} ended {finished['status']}: {finished['cause']}")
        if not registers and (run["package_arn"] or run["snapshot"].get("has_new_labels") is not False):
            raise StoryError(f"training {finished['name']} should have stopped for want of new labels: {run['states']}")
        return run

    def train_v1(self) -> None:
        # dev retrains on new data: the ingest itself started the run through the new-data rule.
        first = self._new_execution("training", set(), timeout=300)
        run = self._training_run(first, "v1")
        package = self._package(run["package_arn"])
        self.record["packages"].append({**package, "label": "v1"})
        metrics = run["evaluation"].get("metrics", {})
        self.fact(f"execution {run['name']} (trigger: {run['trigger'].get('kind')}) {run['status']}")
        self.fact(f"steps: {' > '.join(dict.fromkeys(run['states']))}")
        self.fact(
            f"v{package['version']} registered, {package['approval']}: test AUC {metrics.get('roc_auc', 0):.3f}, "
            f"ECE {metrics.get('ece', 0):.3f}"
        )

    def _trigger_records(self) -> list[dict[str, Any]]:
        """The start-training function's record of every trigger (started or not, and why)."""
        s3, bucket = self.client("s3"), self._bucket("ArtifactsBucket")
        records = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="training/triggers/"):
            for item in page.get("Contents", []):
                record = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                records.append(
                    {"kind": record["trigger"]["kind"], "started": record["started"], "reason": record["reason"]}
                )
        return records

    def _deploy_run(self, known: set[str], label: str, during: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        execution = self._new_execution("deploy-model", known, timeout=300)
        during(execution)
        finished = self._wait_for(execution["executionArn"], timeout=600)
        deploy = {**finished, "label": label, "result": finished["output"].get("deploy", {})}
        self.record["deploys"].append(deploy)
        return deploy

    def deploy_v1(self) -> None:
        assert self.cloud is not None
        deploy = self._deploy_run(set(), "v1", lambda _execution: None)
        if deploy["status"] != "SUCCEEDED":
            raise StoryError(f"deploy of v1 ended {deploy['status']}: {deploy['cause']}")
        # Every new-data event reached the trigger function; one started a run, any others were recorded.
        self.cloud.wait_idle(timeout=600)
        started = [e["name"] for e in self._executions("training")]
        self.record["new_data_triggers"] = self._trigger_records()
        self.fact(
            f"{len(self.record['new_data_triggers'])} new-data trigger(s) handled, {len(started)} training run started"
        )
        snapshot = self._snapshot_endpoint("after v1")
        self.fact(f"deploy {deploy['name']}: {deploy['result'].get('detail', deploy['status'])}")
        self.fact(f"endpoint {self.config.endpoint_name} {snapshot['status']} on {snapshot['config']}")

    def serve(self) -> None:
        assert self.traffic is not None
        o = self.options
        frame = generate_churn(o.serve_requests * 3, seed=o.seed + 1, months=1)
        records = feature_records(frame, self.contract)
        for record in records[: o.serve_requests]:
            self.traffic.predict("serve", [record])
        for batch in batches(records[o.serve_requests :], 20):
            self.traffic.predict("serve", batch)
        for record in records[: o.serve_requests // 2]:
            self.traffic.invoke_endpoint("serve", [record])
        status, invalid = self.traffic.post("/predict", {**records[0], "plan": "platinum"})
        self.record["invalid_request"] = {"status": status, "answer": invalid}
        status, model = self.traffic.get("/model")
        self.record["model_endpoint"] = {"status": status, "model_version": model.get("model_version")}
        answers = self.traffic.of_phase("serve")
        self.fact(
            f"{sum(a.door == 'api' for a in answers)} HTTP requests, "
            f"{sum(a.door == 'runtime' for a in answers)} sagemaker-runtime calls, "
            f"{sum(a.answered for a in answers)} answered by {sorted({a.model_version for a in answers})}"
        )
        contract = model.get("contract") or {}
        self.fact(
            f"GET /model: {model.get('model_version')}, contract {contract.get('dataset')}@{contract.get('version')}, "
            f"threshold {model.get('threshold')}"
        )
        self.fact(
            f"an unknown plan is refused with {self.record['invalid_request']['status']}: "
            f"{json.dumps(invalid.get('fields', invalid))[:120]}"
        )

    def drift(self) -> None:
        assert self.cloud is not None and self.traffic is not None and self.platform is not None
        self._compress_cooldown()
        o = self.options
        frame = generate_churn(o.drift_rows, seed=o.seed + 2, months=1, drift=DRIFT)
        for batch in batches(feature_records(frame, self.contract), 50):
            self.traffic.predict("drift", batch)
        written = local_sagemaker.flush_data_capture(self.config.endpoint_name)
        known = {e["executionArn"] for e in self._executions("training")}
        detector = self.platform.find_function("drift_detector")
        now = datetime.now(UTC)
        # The scheduled run looks at whole past hours; on demand, the detector is asked for the current hour.
        # Two hours, so traffic sent just before an hour boundary is still in the window.
        event = {"window_end": (now + timedelta(hours=1)).isoformat(), "window_hours": 2}
        response = self.client("lambda").invoke(FunctionName=detector, Payload=json.dumps(event).encode())
        summary = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            raise StoryError(f"the drift detector failed: {summary}")
        report = self._read_s3_json(summary["report"])
        self.record["drift"] = {"summary": summary, "report": report, "capture_records_flushed": written}
        self.fact(
            f"detector: {summary['verdict']} on {summary['sample_count']} captured rows; drifted: "
            f"{', '.join(summary['drifted_features']) or 'none'}"
        )
        self.cloud.evaluate_alarms()
        states = self._alarm_states()
        self.record["alarms_after_drift"] = states
        self.fact("in ALARM: " + ", ".join(sorted(n for n, s in states.items() if s == "ALARM")))
        self.cloud.wait_idle(timeout=300)
        retraining = self._new_execution("training", known, timeout=120)
        stopped = self._training_run(retraining, "no-new-labels", registers=False)
        labels = stopped["snapshot"].get("labels", {})
        self.fact(
            f"retraining {stopped['name']} (trigger: {stopped['trigger'].get('kind')} "
            f"{stopped['trigger'].get('source')}) stopped before training: "
            f"{stopped['snapshot'].get('retraining_reason')}"
        )
        self.fact(
            f"its snapshot at {labels.get('cut', '')}: {labels.get('labelled', 0)} labelled rows, "
            f"{labels.get('immature_dropped', 0)} still in their {self.contract.label.window_days}-day label window"
        )
        # The drifted customers' earlier snapshots, whose label windows have closed, land with their outcomes: new
        # labels. Their arrival is a curated file like any other, and dev retrains on new data.
        known = {e["executionArn"] for e in self._executions("training")}
        # Spread over months, as the training's time split needs: validation and test each follow a label-window gap.
        window_days = self.contract.label.window_days
        fresh = generate_churn(
            o.fresh_rows,
            seed=o.seed + 3,
            start=now - timedelta(days=(o.fresh_months + 1) * window_days + 1),
            months=o.fresh_months,
            drift=DRIFT,
        )
        key = f"{self.config.dataset}/demo-outcomes-{datetime.now(UTC):%Y%m%dT%H%M%S}.csv"
        self.client("s3").put_object(Bucket=self._bucket("RawBucket"), Key=key, Body=fresh.to_csv(index=False).encode())
        report = self._ingest_report(key, timeout=600)
        self.record["fresh_labels"] = {"raw_key": key, "rows": len(fresh), "rows_curated": report["rows_curated"]}
        self.fact(f"{report['rows_curated']} labelled rows of the drifted customers landed (s3://.../{key})")
        retraining = self._new_execution("training", known, timeout=300)
        run = self._training_run(retraining, "v2")
        package = self._package(run["package_arn"])
        self.record["packages"].append({**package, "label": "v2"})
        self.fact(
            f"retraining {run['name']} (trigger: {run['trigger'].get('kind')} {run['trigger'].get('source')}) "
            f"{run['status']} on {run['snapshot'].get('labels', {}).get('newly_matured', 0)} new labels: "
            f"v{package['version']} {package['approval']}"
        )

    def recovery(self) -> None:
        """The loop's own logic (drift detector, live-quality job, retraining alarm and schedule, the snapshot's
        window rule, training, gate, canary timings) on simulated days, in-process: months of label arrivals cannot
        pass on the embedded AWS yet, because Lambda handlers, training containers and moto stamp S3 arrivals and
        cut snapshots by the host's clock, not the controllable one."""
        assert self._recovery is not None
        runs = self._recovery.result(timeout=900)
        self.record["recovery"] = runs
        self.fact(
            "simulated in-process on the dev stage's settings (not on the embedded AWS: Lambda, containers and moto"
            " read the host's clock, and months of label arrivals must pass)"
        )
        for run in runs:
            detection = run["detection"]
            tried = [r for r in run["retrainings"] if r["outcome"] != "waiting"]
            waited = [r for r in run["retrainings"] if r["outcome"] == "waiting"]
            recovered = [d for d in run["deploys"] if d["since_change"]]
            self.fact(
                f"{run['scenario']} ({run['description']}): detected on day {detection['day']} by the {detection['by']}"
                if detection
                else f"{run['scenario']}: no alarm"
            )
            self.fact(
                f"{run['scenario']}: {len(tried)} retraining(s) trained ("
                + ", ".join(
                    f"day {r['day']} {r['trigger']}: {r['outcome']} {r['model_version']}".strip() for r in tried
                )
                + f"); {len(waited)} waited for labels since the change"
                + (f" (last: {waited[-1]['reason']})" if waited else "")
            )
            self.fact(
                f"{run['scenario']}: {run['v2']} serves all traffic from day {recovered[0]['day']:.2f}"
                if recovered
                else f"{run['scenario']}: no version trained since the change serves yet"
            )
            self.fact(
                f"{run['scenario']}: post-change holdout AUC v1 {run['auc_v1']:.4f}, {run['v2']} {run['auc_v2']:.4f},"
                f" oracle {run['auc_oracle']:.4f}; recovery ratio {run['recovery_ratio']:.2f}"
            )
        beaten = [r["scenario"] for r in runs if r["auc_v2"] <= r["auc_v1"]]
        if beaten:
            raise StoryError(f"the retrained model does not beat v1 on post-change data in: {', '.join(beaten)}")

    def _alarm_states(self) -> dict[str, str]:
        """Every alarm of the stage (metric and composite) and its state, as `describe-alarms` lists them."""
        cw = self.client("cloudwatch")
        described = cw.describe_alarms(
            AlarmNamePrefix=self.config.prefix, AlarmTypes=["MetricAlarm", "CompositeAlarm"], MaxRecords=100
        )
        alarms = [*described.get("MetricAlarms", []), *described.get("CompositeAlarms", [])]
        return {a["AlarmName"]: a["StateValue"] for a in alarms}

    def _read_s3_json(self, uri: str) -> dict[str, Any]:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        loaded: dict[str, Any] = json.loads(self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
        return loaded

    def _pump_during(self, phase: str, execution: dict[str, Any], records: list[dict[str, Any]]) -> None:
        """Call the API while a deploy runs, sampling how the endpoint splits traffic between its fleets."""
        assert self.traffic is not None
        sfn = self.client("stepfunctions")
        index = 0
        while sfn.describe_execution(executionArn=execution["executionArn"])["status"] == "RUNNING":
            self.record["traffic_split"].append({"phase": phase, "at": self.clock(), **self._blue_green()})
            self.traffic.predict(phase, [records[index % len(records)]])
            # Callers of the raw endpoint too: they have no fallback, so they see what the new fleet does.
            self.traffic.invoke_endpoint(phase, [records[(index + 1) % len(records)]])
            index += 2

    def _blue_green(self) -> dict[str, Any]:
        """The running (blue) config and, during an update, the new (green) one with its share of all traffic."""
        described = self.client("sagemaker").describe_endpoint(EndpointName=self.config.endpoint_name)
        pending = described.get("PendingDeploymentSummary") or {}
        green_share = sum(v.get("CurrentWeight") or 0.0 for v in pending.get("ProductionVariants", []))
        return {
            "blue": _config_version(described["EndpointConfigName"]),
            "green": _config_version(pending["EndpointConfigName"]) if pending else "",
            "green_share": round(green_share, 4),
        }

    def canary_v2(self) -> None:
        records = feature_records(generate_churn(300, seed=self.options.seed + 3, months=1), self.contract)
        known = {d["arn"] for d in self.record["deploys"]}
        deploy = self._deploy_run(known, "v2", lambda e: self._pump_during("canary_v2", e, records))
        if deploy["status"] != "SUCCEEDED":
            raise StoryError(f"deploy of v2 ended {deploy['status']}: {deploy['cause']}")
        snapshot = self._snapshot_endpoint("after v2")
        answers = self.traffic.of_phase("canary_v2") if self.traffic else []
        served = _count(a.model_version for a in answers if a.answered)
        self.fact(f"during the canary: {', '.join(f'{v} {n}' for v, n in sorted(served.items()))} answers")
        self.fact(f"deploy {deploy['name']}: {deploy['result'].get('detail', deploy['status'])}")
        self.fact(f"endpoint on {snapshot['config']} with weights {snapshot['variants']}")

    def bad_canary(self) -> None:
        assert self.platform is not None
        champion = self.record["packages"][-1]
        arn = self._register_broken_model(champion)
        known = {d["arn"] for d in self.record["deploys"]}
        version = arn.rsplit("/", 1)[-1]
        approved = registry.set_approval(
            self.platform, version, approve=True, reason="demo: release a model that is broken on purpose"
        )
        self.fact(f"v{approved.version} registered PendingManualApproval, approved by the operator CLI")
        records = feature_records(generate_churn(300, seed=self.options.seed + 4, months=1), self.contract)
        deploy = self._deploy_run(known, "v3-broken", lambda e: self._pump_during("bad_canary", e, records))
        package = self._package(arn)
        self.record["packages"].append({**package, "label": "v3-broken"})
        snapshot = self._snapshot_endpoint("after the broken canary")
        self.record["bad_canary"] = {
            "deploy_status": deploy["status"],
            "error": deploy["error"],
            "cause": deploy["cause"],
        }
        answers = self.traffic.of_phase("bad_canary") if self.traffic else []
        self.fact(f"deploy {deploy['status']} ({deploy['error']}): {deploy['cause'][:160]}")
        self.fact(
            f"v{package['version']} is {package['approval']} "
            f"({package['metadata'].get('deployment_status', '')}); endpoint back on {snapshot['config']}"
        )
        api = [a for a in answers if a.door == "api"]
        runtime = [a for a in answers if a.door == "runtime"]
        self.fact(
            f"{len(api)} API calls during the canary, {sum(a.answered for a in api)} answered, "
            f"{sum(a.fallback for a in api)} by the fallback; {sum(not a.answered for a in runtime)} of "
            f"{len(runtime)} direct sagemaker-runtime calls got the broken model's error"
        )
        self._wait_for_circuit_to_close()

    def fast_rollback(self) -> None:
        """v2 passed its canary, then slows down under load; the operator rolls back to the warm standby."""
        assert self.traffic is not None and self.platform is not None
        traffic, platform = self.traffic, self.platform
        records = feature_records(generate_churn(60, seed=self.options.seed + 7, months=1), self.contract)
        threshold_ms = self.config.monitoring.latency_p99_ms
        # Slower than the latency threshold, inside the front door's timeout: every call is answered, slowly.
        delay = (threshold_ms + 0.3 * (self.config.frontdoor.endpoint_timeout_ms - threshold_ms)) / 1000

        def timed(count: int, offset: int) -> list[float]:
            latencies = []
            for index in range(count):
                began = time.monotonic()
                traffic.predict("fast_rollback", [records[(offset + index) % len(records)]])
                latencies.append((time.monotonic() - began) * 1000)
            return latencies

        before = serving.fast_rollback_status(serving.describe_endpoint(platform), registry.list_versions(platform))
        with local_sagemaker.slow_endpoint(self.config.endpoint_name, seconds=delay, variant="primary"):
            slow = timed(12, 0)
            result = serving.rollback(platform, to_version=None, reason="p99 regression under load after the canary")
            fast = timed(12, 12)
        snapshot = self._snapshot_endpoint("after the fast rollback")
        self.record["fast_rollback"] = {
            "available_before": before.available,
            "until": before.until,
            "path": result.path,
            "from_version": result.from_version,
            "to_version": result.to_version,
            "seconds": round(result.seconds, 3),
            "within_bound": result.within_bound,
            "median_latency_ms_before": round(statistics.median(slow), 1),
            "median_latency_ms_after": round(statistics.median(fast), 1),
        }
        self.fact(f"before: fast rollback to v{before.to_version} available until {before.until}")
        self.fact(
            f"v{result.from_version} under load: median answer {statistics.median(slow):.0f} ms "
            f"(latency threshold {threshold_ms} ms)"
        )
        self.fact(
            f"mlloop rollback took the {result.path} path: v{result.from_version} -> v{result.to_version} in "
            f"{result.seconds:.2f} s (bound {FAST_ROLLBACK_BOUND_SECONDS} s); weights {snapshot['variants']}"
        )
        answered = {a.model_version for a in traffic.of_phase("fast_rollback")[12:] if a.answered}
        self.fact(
            f"after: answers from {sorted(answered)}, median {statistics.median(fast):.0f} ms, "
            f"same config {snapshot['config']}"
        )

    def _wait_for_circuit_to_close(self) -> None:
        """The broken canary's errors opened the front door's circuit; it probes the endpoint after its cooldown."""
        assert self.traffic is not None
        began = time.monotonic()
        deadline = began + self.config.frontdoor.circuit_cooldown_seconds * 3
        probe = feature_records(generate_churn(1, seed=self.options.seed + 6, months=1), self.contract)
        was_open = False
        while time.monotonic() < deadline:
            _status, health = self.traffic.get("/health")
            if health.get("circuit") == "closed":
                waited = round(time.monotonic() - began, 2)
                self.record["circuit_closed_after"] = waited
                if was_open:
                    self.fact(f"the front door's circuit breaker opened on those errors, closed again after {waited} s")
                return
            was_open = True
            if health.get("circuit") == "half_open":
                self.traffic.predict("recovery", probe)
            time.sleep(0.5)
        raise StoryError("the front door's circuit stayed open after the rollback")

    def _register_broken_model(self, champion: dict[str, Any]) -> str:
        """The champion's artifact with a predict_fn that always fails, registered as a new version."""
        s3 = self.client("s3")
        bucket, _, key = champion["model_data_url"].removeprefix("s3://").partition("/")
        original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        broken_key = f"training/runs/demo-broken-{uuid.uuid4().hex[:8]}/output/model.tar.gz"
        s3.put_object(Bucket=bucket, Key=broken_key, Body=_break_model(original))
        described = self.client("sagemaker").describe_model_package(ModelPackageName=champion["arn"])
        container = {
            k: v for k, v in described["InferenceSpecification"]["Containers"][0].items() if k != "ModelDataETag"
        }
        container["ModelDataUrl"] = f"s3://{bucket}/{broken_key}"
        metadata = {
            **champion["metadata"],
            "trigger": "manual",
            "trigger_source": "demo: a deliberately broken release",
            "parent_model_package_arn": champion["arn"],
        }
        spec = {**described["InferenceSpecification"], "Containers": [container]}
        arn: str = self.client("sagemaker").create_model_package(
            ModelPackageGroupName=self.config.model_package_group,
            ModelPackageDescription="deliberately broken: every prediction fails",
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification=spec,
            CustomerMetadataProperties=metadata,
        )["ModelPackageArn"]
        return arn

    def fallback(self) -> None:
        assert self.traffic is not None
        traffic = self.traffic
        records = feature_records(generate_churn(200, seed=self.options.seed + 5, months=1), self.contract)
        total = self.options.fallback_requests

        def call() -> None:
            for index in range(total):
                traffic.predict("fallback", [records[index % len(records)]])

        caller = threading.Thread(target=call, name="demo-caller")
        caller.start()
        # The endpoint is deleted while the caller keeps sending: a request may be in flight at that moment.
        while len(traffic.of_phase("fallback")) < total // 3 and caller.is_alive():
            time.sleep(0.01)
        self.record["endpoint_kill_issued_at"] = self.clock()
        self.client("sagemaker").delete_endpoint(EndpointName=self.config.endpoint_name)
        self.record["endpoint_killed_at"] = self.clock()
        caller.join(timeout=600)
        # The breaker opens on the failure rate over its window (circuit_window_seconds), which still holds the
        # successful calls of the minute before the kill: the caller keeps sending until enough failures tip it.
        extra = 0
        status, health = self.traffic.get("/health")
        while health.get("circuit") == "closed" and extra < total * 5:
            traffic.predict("fallback", [records[extra % len(records)]])
            extra += 1
            status, health = self.traffic.get("/health")
        self.record["health_after_kill"] = {"status": status, "answer": health, "requests_until_open": extra}
        breaker = self.config.frontdoor
        self.fact(
            f"circuit {health.get('circuit')} after {extra} more requests: the failure rate over the "
            f"{breaker.circuit_window_seconds} s window passed {breaker.circuit_failure_rate_percent} %"
        )
        answers = self.traffic.of_phase("fallback")
        after = [a for a in answers if a.at >= self.record["endpoint_kill_issued_at"]]
        before = len(answers) - len(after)
        self.fact(f"endpoint deleted while the caller was sending: after {before} of {total} requests")
        self.fact(
            f"{sum(a.answered for a in answers)}/{len(answers)} answered; from the kill on "
            f"{sum(a.fallback for a in after)}/{len(after)} by the fallback "
            f"({', '.join(sorted({a.fallback_reason for a in after if a.fallback}))})"
        )
        self.fact(f"/health: {health.get('status', health)}")

    # ------------------------------------------------------------------ closing
    def _save_plots(self) -> list[str]:
        """The evaluation plots the last promoted model's training job wrote into its model.tar.gz."""
        promoted = [p for p in self.record["packages"] if p["label"] in ("v1", "v2")]
        if not promoted:
            return []
        bucket, _, key = promoted[-1]["model_data_url"].removeprefix("s3://").partition("/")
        archive = self.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        saved = []
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix("./")
                extracted = tar.extractfile(member) if member.isfile() else None
                if name.startswith("plots/") and name.endswith(".svg") and extracted is not None:
                    target = f"{promoted[-1]['label']}-{name.rsplit('/', 1)[-1]}"
                    (self.output_dir / target).write_bytes(extracted.read())
                    saved.append(target)
        return saved

    def collect(self) -> None:
        """What the cloud says at the end: every package, alarm history and every request's answer."""
        if self.cloud is None:
            return
        sm = self.client("sagemaker")
        summaries = sm.list_model_packages(ModelPackageGroupName=self.config.model_package_group, MaxResults=100)
        self.record["registry"] = [
            self._package(s["ModelPackageArn"]) for s in summaries.get("ModelPackageSummaryList", [])
        ]
        cw = self.client("cloudwatch")
        self.record["alarms_at_end"] = self._alarm_states()
        for name in self.record["alarms_at_end"]:
            items = cw.describe_alarm_history(
                AlarmName=name,
                AlarmTypes=["CompositeAlarm", "MetricAlarm"],
                HistoryItemType="StateUpdate",
                MaxRecords=100,
            )
            self.record["alarm_history"][name] = [
                {"at": self.started_seconds(i["Timestamp"]), "summary": i["HistorySummary"]}
                for i in sorted(items.get("AlarmHistoryItems", []), key=lambda i: i["Timestamp"])
            ]
        self.record["plots"] = self._save_plots()
        if self.traffic is not None:
            self.record["answers"] = [a.to_dict() for a in self.traffic.answers]
        self.record["delivery_failures"] = [str(f) for f in self.cloud.delivery_failures]


def _config_version(config_name: str) -> str:
    """The model version in an endpoint config's name (<endpoint>-v<N>-<suffix>), as the deploy function names it."""
    version = [part for part in config_name.split("-") if part[:1] == "v" and part[1:].isdigit()]
    return version[-1] if version else config_name


def _count(values: Any) -> dict[str, int]:
    return dict(Counter(str(value) for value in values))


def _timeline_entry(event: dict[str, Any]) -> dict[str, Any]:
    detail = event.get("detail", {})
    kind = event.get("detail-type", "")
    if kind == "CloudWatch Alarm State Change":
        before, after = detail.get("previousState", {}).get("value"), detail.get("state", {}).get("value")
        what = f"{detail.get('alarmName')}: {before} -> {after}"
    elif kind == "SageMaker Model Package State Change":
        what = f"package v{detail.get('ModelPackageVersion')}: {detail.get('ModelApprovalStatus')}"
    elif kind == "SageMaker Endpoint Deployment State Change":
        pending = detail.get("PendingDeploymentSummary") or {}
        green = ", ".join(
            f"{v.get('VariantName')} weight {v.get('CurrentWeight')}" for v in pending.get("ProductionVariants", [])
        )
        what = f"{detail.get('EndpointName')} on {detail.get('EndpointConfigName')}" + (
            f", deploying {pending.get('EndpointConfigName')} ({green})" if pending else ""
        )
    else:
        name = detail.get("EndpointName") or detail.get("TrainingJobName", "")
        what = f"{name}: {detail.get('EndpointStatus') or detail.get('TrainingJobStatus', '')}"
    return {
        "time": event.get("time", ""),
        "source": event.get("source", ""),
        "type": kind,
        "what": what,
        "detail": detail,
    }


def _break_model(model_tar_gz: bytes) -> bytes:
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(model_tar_gz), mode="r:gz") as source,
        tarfile.open(fileobj=out, mode="w:gz") as target,
    ):
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name.lstrip("./") == "code/inference.py" and data is not None:
                data += BROKEN_PREDICT.encode()
                member.size = len(data)
            target.addfile(member, io.BytesIO(data) if data is not None else None)
    return out.getvalue()
