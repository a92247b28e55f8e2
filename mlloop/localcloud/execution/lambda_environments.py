"""Lambda execution environments: one worker process per environment, driven through Lambda's Runtime API.

Each environment is the Lambda Python runtime's own client (`awslambdaric`, from the runtime package set) running in
a separate interpreter started with `-I -S` (no host site-packages, no PYTHON* variables), whose import path is the
function's code folder, its layers' package sets and the runtime's packages, in Lambda's order. The environment talks
to a small Runtime API server (`/2018-06-01/runtime/...`) owned by this process, so init errors, the context object
and error payloads are the runtime's own. Its environment variables are the function's plus Lambda's, nothing from
the host.

Limits as Lambda applies them:
- timeout: no answer within the function's timeout ends the invocation with `Sandbox.Timedout` "Task timed out after
  N.NN seconds" and the environment is discarded;
- memory: a worker whose resident memory exceeds the function's memory size is killed, the invocation fails with
  `Runtime.OutOfMemory`;
- a worker that exits mid-invocation fails it with `Runtime.ExitError`; an init failure (`Runtime.ImportModuleError`,
  `Runtime.HandlerNotFound`, ...) is answered to the invocation that started the environment, which is discarded;
- concurrency: each in-flight invocation holds its own environment; idle ones are reused (warm starts), new ones are
  started up to the function's reserved concurrency, past which `acquire` raises `ThrottledError`.
The error shapes follow the Lambda Developer Guide ("Troubleshoot invocation issues in Lambda": "Task timed out after
N seconds", "Runtime exited with error: signal: killed" / Runtime.OutOfMemory, Runtime.ExitError).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

LOG = logging.getLogger("mlloop.localcloud")
RUNTIME_API_PREFIX = "/2018-06-01/runtime"
# Lambda's init phase may take 10 s before the invocation's own timeout takes over (Lambda Developer Guide,
# "Lambda execution environment lifecycle": the Init phase is limited to 10 seconds).
INIT_SECONDS = 10.0
# How long an environment stays warm without invocations (Lambda keeps them for minutes; the exact time is unspecified).
IDLE_SECONDS = 300.0
# How often a waiting invocation checks the worker's memory, liveness and deadline.
_POLL_SECONDS = 0.02
# Every interpreter the workers run is this one, without its site-packages (-S) or environment (-I).
_BOOTSTRAP = """
import sys
sys.path[:0] = sys.argv[2].split(":")
sys.argv = ["awslambdaric", sys.argv[1]]
from awslambdaric.__main__ import main
main(sys.argv)
"""


class ThrottledError(Exception):
    """Every environment the function may have is busy (its reserved concurrency is reached)."""


@dataclass(frozen=True)
class FunctionSpec:
    """What an execution environment is made of: the deployed configuration of one function version."""

    name: str
    arn: str
    handler: str
    code_root: Path
    import_path: tuple[Path, ...]  # code root first, then layers (last-listed layer first), then the runtime
    environment: dict[str, str]  # exactly the worker's environment, except per-environment values
    memory_mb: int
    timeout_seconds: float
    reserved_concurrency: int | None
    tracing_active: bool
    log_group: str
    revision: str  # changes when code or configuration change: new environments then


@dataclass
class Outcome:
    """One invocation's result as the Invoke API returns it."""

    payload: bytes
    function_error: str | None  # "Unhandled" for any error, as Lambda's X-Amz-Function-Error header
    logs: str
    request_id: str
    cold_start: bool
    duration_ms: float
    init_duration_ms: float | None
    max_memory_mb: int
    log_stream: str
    error_type: str | None = None


@dataclass
class _Pending:
    request_id: str
    payload: bytes
    deadline_ms: int
    trace_id: str
    done: threading.Event = field(default_factory=threading.Event)
    response: bytes | None = None
    error: bytes | None = None
    started: float = 0.0


