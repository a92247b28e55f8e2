"""SageMaker real-time endpoints that host the real model: inference, traffic, data capture, metrics, blue/green.

moto stores endpoints but answers invocations with canned bodies and cannot update an endpoint
(notes/moto-5.2.5.md). Here every production variant is a *fleet* that really serves the model:
ModelDataUrl is downloaded and extracted, `code/inference.py` is imported in its own module
namespace, and each request runs input_fn -> predict_fn -> output_fn under the Model's container
environment, as the SageMaker scikit-learn serving container does.

UpdateEndpoint follows the blue/green deployment model: a green fleet is started from the new
EndpointConfig, traffic shifts to it (ALL_AT_ONCE, CANARY or LINEAR), each shift is followed by a
baking period (WaitIntervalInSeconds) during which the AutoRollbackConfiguration alarms are
evaluated, then the blue fleet is kept for TerminationWaitInSeconds and terminated; an alarm in
ALARM or the MaximumExecutionTimeoutInSeconds rolls all traffic back to blue. Waits are scaled by
LOCALCLOUD_TIME_SCALE. describe_endpoint shows what SageMaker shows meanwhile: EndpointStatus
Updating, the running EndpointConfigName and the blue ProductionVariants, and the green fleet in
PendingDeploymentSummary (VariantStatus Creating / ActivatingTraffic / Baking, CurrentWeight = its
share of traffic).
"""

from __future__ import annotations

import atexit
import base64
import collections
import contextlib
import http.client
import io
import json
import random
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from moto.core.exceptions import ServiceException

from mlloop.localcloud import aws_state, images
from mlloop.localcloud.identity import role_credentials, s3_client_as

_registry_lock = threading.RLock()
_hosts: dict[tuple[str, str, str], EndpointHost] = {}
_live_servers: set[VariantServer] = set()
_SERVING_SCRIPT = Path(images.__file__).resolve().parent / "sklearn_serving.py"
# SageMaker fails CreateEndpoint when the container does not answer /ping; its model-server timeout is 60 s.
_START_TIMEOUT_SECONDS = 120.0
_INVOCATION_TIMEOUT_SECONDS = 60.0
# A retired fleet keeps serving requests already routed to it for this long before its process stops.
_RETIRE_GRACE_SECONDS = 2.0
_CAPTURE_FLUSH_RECORDS = 1000
# SageMaker delivers capture files within minutes; a buffer older than this (scaled) is written out.
_CAPTURE_FLUSH_SECONDS = 60.0


class ModelError(ServiceException):
    """What sagemaker-runtime raises when the container answers with an error status."""

    code = "ModelError"

    def __init__(self, message: str, *, status: int, original: str, log_stream_arn: str):
        super().__init__(message)
        self.OriginalStatusCode = status
        self.OriginalMessage = original
        self.LogStreamArn = log_stream_arn


class RuntimeValidationError(ServiceException):
    code = "ValidationError"


class ThrottlingException(ServiceException):
    code = "ThrottlingException"


class ContainerError(Exception):
    """An error answer from the model container: HTTP status plus the body it returned."""

    def __init__(self, status: int, body: str):
        super().__init__(body)
        self.status = status
        self.body = body


# ---------------------------------------------------------------- fault injection


@dataclass
class EndpointFault:
    """A local-only fault on an endpoint (or one variant); a context manager that clears itself."""

    endpoint_name: str
    variant_name: str | None
    kind: str
    status_code: int = 500
    message: str = "injected fault"
    delay_seconds: float = 0.0
    remaining: int | None = None
    hits: int = 0

    def applies(self, endpoint_name: str, variant_name: str | None) -> bool:
        if self.endpoint_name != endpoint_name:
            return False
        return self.variant_name is None or variant_name is None or self.variant_name == variant_name

    def clear(self) -> None:
        with _registry_lock:
            if self in _faults:
                _faults.remove(self)

    def __enter__(self) -> EndpointFault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()


_faults: list[EndpointFault] = []


def add_fault(fault: EndpointFault) -> EndpointFault:
    with _registry_lock:
        _faults.append(fault)
    return fault


