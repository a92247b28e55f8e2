"""Step Functions: moto's ASL interpreter runs the synthesized definitions; waits follow the local time scale.

moto sleeps for real in Wait states and between Retry attempts; a training workflow that polls a job
every 60 s would make tests crawl. Both are scaled by `LOCALCLOUD_TIME_SCALE` (0.01: 300 s -> 3 s).
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime
from types import SimpleNamespace
from typing import Any

from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication


class StepFunctionsClock:
    """Patches the interpreter's Wait states and Retry intervals to sleep `seconds * time_scale`."""

    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale
        self._original_wait: Any = None
        self._original_time: Any = None

    def install(self) -> None:
        scale = self.time_scale

        def _eval_body(wait: WaitFunction, env: Any) -> None:
            deadline = time.monotonic() + max(0.0, float(wait._get_wait_seconds(env=env))) * scale
            while env.is_running() and (remaining := deadline - time.monotonic()) > 0:
                if env.program_state_event.wait(remaining):
                    # Set by an unrelated state change (not a stop): keep waiting without spinning.
                    time.sleep(min(remaining, 0.01))

        def sleep(seconds: float) -> None:
            time.sleep(max(0.0, float(seconds)) * scale)

        self._original_wait = WaitFunction._eval_body
        self._original_time = retrier_decl.time  # type: ignore[attr-defined]
        WaitFunction._eval_body = _eval_body  # type: ignore[method-assign,assignment]
        retrier_decl.time = SimpleNamespace(sleep=sleep, time=time.time, monotonic=time.monotonic)  # type: ignore[attr-defined,assignment]

    def uninstall(self) -> None:
        if self._original_wait is not None:
            WaitFunction._eval_body = self._original_wait  # type: ignore[method-assign]
            retrier_decl.time = self._original_time  # type: ignore[attr-defined]
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
