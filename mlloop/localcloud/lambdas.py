"""Lambda code runs in-process: moto stores functions, this module runs their real handlers.

Every invocation (boto3 `invoke`, Step Functions tasks, EventBridge/SNS/S3 deliveries) reaches
`LambdaFunction._invoke_lambda`, which is patched to import the handler from the function's code root
and call it with the function's template environment. Environment variables and `sys.modules` are
process-wide, so invocations are serialised under one lock and each function keeps its own module
instances: Powertools objects created at import time see that function's POWERTOOLS_* settings.
Errors come back the way Lambda returns them (FunctionError plus {"errorType", "errorMessage"}), so
Step Functions Retry/Catch match on the exception's class name. Powertools EMF lines printed by a
handler become `put_metric_data` calls, and the output lands in the function's log group.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import importlib
import io
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from moto.awslambda import models as lambda_models
from moto.awslambda.models import LambdaFunction
from moto.awslambda.utils import get_backend as get_lambda_backend

from mlloop.localcloud.dispatch import AsyncDispatcher
from mlloop.localcloud.environment import overlay_environ
from mlloop.localcloud.identity import role_credentials
from mlloop.localcloud.stdout import captured_stdout, release_stdout

LOG = logging.getLogger("mlloop.localcloud")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    log_group_name: str
    log_stream_name: str
    timeout_seconds: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


@dataclass
class _LoadedFunction:
    handler: Callable[[Any, Any], Any]
    modules: dict[str, ModuleType]


def emf_to_metric_data(line: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """(namespace, MetricData) pairs for one CloudWatch Embedded Metric Format line; [] for other lines."""
    if not line.startswith("{") or '"_aws"' not in line:
        return []
    try:
        blob = json.loads(line)
        directives = blob["_aws"]["CloudWatchMetrics"]
        timestamp = blob["_aws"].get("Timestamp", time.time() * 1000) / 1000.0
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


class FairLock:
    """A lock granted in request order: a burst of queued asynchronous invocations cannot starve a
    synchronous caller (a Step Functions task, an API request) the way threading.Lock may."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._waiting: collections.deque[object] = collections.deque()
        self._held = False

    def acquire(self, timeout: float) -> bool:
        ticket = object()
        with self._condition:
            self._waiting.append(ticket)
            granted = self._condition.wait_for(lambda: not self._held and self._waiting[0] is ticket, timeout)
            if not granted:
                self._waiting.remove(ticket)
                self._condition.notify_all()
                return False
            self._waiting.popleft()
            self._held = True
            return True

    def release(self) -> None:
        with self._condition:
            self._held = False
            self._condition.notify_all()