def clear_faults(endpoint_name: str | None = None) -> None:
    with _registry_lock:
        _faults[:] = [f for f in _faults if endpoint_name is not None and f.endpoint_name != endpoint_name]


def _take_fault(endpoint_name: str, variant_name: str | None, kinds: tuple[str, ...]) -> EndpointFault | None:
    with _registry_lock:
        for fault in _faults:
            if fault.kind in kinds and fault.applies(endpoint_name, variant_name):
                fault.hits += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        _faults.remove(fault)
                return fault
    return None


# ---------------------------------------------------------------- the model container


class ContainerStartError(RuntimeError):
    """A serving container that never answered /ping; its output is in the endpoint's log group."""

    def __init__(self, variant: str):
        # SageMaker's FailureReason for a container that fails its health check.
        super().__init__(
            f"The primary container for production variant {variant} did not pass the ping health check. "
            "Please check CloudWatch logs for this endpoint."
        )


class VariantServer:
    """One production variant's serving container: the image's Python running its serving stack in a process.

    The process gets only what SageMaker gives a serving container: the image's variables, the Model's
    Environment, the model's execution-role credentials, AWS_REGION and the local cloud's endpoint URL, with
    SAGEMAKER_BASE_DIR standing for /opt/ml.

    Importing the serving stack (sagemaker-containers pulls in boto3, scipy and Flask) costs a second or more
    of CPU, so each image keeps one container started ahead (`_spare`): it has imported the stack under its
    own root and waits on stdin for the Model's variables, then loads the model. The image's own variables
    are set from the start, the Model's before any user code runs, so the user code sees the same
    environment either way. After the variables, stdin stays open: end of file means this process has gone,
    and the server goes with it.
    """

    def __init__(self, image: images.ImageEnvironment, root: Path, process: subprocess.Popen[str]):
        self.image = image
        self.root = root
        self.process = process
        self.port = 0
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self._log: Callable[[str], None] | None = None
        self._pending: list[str] = []
        self._log_lock = threading.Lock()
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="localcloud-variant-output", daemon=True)
        self._reader.start()

    @classmethod
    def spawn(cls, image: images.ImageEnvironment) -> VariantServer:
        """A container of `image` that has imported its serving stack and waits for its model's variables."""
        python = image.require().python()
        root = Path(tempfile.mkdtemp(prefix="localcloud-variant-"))
        (root / "model").mkdir()
        env = {
            **images.at_root(image.container_environment, root),
            "SAGEMAKER_BASE_DIR": str(root),
            "PATH": images.container_path(python),
            "HOME": str(root),
        }
        process = subprocess.Popen(
            [str(python), "-P", str(_SERVING_SCRIPT)],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        server = cls(image, root, process)
        _live_servers.add(server)
        return server

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if not self._ready.is_set() and line.startswith('{"port":'):
                self.port = int(json.loads(line)["port"])
                self._ready.set()
                continue
            self.output.append(line.rstrip("\n"))
            self._write_log([line.rstrip("\n")])
        self._ready.set()

    def _write_log(self, lines: list[str]) -> None:
        with self._log_lock:
            if self._log is None:
                self._pending.extend(lines)
                return
            log = self._log
        for line in lines:
            with contextlib.suppress(Exception):
                log(line)

    def serve(self, environment: dict[str, str], *, variant: str, log: Callable[[str], None]) -> VariantServer:
        """Hand the container its model's variables (the model is in root/model by now) and wait for /ping."""
        with self._log_lock:
            self._log, pending, self._pending = log, self._pending, []
        self._write_log(pending)
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(environment) + "\n")
            self.process.stdin.flush()
        except OSError:
            pass
        self._ready.wait(_START_TIMEOUT_SECONDS)
        if not self.port:
            self.close()
            raise ContainerStartError(variant)
        return self

    def invoke(self, body: bytes, content_type: str, accept: str, custom_attributes: str | None) -> tuple[bytes, str]:
        headers = {"Content-Type": content_type, "Accept": accept}
        if custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = custom_attributes
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=_INVOCATION_TIMEOUT_SECONDS)
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise ContainerError(500, json.dumps({"error": f"the model container did not answer: {exc}"})) from exc
        finally:
            connection.close()
        if response.status != 200:
            raise ContainerError(response.status, payload.decode("utf-8", errors="replace"))
        return payload, response.getheader("Content-Type") or accept

    def close(self) -> None:
        _live_servers.discard(self)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # The process is gone, so its output reaches end of file: let the reader finish before the pipe closes.
        if self._reader is not threading.current_thread():
            self._reader.join(timeout=5)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        shutil.rmtree(self.root, ignore_errors=True)