class _RuntimeApi(ThreadingHTTPServer):
    """The Runtime API of one execution environment."""

    daemon_threads = True

    def __init__(self, function_arn: str) -> None:
        super().__init__(("127.0.0.1", 0), _RuntimeApiHandler)
        self.function_arn = function_arn
        self.next_invocations: queue.Queue[_Pending | None] = queue.Queue()
        self.current: _Pending | None = None
        self.init_error: bytes | None = None
        self.init_done = threading.Event()
        self.thread = threading.Thread(target=self.serve_forever, name="lambda-runtime-api", daemon=True)
        self.thread.start()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A worker killed mid-request (timeout, memory, shutdown) leaves its connection broken: expected, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host!s}:{port}"

    def stop(self) -> None:
        self.next_invocations.put(None)
        self.shutdown()
        self.server_close()


class _RuntimeApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for a delayed ACK (~40 ms).
    disable_nagle_algorithm = True
    server: _RuntimeApi

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, body: bytes = b'{"status":"OK"}', headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        if self.path != f"{RUNTIME_API_PREFIX}/invocation/next":
            self._reply(404, b'{"errorMessage":"not found"}')
            return
        self.server.init_done.set()
        pending = self.server.next_invocations.get()
        if pending is None:
            self._reply(500, b'{"errorMessage":"environment shutting down"}')
            return
        pending.started = time.monotonic()
        self.server.current = pending
        self._reply(
            200,
            pending.payload,
            {
                "Lambda-Runtime-Aws-Request-Id": pending.request_id,
                "Lambda-Runtime-Deadline-Ms": str(pending.deadline_ms),
                "Lambda-Runtime-Invoked-Function-Arn": self.server.function_arn,
                "Lambda-Runtime-Trace-Id": pending.trace_id,
            },
        )

    def do_POST(self) -> None:
        body = self._body()
        parts = self.path[len(RUNTIME_API_PREFIX) :].strip("/").split("/")
        if parts == ["init", "error"]:
            self.server.init_error = body
            self.server.init_done.set()
            self._reply(202)
            return
        current = self.server.current
        if len(parts) == 3 and parts[0] == "invocation" and current is not None and parts[1] == current.request_id:
            if parts[2] == "response":
                current.response = body
            elif parts[2] == "error":
                current.error = body
            else:
                self._reply(404, b'{"errorMessage":"not found"}')
                return
            self.server.current = None
            self._reply(202)
            current.done.set()
            return
        self._reply(400, b'{"errorMessage":"InvalidRequestID"}')


