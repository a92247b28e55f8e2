"""Lambda invocations: moto stores functions, this module runs them in their own execution environments.

Every invocation (boto3 `invoke`, Step Functions tasks, EventBridge/SNS/S3 deliveries) reaches the patched
`LambdaFunction.invoke` / `_invoke_lambda`, which runs it in an execution environment of the function
(`mlloop.localcloud.execution.lambda_environments`: a worker process with the function's code asset, its layers and
the runtime's packages, its own environment variables and role credentials). Errors come back the way Lambda returns
them (FunctionError plus {"errorType", "errorMessage", "stackTrace"}), so Step Functions Retry/Catch match on the
error type. A synchronous call past the function's reserved concurrency is answered 429 TooManyRequestsException;
asynchronous ones wait and retry, as Lambda's event queue does. Powertools EMF lines printed by a handler become
`put_metric_data` calls, and the output lands in the function's log group.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moto.awslambda import models as lambda_models
from moto.awslambda.models import LambdaFunction
from moto.awslambda.utils import get_backend as get_lambda_backend
from moto.core.exceptions import JsonRESTError

from mlloop.localcloud import aws_state
from mlloop.localcloud.authz import authorise_role
from mlloop.localcloud.authz.gateway import Refusal
from mlloop.localcloud.dispatch import AsyncDispatcher
from mlloop.localcloud.execution import envs
from mlloop.localcloud.execution.lambda_environments import FunctionSpec, LambdaEnvironments, Outcome, ThrottledError
from mlloop.localcloud.identity import role_credentials

LOG = logging.getLogger("mlloop.localcloud")
# Lambda keeps throttled asynchronous events and retries them for up to 6 hours (Lambda Developer Guide,
# "How Lambda handles errors and retries with asynchronous invocation"); locally an event waits this long.
THROTTLED_EVENT_WAIT_SECONDS = 120.0


class TooManyRequestsError(JsonRESTError):
    """Lambda's answer to a synchronous invocation past the function's reserved concurrency (Invoke API reference:
    TooManyRequestsException, HTTP 429, Reason ReservedFunctionConcurrentInvocationLimitExceeded)."""

    code = 429

    def __init__(self, function_name: str) -> None:
        super().__init__("TooManyRequestsException", "Rate Exceeded.")
        self.description = json.dumps(
            {
                "__type": "TooManyRequestsException",
                "Type": "User",
                "message": "Rate Exceeded.",
                "Reason": "ReservedFunctionConcurrentInvocationLimitExceeded",
            }
        )
        self.function_name = function_name


def emf_to_metric_data(line: str, *, clock_offset: float = 0.0) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, MetricData) pairs for one CloudWatch Embedded Metric Format line; [] for other lines.

    The worker stamps the line with the host's time; `clock_offset` (the cloud's clock minus the host's, in
    seconds) moves it onto the cloud's clock."""
    if not line.startswith("{") or '"_aws"' not in line:
        return []
    try:
        blob = json.loads(line)
        directives = blob["_aws"]["CloudWatchMetrics"]
        timestamp = blob["_aws"].get("Timestamp", time.time() * 1000) / 1000.0 + clock_offset
    except (ValueError, KeyError, TypeError):
        return []
    result: list[tuple[str, list[dict[str, Any]]]] = []
    for directive in directives:
        data: list[dict[str, Any]] = []
        for dimension_names in directive.get("Dimensions") or [[]]:
            dimensions = [{"Name": name, "Value": str(blob[name])} for name in dimension_names if name in blob]
            for metric in directive.get("Metrics", []):
                value = blob.get(metric["Name"])
                if value is None:
                    continue
                datum: dict[str, Any] = {
                    "MetricName": metric["Name"],
                    "Dimensions": dimensions,
                    "Timestamp": timestamp,
                    "Unit": metric.get("Unit", "None"),
                }
                if isinstance(value, list):
                    datum["Values"] = [float(v) for v in value]
                else:
                    datum["Value"] = float(value)
                data.append(datum)
        if data:
            result.append((directive["Namespace"], data))
    return result