_spares: dict[str, VariantServer] = {}
_spares_lock = threading.Lock()


def _take_container(image: images.ImageEnvironment) -> VariantServer:
    """The image's waiting container (or a new one), with the next one started behind it."""
    with _spares_lock:
        spare = _spares.pop(image.name, None)
    if spare is None or spare.process.poll() is not None:
        if spare is not None:
            spare.close()
        spare = VariantServer.spawn(image)
    threading.Thread(target=_prepare_spare, args=(image,), name="localcloud-variant-spare", daemon=True).start()
    return spare


def _prepare_spare(image: images.ImageEnvironment) -> None:
    with _spares_lock:
        if image.name in _spares:
            return
        _spares[image.name] = VariantServer.spawn(image)


def stop_spares() -> None:
    with _spares_lock:
        spares = list(_spares.values())
        _spares.clear()
    for spare in spares:
        spare.close()


@atexit.register
def _stop_live_servers() -> None:
    for server in list(_live_servers):
        server.close()


@dataclass(eq=False)
class Fleet:
    """One production variant serving its model."""

    variant_name: str
    model_name: str
    instance_type: str | None
    instance_count: int
    weight: float
    server: VariantServer
    capture: dict[str, Any]

    def invoke(
        self, body: bytes, content_type: str, accept: str, custom_attributes: str | None = None
    ) -> tuple[bytes, str]:
        return self.server.invoke(body, content_type, accept, custom_attributes)


def _model(backend: Any, model_name: str) -> tuple[Any, dict[str, Any]]:
    model = backend._models.get(model_name)
    if model is None:
        raise ValueError(f"Could not find model '{model_name}'.")
    container = model.primary_container or (model.containers[0] if model.containers else None)
    if not container:
        raise ValueError(f"Model '{model_name}' has no container.")
    return model, dict(container)


def _extract(archive: bytes, target: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(target, filter="data")


class ModelDataDownloadError(ContainerStartError):
    """SageMaker could not download the model's data with the role passed to CreateModel."""

    def __init__(self, url: str):
        # SageMaker's FailureReason: it names neither the action nor S3's error (a missing object reads the same).
        RuntimeError.__init__(
            self,
            f'Failed to download model data for container "container_1" from URL: "{url}". Please ensure that '
            "there is an object located at the URL and that the role passed to CreateModel has permissions to "
            "download the object.",
        )


def _download_model_data(role_arn: str, session: str, region: str, url: str) -> bytes:
    """SageMaker's part: the model's archive, read with the model's execution role."""
    bucket, key = aws_state.split_s3_uri(url)
    try:
        body = s3_client_as(role_arn, session, region=region).get_object(Bucket=bucket, Key=key)["Body"]
        return bytes(body.read())
    except ClientError as error:
        raise ModelDataDownloadError(url) from error


def start_fleet(backend: Any, variant: dict[str, Any], capture: dict[str, Any], host: EndpointHost) -> Fleet:
    """Download and extract one variant's model (SageMaker's part), then start its serving container."""
    account_id, endpoint = host.account_id, host.name
    model, container = _model(backend, variant["ModelName"])
    image = images.for_image(str(container.get("Image", "")))
    server = _take_container(image)
    try:
        region = backend.region_name
        session = f"{variant['VariantName']}-{uuid.uuid4().hex[:8]}"
        if container.get("ModelDataUrl"):
            archive = _download_model_data(model.execution_role_arn, session, region, container["ModelDataUrl"])
            _extract(archive, server.root / "model")
        model_environment = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
        environment = {
            **images.at_root(model_environment, server.root),
            **role_credentials(model.execution_role_arn, session, region=region).environment(),
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
        }
        if aws_state.endpoint_url():
            environment["AWS_ENDPOINT_URL"] = aws_state.endpoint_url()
    except BaseException:
        server.close()
        raise
    # SageMaker's log stream per instance: <variant>/<instance id>.
    stream = f"{variant['VariantName']}/i-{uuid.uuid4().hex[:17]}"

    def log(line: str) -> None:
        aws_state.put_log_lines(account_id, region, f"/aws/sagemaker/Endpoints/{endpoint}", stream, [line])

    return Fleet(
        variant_name=variant["VariantName"],
        model_name=variant["ModelName"],
        instance_type=variant.get("InstanceType"),
        instance_count=int(variant.get("InitialInstanceCount") or 1),
        weight=float(variant.get("InitialVariantWeight", 1.0)),
        server=server.serve(environment, variant=variant["VariantName"], log=log),
        capture=capture,
    )


# ---------------------------------------------------------------- data capture


def _encoding(content_type: str, capture: dict[str, Any]) -> str:
    header = capture.get("CaptureContentTypeHeader") or {}
    base = content_type.split(";", maxsplit=1)[0].strip()
    if base in (header.get("JsonContentTypes") or []):
        return "JSON"
    if base in (header.get("CsvContentTypes") or []):
        return "CSV"
    return "BASE64"


def _captured(payload: bytes, content_type: str, mode: str, capture: dict[str, Any]) -> dict[str, Any]:
    encoding = _encoding(content_type, capture)
    data = base64.b64encode(payload).decode("ascii") if encoding == "BASE64" else payload.decode("utf-8")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


@dataclass
class _CaptureBuffer:
    records: list[tuple[float, str, str, dict[str, Any]]] = field(default_factory=list)


# ---------------------------------------------------------------- endpoints


@dataclass
class _Deployment:
    config_name: str
    fleets: list[Fleet]
    share: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)