def _error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _rss_mb(pid: int) -> int:
    """Resident set size of a process in MB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        return 0
    return 0


class ExecutionEnvironment:
    """One worker process running the function's runtime, and its Runtime API."""

    _ids = itertools.count(1)

    def __init__(self, spec: FunctionSpec, *, python: str, log_dir: Path) -> None:
        self.spec = spec
        self.id = next(self._ids)
        self.log_stream = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self.api = _RuntimeApi(spec.arn)
        self._log_path = log_dir / f"{spec.name}-{self.id}.log"
        self._log = open(self._log_path, "wb")  # noqa: SIM115 - the worker writes into it for its whole life
        self._read_offset = 0
        self.last_used = time.monotonic()
        self.initialised = False
        self.max_memory_mb = 0
        environment = {
            **spec.environment,
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.log_stream,
        }
        self.process = subprocess.Popen(
            [python, "-I", "-S", "-c", _BOOTSTRAP, spec.handler, ":".join(str(p) for p in spec.import_path)],
            cwd=spec.code_root,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def new_output(self) -> str:
        with open(self._log_path, "rb") as log:
            log.seek(self._read_offset)
            data = log.read()
        self._read_offset += len(data)
        return data.decode("utf-8", errors="replace")

    def _watch(self, done: threading.Event, deadline: float) -> str | None:
        """Wait until `done` is set; None, or why not: "timeout", "memory" or "exit"."""
        while not done.wait(_POLL_SECONDS):
            rss = _rss_mb(self.process.pid)
            self.max_memory_mb = max(self.max_memory_mb, rss)
            if rss > self.spec.memory_mb:
                self.kill()
                return "memory"
            if self.process.poll() is not None:
                # The worker may have answered just before exiting.
                return None if done.is_set() else "exit"
            if time.monotonic() > deadline:
                return "timeout"
        self.max_memory_mb = max(self.max_memory_mb, _rss_mb(self.process.pid))
        return None

    def invoke(self, payload: bytes) -> Outcome:
        request_id = str(uuid.uuid4())
        cold = not self.initialised
        started = time.monotonic()
        init_ms: float | None = None
        if cold:
            failure = self._watch(self.api.init_done, started + max(INIT_SECONDS, self.spec.timeout_seconds))
            init_ms = (time.monotonic() - started) * 1000
            if self.api.init_error is not None or failure is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=1.0)  # its last words (the init error it logged) reach the log
                self.kill()
                error = self.api.init_error or self._failure_payload(failure or "exit", request_id)
                return self._outcome(request_id, error, errored=True, cold=cold, started=started, init_ms=init_ms)
            self.initialised = True
        pending = _Pending(
            request_id=request_id,
            payload=payload,
            deadline_ms=int((time.time() + self.spec.timeout_seconds) * 1000),
            trace_id=_trace_header(sampled=self.spec.tracing_active),
        )
        invoked = time.monotonic()
        self.api.next_invocations.put(pending)
        failure = self._watch(pending.done, invoked + self.spec.timeout_seconds)
        self.last_used = time.monotonic()
        if failure is not None:
            self.kill()
            error = self._failure_payload(failure, request_id)
            return self._outcome(request_id, error, errored=True, cold=cold, started=invoked, init_ms=init_ms)
        if pending.error is not None:
            return self._outcome(request_id, pending.error, errored=True, cold=cold, started=invoked, init_ms=init_ms)
        response = pending.response or b"null"
        return self._outcome(request_id, response, errored=False, cold=cold, started=invoked, init_ms=init_ms)

    def _failure_payload(self, failure: str, request_id: str) -> bytes:
        if failure == "timeout":
            return _error_payload(
                "Sandbox.Timedout",
                f"RequestId: {request_id} Error: Task timed out after {self.spec.timeout_seconds:.2f} seconds",
            )
        if failure == "memory":
            return _error_payload(
                "Runtime.OutOfMemory", f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
            )
        code = self.process.returncode
        reason = f"signal: {signal.Signals(-code).name.removeprefix('SIG').lower()}" if code and code < 0 else None
        return _error_payload(
            "Runtime.ExitError",
            f"RequestId: {request_id} Error: Runtime exited with error: {reason or f'exit status {code}'}",
        )

    def _outcome(
        self, request_id: str, payload: bytes, *, errored: bool, cold: bool, started: float, init_ms: float | None
    ) -> Outcome:
        duration = (time.monotonic() - started) * 1000
        error_type = None
        if errored:
            with contextlib.suppress(ValueError, AttributeError):
                error_type = json.loads(payload).get("errorType")
        output = self.new_output()
        lines = [f"START RequestId: {request_id} Version: $LATEST", *output.splitlines()]
        if error_type == "Sandbox.Timedout":
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            lines.append(f"{stamp} {request_id} Task timed out after {self.spec.timeout_seconds:.2f} seconds")
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\tBilled Duration: {int(duration) + 1} ms\t"
            f"Memory Size: {self.spec.memory_mb} MB\tMax Memory Used: {self.max_memory_mb} MB"
        )
        if init_ms is not None:
            report += f"\tInit Duration: {init_ms:.2f} ms"
        lines += [f"END RequestId: {request_id}", report]
        return Outcome(
            payload=payload,
            function_error="Unhandled" if errored else None,
            logs="\n".join(lines) + "\n",
            request_id=request_id,
            cold_start=cold,
            duration_ms=duration,
            init_duration_ms=init_ms,
            max_memory_mb=self.max_memory_mb,
            log_stream=self.log_stream,
            error_type=error_type,
        )

    def kill(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    def stop(self) -> None:
        self.kill()
        self.api.stop()
        self._log.close()
        with contextlib.suppress(OSError):
            self._log_path.unlink()


def _trace_header(*, sampled: bool) -> str:
    """An X-Ray trace header for one invocation (Root=1-<epoch hex>-<96-bit id>)."""
    root = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    return f"{root};Parent={uuid.uuid4().hex[:16]};Sampled={int(sampled)}"


class _FunctionPool:
    def __init__(self) -> None:
        self.idle: list[ExecutionEnvironment] = []
        self.busy = 0


class LambdaEnvironments:
    """Every function's execution environments in this cloud: acquire one per invocation, release it after."""

    def __init__(self, *, python: str | None = None) -> None:
        self.python = python or getattr(sys, "_base_executable", None) or sys.executable
        self._log_dir = Path(tempfile.mkdtemp(prefix="localcloud-lambda-"))
        self._pools: dict[str, _FunctionPool] = {}
        self._lock = threading.Lock()
        self.cold_starts = 0
        self.xray = XRaySink()

    def _pool(self, name: str) -> _FunctionPool:
        return self._pools.setdefault(name, _FunctionPool())

    def invoke(self, spec: FunctionSpec, payload: bytes) -> Outcome:
        """Run one invocation in a free environment (a new one if none is idle); raises ThrottledError."""
        environment = self._acquire(spec)
        healthy = False
        try:
            outcome = environment.invoke(payload)
            healthy = environment.alive
            return outcome
        finally:
            self._release(spec, environment, healthy)

    def _acquire(self, spec: FunctionSpec) -> ExecutionEnvironment:
        with self._lock:
            pool = self._pool(spec.name)
            now = time.monotonic()
            for stale in [e for e in pool.idle if e.spec.revision != spec.revision or now - e.last_used > IDLE_SECONDS]:
                pool.idle.remove(stale)
                threading.Thread(target=stale.stop, daemon=True).start()
            limit = spec.reserved_concurrency
            if limit is not None and pool.busy >= limit:
                raise ThrottledError(spec.name)
            pool.busy += 1
            if pool.idle:
                return pool.idle.pop()
            self.cold_starts += 1
        try:
            return ExecutionEnvironment(spec, python=self.python, log_dir=self._log_dir)
        except BaseException:
            with self._lock:
                pool.busy -= 1
            raise

    def _release(self, spec: FunctionSpec, environment: ExecutionEnvironment, healthy: bool) -> None:
        with self._lock:
            pool = self._pool(spec.name)
            pool.busy -= 1
            if healthy and environment.spec.revision == spec.revision:
                pool.idle.append(environment)
                return
        environment.stop()

    def environment_count(self, function_name: str) -> int:
        with self._lock:
            pool = self._pools.get(function_name)
            return len(pool.idle) + pool.busy if pool else 0

    def stop(self) -> None:
        with self._lock:
            environments = [e for pool in self._pools.values() for e in pool.idle]
            self._pools.clear()
        for environment in environments:
            environment.stop()
        self.xray.stop()
        with contextlib.suppress(OSError):
            for leftover in self._log_dir.iterdir():
                leftover.unlink()
            self._log_dir.rmdir()


class XRaySink:
    """Stands for the X-Ray daemon: functions with active tracing send their segments (UDP) here, where they are
    counted and dropped, so Powertools' Tracer and the X-Ray SDK run as they do on Lambda."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self.address = "{}:{}".format(*self._socket.getsockname())
        self.segments = 0
        self._thread = threading.Thread(target=self._run, name="localcloud-xray", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self._socket.recv(65536)
            except OSError:
                return
            self.segments += 1

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_RDWR)
        self._socket.close()
