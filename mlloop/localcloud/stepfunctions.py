"""Step Functions: moto's ASL interpreter runs the synthesized definitions; waits follow the cloud's clock.

moto sleeps for real in Wait states and between Retry attempts; a training workflow that polls a job
every 60 s would make tests crawl. Both wait on the cloud's clock (clock.py): scaled by
`LOCALCLOUD_TIME_SCALE` (0.01: 300 s -> 3 s), or until a controlled clock is advanced past their end.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.program.program import Program
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

from mlloop.localcloud.clock import Clock


def _wait_seconds(wait: WaitFunction, env: Any, clock: Clock) -> float:
    """Seconds to wait; a `Timestamp` wait counts to its instant from the clock's now (moto: from the host's)."""
    seconds = float(wait._get_wait_seconds(env=env))
    if isinstance(wait, Timestamp):
        seconds -= (clock.now() - datetime.now(UTC)).total_seconds()
    return seconds


class StepFunctionsClock:
    """Patches the interpreter's Wait states and Retry intervals to wait on the cloud's clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._original_wait: Any = None
        self._original_time: Any = None
        self._original_body: Any = None

    def install(self) -> None:
        clock = self.clock
        original_body: Any = Program._eval_body

        def _program_body(program: Program, env: Any) -> None:
            # The thread that runs an execution's states is the cloud's work: a controlled clock lets it reach
            # its next wait (or its end) before moving on.
            clock.track()
            try:
                original_body(program, env)
            finally:
                clock.untrack()

        def _eval_body(wait: WaitFunction, env: Any) -> None:
            clock.sleep(_wait_seconds(wait, env, clock), stop=lambda: not env.is_running())

        def sleep(seconds: float) -> None:
            clock.sleep(seconds)

        self._original_wait = WaitFunction._eval_body
        self._original_time = retrier_decl.time  # type: ignore[attr-defined]
        WaitFunction._eval_body = _eval_body  # type: ignore[method-assign,assignment]
        self._original_body = original_body
        Program._eval_body = _program_body  # type: ignore[method-assign,assignment]
        retrier_decl.time = SimpleNamespace(sleep=sleep, time=time.time, monotonic=time.monotonic)  # type: ignore[attr-defined,assignment]

    def uninstall(self) -> None:
        if self._original_wait is not None:
            WaitFunction._eval_body = self._original_wait  # type: ignore[method-assign]
            retrier_decl.time = self._original_time  # type: ignore[attr-defined]
            Program._eval_body = self._original_body  # type: ignore[method-assign]
            self._original_wait = None


def _iso(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class ExecutionOutputs:
    """Stores a finished execution's output as JSON text, timestamps as ISO-8601 strings.

    An aws-sdk task's result (e.g. sagemaker:describeTrainingJob) carries datetimes from boto3; moto keeps
    the final state as a dict and its DescribeExecution then fails with a 500 while encoding it.
    """

    def __init__(self) -> None:
        self._original: Any = None

    def install(self) -> None:
        original = BaseExecutionWorkerCommunication._reflect_execution_status

        def _reflect_execution_status(communication: BaseExecutionWorkerCommunication) -> None:
            original(communication)  # type: ignore[no-untyped-call]
            output = communication.execution.output
            if output is not None and not isinstance(output, str):
                communication.execution.output = json.dumps(output, default=_iso)

        self._original = original
        BaseExecutionWorkerCommunication._reflect_execution_status = _reflect_execution_status  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._original is not None:
            BaseExecutionWorkerCommunication._reflect_execution_status = self._original  # type: ignore[method-assign]
            self._original = None
