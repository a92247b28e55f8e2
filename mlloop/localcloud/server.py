"""LocalCloud: moto's server on 127.0.0.1 in this process, plus the behaviours moto lacks.

    with LocalCloud.start() as cloud:
        s3 = cloud.client("s3")
        deployment = cloud.deploy("dev")

boto3, the AWS CLI and any HTTP client reach it at `cloud.endpoint_url`. Lambda functions run in their own
execution environments (lambdas.py, execution/), EventBridge delivers to every target kind (events.py), Step
Functions executes definitions with scaled waits (stepfunctions.py); the SageMaker and CloudWatch emulations plug
in through `install(cloud)` / `uninstall()` when their modules exist.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from botocore.config import Config
from moto.core.config import default_user_config

from mlloop.localcloud import authz, request_validation
from mlloop.localcloud.apigateway import LocalApiGateway
from mlloop.localcloud.clock import Clock
from mlloop.localcloud.deployer import Deployment, deploy_stage, stage_prefix
from mlloop.localcloud.dispatch import AsyncDispatcher, DeliveryFailure
from mlloop.localcloud.environment import drop_added_variables
from mlloop.localcloud.events import EventRouter, ScheduleSource
from mlloop.localcloud.lambdas import LambdaRuntime
from mlloop.localcloud.stepfunctions import ExecutionOutputs, StepFunctionsClock

LOG = logging.getLogger("mlloop.localcloud")
ACCOUNT_ID = "123456789012"
DEFAULT_TIME_SCALE = 0.01
# Emulations owned by their own modules; each exposes install(cloud) and uninstall().
_PLUGIN_MODULES = (
    "mlloop.localcloud.sagemaker",
    "mlloop.localcloud.cloudwatch",
    "mlloop.localcloud.account_quotas",
    "mlloop.localcloud.s3_conditional_writes",
)
_process_lock = threading.Lock()


def time_scale_from_env() -> float:
    """LOCALCLOUD_TIME_SCALE: how long a local second is compared with an AWS second (default 0.01)."""
    raw = os.environ.get("LOCALCLOUD_TIME_SCALE", "")
    try:
        value = float(raw) if raw else DEFAULT_TIME_SCALE
    except ValueError as exc:
        raise ValueError(f"LOCALCLOUD_TIME_SCALE: {raw!r} is not a number (allowed: 0 to 1)") from exc
    if not 0 <= value <= 1:
        raise ValueError(f"LOCALCLOUD_TIME_SCALE: {value} is out of range (allowed: 0 to 1)")
    return value


def _names(deployment: Deployment, name: str) -> bool:
    try:
        deployment.resource(name)
    except KeyError:
        return False
    return True


class LocalCloud:
    """One embedded AWS per process (moto's backends are process-wide).

    `start()` while a cloud runs in this process joins it: each `start()` is matched by a `stop()`,
    and the last `stop()` shuts it down. Test modules and the session fixture thus share one cloud.
    """

    _current: LocalCloud | None = None
    _users = 0

    account_id = ACCOUNT_ID

    def __init__(self, *, region: str = "us-east-1", time_scale: float | None = None, port: int = 0) -> None:
        self.region = region
        self._requested_port = port
        self.time_scale = time_scale_from_env() if time_scale is None else time_scale
        # The one clock every timed behaviour follows (clock.py): scaled real time until take_control().
        self.clock = Clock(self.time_scale)
        self.clock.settle = self.wait_idle
        self._schedules: ScheduleSource | None = None
        self._server: authz.AuthorizingMotoServer | None = None
        self.endpoint_url = ""
        self.port = 0
        self._session: boto3.Session | None = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self._deploy_lock = threading.Lock()
        self.dispatcher: AsyncDispatcher | None = None
        self.lambdas: LambdaRuntime | None = None
        self.events: EventRouter | None = None
        self._waits: StepFunctionsClock | None = None
        self._outputs: ExecutionOutputs | None = None
        self._plugins: list[ModuleType] = []
        self._api_gateway: LocalApiGateway | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_log_levels: dict[str, int] = {}
        self._saved_config: dict[str, Any] = {}
        self.deployments: dict[str, Deployment] = {}

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def start(cls, *, region: str = "us-east-1", time_scale: float | None = None, port: int = 0) -> LocalCloud:
        """Start (or join) the process's cloud; `port` 0 picks a free port on 127.0.0.1."""
        with _process_lock:
            current = LocalCloud._current
            if current is not None:
                if current.region != region or (time_scale is not None and time_scale != current.time_scale):
                    raise RuntimeError(
                        f"a LocalCloud ({current.region}, time scale {current.time_scale}) already runs in this "
                        "process; moto's state is process-wide, so one cloud serves every caller"
                    )
                LocalCloud._users += 1
                return current
            cloud = cls(region=region, time_scale=time_scale, port=port)
            cloud._start()
            LocalCloud._current, LocalCloud._users = cloud, 1
            return cloud

    def __enter__(self) -> LocalCloud:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        try:
            # One access-log line per request would drown the handlers' own output; the interpreter logs every
            # caught task failure (Catch, Fail states) as an error, while the execution history already holds it.
            for name, level in (("werkzeug", logging.ERROR), ("moto.stepfunctions.parser", logging.CRITICAL)):
                logger = logging.getLogger(name)
                self._saved_log_levels[name] = logger.level
                logger.setLevel(level)
            # AWS's request validation (service-model constraints) in front of every operation.
            request_validation.install()
            # IAM, resource policies and SigV4 are enforced in front of moto (authz/).
            self._server = authz.AuthorizingMotoServer(
                account_id=self.account_id, ip_address="127.0.0.1", port=self._requested_port
            )
            self._server.start()
            authz.install(self.region)
            host, self.port = self._server.get_host_and_port()
            self.endpoint_url = f"http://{host}:{self.port}"
            # moto's Step Functions interpreter sends its SDK calls to localhost:$MOTO_PORT.
            self._set_env({"MOTO_PORT": str(self.port)})
            self._saved_config = json.loads(json.dumps(default_user_config))
            self._post("/moto-api/reset", {})
            self._post("/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
            self.dispatcher = AsyncDispatcher()
            self.lambdas = LambdaRuntime(
                endpoint_url=self.endpoint_url,
                region=self.region,
                dispatcher=self.dispatcher,
                put_metric_data=self._put_metric_data,
            )
            self.lambdas.install()
            self.events = EventRouter(self.lambdas, account_id=self.account_id, region=self.region, clock=self.clock)
            self.events.install()
            self._schedules = ScheduleSource(self.events)
            self.clock.add_source(self._schedules)
            self._waits = StepFunctionsClock(self.clock)
            self._waits.install()
            self._outputs = ExecutionOutputs()
            self._outputs.install()
            self._install_plugins()
        except BaseException:
            self._shutdown()
            raise

    def _install_plugins(self) -> None:
        for name in _PLUGIN_MODULES:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name != name:
                    raise
                LOG.info("local cloud: %s is not available yet; starting without it", name)
                continue
            module.install(self)
            self._plugins.append(module)

    def _stop_running_executions(self) -> None:
        """StopExecution on every running execution, as deleting the state machines would: moto's interpreter
        threads would otherwise outlive the cloud (a retraining the last alarm started, a Wait state)."""
        sfn = self.client("stepfunctions")
        try:
            for page in sfn.get_paginator("list_state_machines").paginate():
                for machine in page["stateMachines"]:
                    running = sfn.get_paginator("list_executions").paginate(
                        stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING"
                    )
                    for listing in running:
                        for execution in listing["executions"]:
                            sfn.stop_execution(
                                executionArn=execution["executionArn"], cause="the local cloud is stopping"
                            )
        except Exception as exc:  # stopping must go on whatever state the account is in
            LOG.warning("local cloud: running executions not stopped: %r", exc)

    def stop(self) -> None:
        """Release this user's hold; the last one stops plugins, patches, the dispatcher thread and the port."""
        with _process_lock:
            if LocalCloud._current is self:
                LocalCloud._users -= 1
                if LocalCloud._users > 0:
                    return
                LocalCloud._current = None
            self._shutdown()

    def _shutdown(self) -> None:
        self.clock.stop_background()
        if self._schedules is not None:
            self.clock.remove_source(self._schedules)
            self._schedules = None
        if self._server is not None and self._server._server is not None:
            self._stop_running_executions()
        # Waits still pending (a bake, a Wait state) finish on scaled time instead of blocking forever.
        self.clock.release()
        if self.dispatcher is not None:
            self.dispatcher.wait_idle(timeout=30)
        for module in reversed(self._plugins):
            try:
                module.uninstall()
            except Exception as exc:
                LOG.warning("local cloud: %s.uninstall failed: %r", module.__name__, exc)
        self._plugins = []
        if self._api_gateway is not None:
            self._api_gateway.stop()
            self._api_gateway = None
        if self._server is not None and self._server._server is not None:
            self._post("/moto-api/reset", {})
        authz.uninstall()
        for patch in (self._outputs, self._waits, self.events, self.lambdas):
            if patch is not None:
                patch.uninstall()
        if self.dispatcher is not None:
            self.dispatcher.stop()
            self.dispatcher = None
        if self._server is not None:
            if self._server._server is not None:
                self._server.stop()
                self._server._server.server_close()
            self._server = None
        request_validation.uninstall()
        config: dict[str, Any] = default_user_config  # type: ignore[assignment]
        config.clear()
        config.update(self._saved_config or {"stepfunctions": {"execute_state_machine": False}})
        drop_added_variables()
        self._restore_env()
        for name, level in self._saved_log_levels.items():
            logging.getLogger(name).setLevel(level)
        self._saved_log_levels = {}
        self._clients.clear()
        self._session = None
        self.deployments.clear()
        self.endpoint_url = ""

    @property
    def running(self) -> bool:
        return self._server is not None

    def _set_env(self, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _restore_env(self) -> None:
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env = {}

    def _post(self, path: str, body: Mapping[str, Any]) -> None:
        request = urllib.request.Request(
            self.endpoint_url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    # ------------------------------------------------------------------ clients
    @property
    def session(self) -> boto3.Session:
        if self._session is None:
            self._session = boto3.Session(
                aws_access_key_id="localcloud",
                aws_secret_access_key="localcloud",
                region_name=self.region,
            )
        return self._session

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client pointed at the local cloud (cached: creating one costs about 100 ms)."""
        key = (service, region or self.region)
        with self._clients_lock:
            if key not in self._clients:
                self._clients[key] = self.session.client(
                    service,
                    region_name=key[1],
                    endpoint_url=self.endpoint_url,
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}),
                )
            return self._clients[key]

    def client_environment(self) -> dict[str, str]:
        """Environment variables that point boto3 and the AWS CLI at this cloud."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "localcloud",
            "AWS_SECRET_ACCESS_KEY": "localcloud",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def _put_metric_data(self, namespace: str, data: list[dict[str, Any]]) -> None:
        client = self.client("cloudwatch")
        for start in range(0, len(data), 500):
            client.put_metric_data(Namespace=namespace, MetricData=data[start : start + 500])

    # ------------------------------------------------------------------ deploy
    def deploy(self, stage: str, *, cdk_out: Path | None = None, synthesize: bool = True) -> Deployment:
        """Deploy every synthesized stack of `stage` (from cdk.out) into this cloud.

        A stage (of the same project) already deployed here is returned as it is, unless its resources vanished
        (something reset moto's state, e.g. a `mock_aws` in the same process): then it is deployed again.
        """
        # Keyed by the stacks' prefix (`<project>-<stage>`): an assembly of another project may hold the same stage.
        key = stage_prefix(stage)
        with self._deploy_lock:
            existing = self.deployments.get(key)
            if existing is not None and self._is_intact(existing):
                return existing
            deployment = deploy_stage(self, stage, cdk_out=cdk_out, synthesize=synthesize)
            self.deployments[key] = deployment
            return deployment

    def _is_intact(self, deployment: Deployment) -> bool:
        buckets = {r.physical_id for r in deployment.of_type("AWS::S3::Bucket")}
        functions = {r.physical_id for r in deployment.of_type("AWS::Lambda::Function")}
        existing_buckets = {b["Name"] for b in self.client("s3").list_buckets().get("Buckets", [])}
        lambda_client = self.client("lambda", deployment.region)
        existing_functions = {
            f["FunctionName"]
            for page in lambda_client.get_paginator("list_functions").paginate()
            for f in page["Functions"]
        }
        return buckets <= existing_buckets and bool(functions & existing_functions or not functions)

    def api_url(self, rest_api_id: str, stage: str) -> str:
        """Base URL of a deployed REST API stage, served over HTTP by the local API Gateway."""
        if self._api_gateway is None:
            self._api_gateway = LocalApiGateway(self)
        return self._api_gateway.url(rest_api_id, stage)

    # ------------------------------------------------------------------ events
    def put_events(self, entries: Iterable[Mapping[str, Any]], *, wait: bool = True) -> list[dict[str, Any]]:
        """PutEvents on the default bus; with `wait`, returns after asynchronous Lambda deliveries finished."""
        assert self.events is not None and self.dispatcher is not None
        results = self.events.put_events(entries)
        if wait:
            self.wait_idle()
        return results

    def emit_event(
        self, source: str, detail_type: str, detail: Mapping[str, Any], resources: Iterable[str] = ()
    ) -> None:
        """An AWS service's event (SageMaker, CloudWatch ...) delivered to matching rules like PutEvents."""
        assert self.events is not None
        self.events.emit_event(source, detail_type, detail, resources)

    def fire_schedule(self, rule_name: str, *, wait: bool = True) -> dict[str, Any]:
        """Fire a schedule rule now, whatever its schedule; returns the event sent."""
        assert self.events is not None
        try:
            event = self.events.fire_schedule(rule_name)
        except KeyError:
            # Not a rule name: a logical id or construct path of a deployed stage names it too.
            names = [d.physical_id(rule_name) for d in self.deployments.values() if _names(d, rule_name)]
            if len(names) != 1:
                raise
            event = self.events.fire_schedule(names[0])
        if wait:
            self.wait_idle()
        return event

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Wait until every asynchronous delivery (and what it triggered asynchronously) has finished."""
        assert self.dispatcher is not None
        if not self.dispatcher.wait_idle(timeout):
            raise TimeoutError(f"asynchronous deliveries still running after {timeout} s")

    @property
    def delivery_failures(self) -> list[DeliveryFailure]:
        """Asynchronous deliveries that failed (after Lambda's retries), oldest first."""
        assert self.dispatcher is not None
        return list(self.dispatcher.failures)

    def evaluate_alarms(self, alarm_names: list[str] | None = None) -> Any:
        """Evaluate CloudWatch alarms now (provided by the CloudWatch emulation)."""
        for module in self._plugins:
            if module.__name__.endswith(".cloudwatch"):
                return module.evaluate_alarms(self, alarm_names)
        raise RuntimeError("the CloudWatch emulation (mlloop.localcloud.cloudwatch) is not installed")

    def wait_for_execution(self, execution_arn: str, timeout: float = 120.0) -> dict[str, Any]:
        """Poll a Step Functions execution until it leaves RUNNING; returns describe_execution's answer."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            if time.monotonic() > deadline:
                raise TimeoutError(f"execution {execution_arn} still RUNNING after {timeout} s")
            time.sleep(0.05)