class EndpointHost:
    """The serving side of one endpoint: blue fleets, an optional green deployment, capture buffers."""

    def __init__(self, account_id: str, region: str, name: str, workdir: Path):
        self.account_id = account_id
        self.region = region
        self.name = name
        self.workdir = workdir
        self.fleets: list[Fleet] = []
        # Fleets replaced or rolled back, whose serving processes stop after a grace period.
        self.retired: list[Fleet] = []
        self.green: _Deployment | None = None
        self.lock = threading.RLock()
        self.capture = _CaptureBuffer()
        self.thread: threading.Thread | None = None

    # -- routing
    def traffic(self) -> dict[str, float]:
        """Share of traffic per variant name, blue and green fleets together."""
        with self.lock:
            green_share = self.green.share if self.green else 0.0
            shares: dict[str, float] = {}
            for fleets, share in (
                (self.fleets, 1.0 - green_share),
                (self.green.fleets if self.green else [], green_share),
            ):
                total = sum(f.weight for f in fleets) or 1.0
                for fleet in fleets:
                    shares[fleet.variant_name] = shares.get(fleet.variant_name, 0.0) + share * fleet.weight / total
            return shares

    def route(self, target_variant: str | None) -> Fleet:
        with self.lock:
            candidates = list(self.fleets) + (list(self.green.fleets) if self.green and self.green.share > 0 else [])
            if target_variant:
                for fleet in reversed(candidates):
                    if fleet.variant_name == target_variant:
                        return fleet
                raise RuntimeValidationError(
                    f"Variant {target_variant} not found for endpoint {self.name}."
                    if candidates
                    else f"Endpoint {self.name} has no variants."
                )
            if self.green and self.green.share > 0 and random.random() < self.green.share:
                pool = self.green.fleets
            else:
                pool = self.fleets
            weights = [f.weight for f in pool]
            if not pool or sum(weights) <= 0:
                raise RuntimeValidationError(f"Endpoint {self.name} has no variant with a positive weight.")
            return random.choices(pool, weights=weights)[0]

    # -- capture
    def record_capture(self, fleet: Fleet, request: tuple[bytes, str], response: tuple[bytes, str] | None) -> None:
        capture = fleet.capture
        if not capture or not capture.get("EnableCapture", True) or not capture.get("DestinationS3Uri"):
            return
        if random.random() * 100.0 >= float(capture.get("InitialSamplingPercentage", 100)):
            return
        modes = {o.get("CaptureMode") for o in capture.get("CaptureOptions") or [{"CaptureMode": "Input"}]}
        now = aws_state.utcnow()
        data: dict[str, Any] = {}
        if "Input" in modes:
            data["endpointInput"] = _captured(request[0], request[1], "INPUT", capture)
        if "Output" in modes and response is not None:
            data["endpointOutput"] = _captured(response[0], response[1], "OUTPUT", capture)
        line = json.dumps(
            {
                "captureData": data,
                "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")},
                "eventVersion": "0",
            }
        )
        with self.lock:
            self.capture.records.append((now.timestamp(), fleet.variant_name, line, capture))
            oldest = self.capture.records[0][0]
            full = len(self.capture.records) >= _CAPTURE_FLUSH_RECORDS or now.timestamp() - oldest >= aws_state.scaled(
                _CAPTURE_FLUSH_SECONDS
            )
        if full:
            self.flush_capture()

    def flush_capture(self) -> int:
        """Write buffered capture records as SageMaker does: one JSON-lines object per variant and hour."""
        with self.lock:
            records, self.capture.records = self.capture.records, []
        groups: dict[tuple[str, str, str, str | None], list[str]] = {}
        for stamp, variant, line, capture in records:
            hour = time.strftime("%Y/%m/%d/%H", time.gmtime(stamp))
            destination = str(capture["DestinationS3Uri"]).rstrip("/")
            groups.setdefault((destination, variant, hour, capture.get("KmsKeyId")), []).append(line)
        for (destination, variant, hour, kms), lines in groups.items():
            uri = f"{destination}/{self.name}/{variant}/{hour}/{uuid.uuid4()}.jsonl"
            aws_state.write_s3(self.account_id, uri, ("\n".join(lines) + "\n").encode("utf-8"), kms_key_id=kms)
        return len(records)

    def retire(self, fleets: list[Fleet]) -> None:
        """Take fleets out of service: requests already routed to them finish, then their processes stop."""
        with self.lock:
            self.retired.extend(fleets)
        timer = threading.Timer(_RETIRE_GRACE_SECONDS, _close_servers, args=(list(fleets),))
        timer.daemon = True
        timer.start()

    def close(self) -> None:
        if self.green is not None:
            self.green.cancel.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=10)
        self.flush_capture()
        green = self.green.fleets if self.green is not None else []
        for fleet in self.retired + self.fleets + green:
            fleet.server.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _close_servers(fleets: list[Fleet]) -> None:
    for fleet in fleets:
        fleet.server.close()