class LambdaRuntime:
    """Runs deployed functions in their execution environments; one per running local cloud."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        dispatcher: AsyncDispatcher,
        put_metric_data: Callable[[str, list[dict[str, Any]]], None],
    ) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self.dispatcher = dispatcher
        self._put_metric_data = put_metric_data
        self.environments = LambdaEnvironments()
        self._code_roots: dict[str, Path] = {}
        self._layers: dict[str, list[str]] = {}
        self._failure_destinations: dict[str, str] = {}
        self._retry_attempts: dict[str, int] = {}
        self._log_groups: dict[str, str] = {}
        self._originals: dict[str, Any] = {}

    def register_function(self, function_name: str, *, code_root: Path, layers: list[str]) -> list[str]:
        """Where the function's code asset is unpacked and which layers it has; returns the layers no package set
        emulates (their imports fail, as a missing layer's would)."""
        self._code_roots[function_name] = code_root
        self._layers[function_name] = list(layers)
        return [layer for layer in layers if envs.layer_set(layer) is None]

    def register_failure_destination(self, function: str, target_arn: str) -> None:
        """Where a failed asynchronous invocation goes (dead-letter queue/topic or on-failure destination)."""
        self._failure_destinations[_function_name(function)] = target_arn

    def register_log_group(self, function: str, log_group: str) -> None:
        """The function's LoggingConfig log group (moto ignores it and always uses /aws/lambda/<name>)."""
        self._log_groups[_function_name(function)] = log_group

    def log_group(self, function: LambdaFunction) -> str:
        return self._log_groups.get(function.function_name, function.logs_group_name)

    def register_retry_attempts(self, function: str, attempts: int) -> None:
        self._retry_attempts[_function_name(function)] = attempts

    def install(self) -> None:
        runtime = self

        def _invoke_lambda(function: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
            result: tuple[str, bool, str] = runtime._when_not_throttled(
                function, lambda: runtime.invoke(function, event)
            )
            return result

        def invoke(function: LambdaFunction, body: str, request_headers: Any, response_headers: Any) -> str | bytes:
            headers = {str(k).lower(): v for k, v in dict(request_headers or {}).items()}
            if headers.get("x-amz-invocation-type") == "Event":
                runtime.invoke_async(function, body or "{}")
                return b""
            try:
                payload, errored, logs = runtime.invoke(function, body or "{}")
            except ThrottledError as exc:
                raise TooManyRequestsError(function.function_name) from exc
            if errored:
                response_headers["x-amz-function-error"] = "Unhandled"
            response_headers["x-amz-log-result"] = base64.b64encode(logs[-4096:].encode()).decode()
            return payload.encode("utf-8")

        def send_sns_message(
            backend: Any, function_name: str, message: str, subject: str | None = None, qualifier: str | None = None
        ) -> None:
            original = runtime._originals["send_sns_message"]
            runtime.dispatcher.submit(
                f"SNS -> lambda {function_name}",
                lambda: runtime._when_not_throttled(
                    function_name, lambda: original(backend, function_name, message, subject, qualifier)
                ),
            )

        self._originals = {
            "_invoke_lambda": LambdaFunction._invoke_lambda,
            "invoke": LambdaFunction.invoke,
            "send_sns_message": lambda_models.LambdaBackend.send_sns_message,
        }
        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign,assignment]
        LambdaFunction.invoke = invoke  # type: ignore[method-assign,assignment]
        lambda_models.LambdaBackend.send_sns_message = send_sns_message  # type: ignore[method-assign,assignment]
        self._patch_s3_direct_notifications()

    def _patch_s3_direct_notifications(self) -> None:
        from moto.s3 import notifications

        original = notifications._invoke_awslambda
        self._originals["s3_invoke_awslambda"] = original

        def _invoke_awslambda(account_id: str, event_body: Any, fn_arn: str, region_name: str) -> None:
            self.dispatcher.submit(
                f"S3 -> lambda {fn_arn}",
                lambda: self._when_not_throttled(fn_arn, lambda: original(account_id, event_body, fn_arn, region_name)),
            )

        notifications._invoke_awslambda = _invoke_awslambda

    def uninstall(self) -> None:
        if not self._originals:
            return
        from moto.s3 import notifications

        LambdaFunction._invoke_lambda = self._originals["_invoke_lambda"]  # type: ignore[method-assign]
        LambdaFunction.invoke = self._originals["invoke"]  # type: ignore[method-assign]
        lambda_models.LambdaBackend.send_sns_message = self._originals["send_sns_message"]  # type: ignore[method-assign]
        notifications._invoke_awslambda = self._originals["s3_invoke_awslambda"]
        self._originals = {}
        self.environments.stop()

    @staticmethod
    def _when_not_throttled(function: Any, call: Callable[[], Any]) -> Any:
        """Run an asynchronous delivery, waiting while the function is throttled as Lambda's event queue does."""
        deadline = time.monotonic() + THROTTLED_EVENT_WAIT_SECONDS
        pause = 0.05
        while True:
            try:
                return call()
            except (ThrottledError, TooManyRequestsError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def invoke_async(self, function: LambdaFunction, event: Any) -> None:
        """Queue an asynchronous invocation, retried like Lambda's (2 retries unless the function's
        EventInvokeConfig says otherwise); the final failure goes to the failure destination and is
        recorded in the dispatcher's failures."""

        def run() -> None:
            attempts = 1 + self._retry_attempts.get(function.function_name, 2)
            for _ in range(attempts):
                payload, errored, _ = self._when_not_throttled(function, lambda: self.invoke(function, event))
                if not errored:
                    return
            failed = f"{function.function_name} failed {attempts} time(s): {payload}"
            destination = self._failure_destinations.get(function.function_name)
            if destination:
                try:
                    self._send_failure(function, destination, event, payload)
                except Refusal as refusal:
                    raise RuntimeError(f"{failed}; its failure destination was refused: {refusal}") from refusal
            raise RuntimeError(failed)

        self.dispatcher.submit(f"async invoke {function.function_name}", run)

    def _send_failure(self, function: LambdaFunction, destination: str, event: Any, payload: str) -> None:
        record = {
            "requestContext": {"functionArn": function.function_arn, "condition": "RetriesExhausted"},
            "requestPayload": _decoded(event),
            "responsePayload": json.loads(payload),
        }
        parts = destination.split(":")
        service, region, account = parts[2], parts[3], parts[4]
        # Lambda sends to a dead-letter queue or on-failure destination with the function's execution role (Lambda
        # Developer Guide, "Dead-letter queues"; SAM's DeadLetterQueue adds sqs:SendMessage or sns:Publish to it).
        action = {"sqs": "sqs:SendMessage", "sns": "sns:Publish"}.get(service)
        if action:
            authorise_role(function.role, action, destination, session=function.function_name)
        if service == "sqs":
            from moto.sqs.models import sqs_backends

            sqs_backends[account][region].send_message(queue_name=parts[5], message_body=json.dumps(record))
        elif service == "sns":
            from moto.sns.models import sns_backends

            sns_backends[account][region].publish(arn=destination, message=json.dumps(record))

    def invoke_by_arn(self, function_arn: str, event: Any, *, account_id: str) -> None:
        """Asynchronous invocation of a function by name or ARN, as EventBridge targets do."""
        parts = function_arn.split(":")
        region = parts[3] if len(parts) > 3 else self.region
        function = get_lambda_backend(account_id, region).get_function(function_arn)
        self.invoke_async(function, event)

    def invoke(self, function: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        """Run one invocation in an execution environment: (JSON payload, whether it failed, the log lines).

        Raises ThrottledError when the function's reserved concurrency is in use."""
        payload = event if isinstance(event, bytes) else (event if isinstance(event, str) else json.dumps(event))
        outcome = self.environments.invoke(
            self.spec(function), payload.encode() if isinstance(payload, str) else payload
        )
        self._publish_output(function, outcome)
        return outcome.payload.decode("utf-8", errors="replace"), outcome.function_error is not None, outcome.logs

    def spec(self, function: LambdaFunction) -> FunctionSpec:
        """The execution environment `function` gets, from its deployed configuration."""
        name = function.function_name
        code_root = self._code_roots.get(name)
        if code_root is None:
            raise RuntimeError(f"function {name} was not deployed through the local cloud's deployer: no code asset")
        runtime_dir = envs.runtime_set().build()
        layer_dirs = [
            package_set.build() for layer in self._layers.get(name, []) if (package_set := envs.layer_set(layer))
        ]
        credentials = role_credentials(function.role, name, region=function.region)
        tracing_active = (function.tracing_config or {}).get("Mode") == "Active"
        environment = {
            **{k: str(v) for k, v in (function.environment_vars or {}).items()},
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(code_root),
            "LAMBDA_RUNTIME_DIR": str(runtime_dir),
            "AWS_REGION": function.region,
            "AWS_DEFAULT_REGION": function.region,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.run_time}",
            "AWS_LAMBDA_FUNCTION_NAME": name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": self.log_group(function),
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "_HANDLER": function.handler or "",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "AWS_ENDPOINT_URL": self.endpoint_url,
            **credentials.environment(),
        }
        if tracing_active:
            host, port = self.environments.xray.address.split(":")
            environment |= {
                "AWS_XRAY_DAEMON_ADDRESS": self.environments.xray.address,
                "_AWS_XRAY_DAEMON_ADDRESS": host,
                "_AWS_XRAY_DAEMON_PORT": port,
            }
        reserved = function.reserved_concurrency
        import_path = (code_root, *reversed(layer_dirs), runtime_dir)
        revision = hashlib.sha256(
            json.dumps(
                [
                    function.code_sha_256,
                    function.handler,
                    function.memory_size,
                    function.timeout,
                    sorted(environment.items()),
                    [str(p) for p in import_path],
                ],
                default=str,
            ).encode()
        ).hexdigest()
        return FunctionSpec(
            name=name,
            arn=function.function_arn,
            handler=function.handler or "",
            code_root=code_root,
            import_path=import_path,
            environment=environment,
            memory_mb=int(function.memory_size or 128),
            timeout_seconds=float(function.timeout or 3),
            reserved_concurrency=None if reserved in (None, "") else int(reserved),
            tracing_active=tracing_active,
            log_group=self.log_group(function),
            revision=revision,
        )

    def _publish_output(self, function: LambdaFunction, outcome: Outcome) -> None:
        echoed: list[str] = []
        for line in outcome.logs.splitlines():
            metric_data = emf_to_metric_data(line, clock_offset=aws_state.clock_offset())
            if not metric_data:
                echoed.append(line)
            for namespace, data in metric_data:
                try:
                    self._put_metric_data(namespace, data)
                except Exception as exc:
                    LOG.warning("could not publish EMF metrics of %s: %r", function.function_name, exc)
        handler_lines = [line for line in echoed if not line.startswith(("START ", "END ", "REPORT "))]
        if handler_lines:
            sys.stdout.write("\n".join(handler_lines) + "\n")
        log_group = self.log_group(function)
        try:
            backend = function.logs_backend
            backend.ensure_log_group(log_group)
            with contextlib.suppress(Exception):
                backend.create_log_stream(log_group, outcome.log_stream)
            now = int(aws_state.utcnow().timestamp() * 1000)
            backend.put_log_events(
                log_group,
                outcome.log_stream,
                [{"timestamp": now, "message": line} for line in outcome.logs.splitlines() if line],
            )
        except Exception as exc:
            LOG.debug("could not store logs of %s: %r", function.function_name, exc)


def _decoded(event: Any) -> Any:
    if isinstance(event, (str, bytes)):
        with contextlib.suppress(ValueError):
            return json.loads(event)
    return event


def _function_name(function: str) -> str:
    return function.split(":")[6] if function.startswith("arn:") else function