class LambdaRuntime:
    """Runs deployed functions' handlers in this process; one per running local cloud."""

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
        self._lock = FairLock()
        self._code_roots: dict[str, Path] = {}
        self._failure_destinations: dict[str, str] = {}
        self._retry_attempts: dict[str, int] = {}
        self._log_groups: dict[str, str] = {}
        self._loaded: dict[tuple[str, str], _LoadedFunction] = {}
        self._originals: dict[str, Any] = {}

    def register_code_root(self, function_name: str, code_root: Path) -> None:
        """Where `function_name`'s handler module is imported from (the repository root unless told)."""
        self._code_roots[function_name] = code_root
        self._loaded = {key: value for key, value in self._loaded.items() if key[0] != function_name}

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
            return runtime.invoke(function, event)

        def invoke(function: LambdaFunction, body: str, request_headers: Any, response_headers: Any) -> str | bytes:
            event = json.loads(body) if body else {}
            headers = {str(k).lower(): v for k, v in dict(request_headers or {}).items()}
            if headers.get("x-amz-invocation-type") == "Event":
                runtime.invoke_async(function, event)
                return b""
            payload, errored, logs = runtime.invoke(function, event)
            if errored:
                response_headers["x-amz-function-error"] = "Unhandled"
            response_headers["x-amz-log-result"] = base64.b64encode(logs[-4096:].encode()).decode()
            return payload.encode("utf-8")

        def send_sns_message(
            backend: Any, function_name: str, message: str, subject: str | None = None, qualifier: str | None = None
        ) -> None:
            original = runtime._originals["send_sns_message"]
            runtime.dispatcher.submit(
                f"SNS -> lambda {function_name}", lambda: original(backend, function_name, message, subject, qualifier)
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
                f"S3 -> lambda {fn_arn}", lambda: original(account_id, event_body, fn_arn, region_name)
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
        self._loaded.clear()
        release_stdout()

    def invoke_async(self, function: LambdaFunction, event: Any) -> None:
        """Queue an asynchronous invocation, retried like Lambda's (2 retries unless the function's
        EventInvokeConfig says otherwise); the final failure goes to the failure destination and is
        recorded in the dispatcher's failures."""

        def run() -> None:
            attempts = 1 + self._retry_attempts.get(function.function_name, 2)
            for _ in range(attempts):
                payload, errored, _ = self.invoke(function, event)
                if not errored:
                    return
            destination = self._failure_destinations.get(function.function_name)
            if destination:
                self._send_failure(function, destination, event, payload)
            raise RuntimeError(f"{function.function_name} failed {attempts} time(s): {payload}")

        self.dispatcher.submit(f"async invoke {function.function_name}", run)

    def _send_failure(self, function: LambdaFunction, destination: str, event: Any, payload: str) -> None:
        record = {
            "requestContext": {"functionArn": function.function_arn, "condition": "RetriesExhausted"},
            "requestPayload": event,
            "responsePayload": json.loads(payload),
        }
        parts = destination.split(":")
        service, region, account = parts[2], parts[3], parts[4]
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
        """Run the handler: (JSON payload, whether it failed, captured output)."""
        if isinstance(event, (str, bytes)):
            with contextlib.suppress(ValueError):
                event = json.loads(event)
        timeout = float(function.timeout or 3)
        if not self._lock.acquire(timeout=max(timeout, 30.0)):
            # A handler that synchronously invokes another function while holding the lock would deadlock.
            return (
                self._error("Sandbox.Timedout", "local cloud: another invocation held the runtime too long"),
                True,
                "",
            )
        try:
            return self._invoke_locked(function, event)
        finally:
            self._lock.release()

    def _environment(self, function: LambdaFunction, code_root: Path) -> dict[str, str]:
        credentials = role_credentials(function.role, function.function_name, region=function.region)
        environment = {
            "AWS_REGION": function.region,
            "AWS_DEFAULT_REGION": function.region,
            # The execution environment acts as the function's role (session named after the function, as in AWS).
            **credentials.environment(),
            # botocore reads AWS_SECURITY_TOKEN before AWS_SESSION_TOKEN: one inherited from this process must not
            # shadow the role's token.
            "AWS_SECURITY_TOKEN": credentials.session_token,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.run_time}",
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": self.log_group(function),
            "LAMBDA_TASK_ROOT": str(code_root),
            "_HANDLER": function.handler or "",
            # No X-Ray daemon locally: Powertools' Tracer would otherwise look for a segment.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        environment.update({k: str(v) for k, v in (function.environment_vars or {}).items()})
        return environment

    @contextlib.contextmanager
    def _function_scope(
        self, environment: dict[str, str], package: str, modules: dict[str, ModuleType]
    ) -> Iterator[None]:
        """Overlay the function's environment and module instances; restore the process's afterwards."""
        with overlay_environ(environment):
            _use_role_credentials(environment)
            saved_modules = {name: sys.modules.pop(name) for name in list(sys.modules) if _in_package(name, package)}
            sys.modules.update(modules)
            try:
                yield
            finally:
                modules.update(
                    {name: sys.modules.pop(name) for name in list(sys.modules) if _in_package(name, package)}
                )
                sys.modules.update(saved_modules)

    def _invoke_locked(self, function: LambdaFunction, event: Any) -> tuple[str, bool, str]:
        handler_path = function.handler or ""
        module_name, _, attribute = handler_path.rpartition(".")
        package = module_name.split(".")[0]
        code_root = self._code_roots.get(function.function_name, REPO_ROOT)
        environment = self._environment(function, code_root)
        key = (function.function_name, function.code_sha_256 or "")
        context = LambdaContext(
            function_name=function.function_name,
            function_version="$LATEST",
            invoked_function_arn=function.function_arn,
            memory_limit_in_mb=int(function.memory_size or 128),
            log_group_name=self.log_group(function),
            log_stream_name=f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
            timeout_seconds=float(function.timeout or 3),
        )
        output = io.StringIO()
        loaded = self._loaded.get(key)
        modules = loaded.modules if loaded else {}
        errored = False
        with self._function_scope(environment, package, modules), captured_stdout(output):
            try:
                if loaded is None:
                    loaded = self._load(code_root, module_name, attribute, modules)
                    self._loaded[key] = loaded
                result = loaded.handler(event, context)
                payload = json.dumps(result, default=str)
            except Exception as exc:
                errored = True
                traceback.print_exc(file=output)
                payload = self._error(type(exc).__name__, str(exc), traceback.format_tb(exc.__traceback__))
        logs = output.getvalue()
        self._publish_output(function, context, logs)
        return payload, errored, logs

    @staticmethod
    def _load(code_root: Path, module_name: str, attribute: str, modules: dict[str, ModuleType]) -> _LoadedFunction:
        sys.path.insert(0, str(code_root))
        try:
            importlib.invalidate_caches()
            module = importlib.import_module(module_name)
        finally:
            sys.path.remove(str(code_root))
        handler = getattr(module, attribute)
        return _LoadedFunction(handler=handler, modules=modules)

    @staticmethod
    def _error(error_type: str, message: str, stack: list[str] | None = None) -> str:
        return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": stack or []})

    def _publish_output(self, function: LambdaFunction, context: LambdaContext, logs: str) -> None:
        echoed: list[str] = []
        for line in logs.splitlines():
            metric_data = emf_to_metric_data(line)
            if not metric_data:
                echoed.append(line)
            for namespace, data in metric_data:
                try:
                    self._put_metric_data(namespace, data)
                except Exception as exc:
                    LOG.warning("could not publish EMF metrics of %s: %r", function.function_name, exc)
        if echoed:
            sys.stdout.write("\n".join(echoed) + "\n")
            try:
                backend = function.logs_backend
                backend.ensure_log_group(context.log_group_name)
                backend.create_log_stream(context.log_group_name, context.log_stream_name)
                now = int(time.time() * 1000)
                backend.put_log_events(
                    context.log_group_name,
                    context.log_stream_name,
                    [{"timestamp": now, "message": line} for line in logs.splitlines() if line],
                )
            except Exception as exc:
                LOG.debug("could not store logs of %s: %r", function.function_name, exc)


def _function_name(function: str) -> str:
    return function.split(":")[6] if function.startswith("arn:") else function


def _in_package(module_name: str, package: str) -> bool:
    return module_name == package or module_name.startswith(package + ".")


def _use_role_credentials(environment: dict[str, str]) -> None:
    """boto3's default session caches the credentials it resolved first, and handlers in this process share it:
    each invocation's clients must sign with its own function's role, as in a separate execution environment."""
    session = boto3.DEFAULT_SESSION
    if session is not None:
        session._session.set_credentials(  # botocore's session behind boto3's; public set_credentials
            environment["AWS_ACCESS_KEY_ID"], environment["AWS_SECRET_ACCESS_KEY"], environment["AWS_SESSION_TOKEN"]
        )