def host_for(account_id: str, region: str, name: str) -> EndpointHost | None:
    with _registry_lock:
        return _hosts.get((account_id, region, name))


def all_hosts() -> list[EndpointHost]:
    with _registry_lock:
        return list(_hosts.values())


def register_host(host: EndpointHost) -> None:
    with _registry_lock:
        _hosts[(host.account_id, host.region, host.name)] = host


def drop_host(account_id: str, region: str, name: str) -> None:
    with _registry_lock:
        host = _hosts.pop((account_id, region, name), None)
    if host is not None:
        host.close()


def new_workdir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"localcloud-endpoint-{name}-"))


def capture_summary(capture: dict[str, Any]) -> dict[str, Any] | None:
    """DescribeEndpoint's DataCaptureConfigSummary for an EndpointConfig's DataCaptureConfig."""
    if not capture:
        return None
    summary = {
        "EnableCapture": bool(capture.get("EnableCapture", True)),
        "CaptureStatus": "Started" if capture.get("EnableCapture", True) else "Stopped",
        "CurrentSamplingPercentage": int(capture.get("InitialSamplingPercentage", 100)),
        "DestinationS3Uri": capture.get("DestinationS3Uri"),
    }
    if capture.get("KmsKeyId"):
        summary["KmsKeyId"] = capture["KmsKeyId"]
    return summary


# ---------------------------------------------------------------- invocation


def _put_metrics(
    account_id: str, region: str, endpoint: str, variant: str, values: dict[str, tuple[float, str]]
) -> None:
    from moto.cloudwatch.models import cloudwatch_backends

    dims = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    cloudwatch_backends[account_id][region].put_metric_data(
        "AWS/SageMaker",
        [
            {"MetricName": name, "Value": value, "Unit": unit, "Dimensions": dims}
            for name, (value, unit) in values.items()
        ],
    )


def invoke(
    account_id: str,
    region: str,
    endpoint_name: str,
    *,
    body: bytes,
    content_type: str,
    accept: str,
    target_variant: str | None = None,
    custom_attributes: str | None = None,
) -> tuple[bytes, str, str]:
    """InvokeEndpoint: (body, content type, invoked variant), or the error SageMaker raises."""
    not_found = RuntimeValidationError(f"Endpoint {endpoint_name} of account {account_id} not found.")
    host = host_for(account_id, region, endpoint_name)
    if host is None or _take_fault(endpoint_name, None, ("missing",)):
        raise not_found
    started = time.perf_counter()
    fleet = host.route(target_variant)
    if _take_fault(endpoint_name, fleet.variant_name, ("throttle",)):
        raise ThrottlingException("Rate exceeded")
    slow = _take_fault(endpoint_name, fleet.variant_name, ("slow",))
    model_started = time.perf_counter()
    if slow is not None:
        time.sleep(slow.delay_seconds)
    error: ContainerError | None = None
    answer: tuple[bytes, str] | None = None
    injected = _take_fault(endpoint_name, fleet.variant_name, ("error",))
    if injected is not None:
        error = ContainerError(injected.status_code, json.dumps({"error": injected.message}))
    else:
        try:
            answer = fleet.invoke(body, content_type, accept, custom_attributes)
        except ContainerError as exc:
            if host_for(account_id, region, endpoint_name) is not host:
                # DeleteEndpoint stopped the container under this request: the endpoint is gone.
                raise not_found from exc
            error = exc
    model_us = (time.perf_counter() - model_started) * 1e6
    overhead_us = max((time.perf_counter() - started) * 1e6 - model_us, 0.0)
    status = error.status if error else 200
    _put_metrics(
        account_id,
        region,
        endpoint_name,
        fleet.variant_name,
        {
            "Invocations": (1.0, "None"),
            "InvocationsPerInstance": (1.0 / max(fleet.instance_count, 1), "None"),
            "ModelLatency": (model_us, "Microseconds"),
            "OverheadLatency": (overhead_us, "Microseconds"),
            "Invocation4XXErrors": (1.0 if 400 <= status < 500 else 0.0, "None"),
            "Invocation5XXErrors": (1.0 if status >= 500 else 0.0, "None"),
        },
    )
    host.record_capture(fleet, (body, content_type), answer)
    if error is not None:
        log_stream = f"arn:aws:logs:{region}:{account_id}:log-group:/aws/sagemaker/Endpoints/{endpoint_name}"
        kind = "client" if error.status < 500 else "server"
        raise ModelError(
            f'Received {kind} error ({error.status}) from primary with message "{error.body}". '
            f"See https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logEventViewer:"
            f"group=/aws/sagemaker/Endpoints/{endpoint_name} in account {account_id} for more information.",
            status=error.status,
            original=error.body,
            log_stream_arn=log_stream,
        )
    assert answer is not None
    return answer[0], answer[1], fleet.variant_name


def response_invoke_endpoint(self: Any) -> Any:
    """sagemaker-runtime InvokeEndpoint, replacing moto's canned answer."""
    from urllib.parse import unquote

    name = unquote(self.path.split("/")[2])
    content_type = self.headers.get("Content-Type") or "application/octet-stream"
    accept = self.headers.get("Accept") or content_type
    body = self.raw_body if isinstance(self.raw_body, bytes) else str(self.raw_body or "").encode("utf-8")
    payload, answer_type, variant = invoke(
        self.current_account,
        self.region,
        name,
        body=body,
        content_type=content_type,
        accept=accept,
        target_variant=self.headers.get("X-Amzn-SageMaker-Target-Variant"),
        custom_attributes=self.headers.get("X-Amzn-SageMaker-Custom-Attributes"),
    )
    headers = {"Content-Type": answer_type, "x-Amzn-Invoked-Production-Variant": variant}
    custom = self.headers.get("X-Amzn-SageMaker-Custom-Attributes")
    if custom:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom
    return 200, headers, payload
