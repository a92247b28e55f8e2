"""An asynchronous event that meets a throttled function waits and is delivered, as Lambda's event queue does."""

from __future__ import annotations

import pytest

from mlloop.localcloud import lambdas
from mlloop.localcloud.execution.lambda_environments import ThrottledError


def test_a_throttled_asynchronous_delivery_is_retried_until_the_function_has_room() -> None:
    attempts: list[int] = []

    def deliver() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ThrottledError("f")
        return "delivered"

    assert lambdas.LambdaRuntime._when_not_throttled("f", deliver) == "delivered"
    assert len(attempts) == 3


def test_a_delivery_throttled_for_longer_than_the_event_may_wait_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lambdas, "THROTTLED_EVENT_WAIT_SECONDS", 0.0)

    def deliver() -> str:
        raise lambdas.TooManyRequestsError("f")

    with pytest.raises(lambdas.TooManyRequestsError):
        lambdas.LambdaRuntime._when_not_throttled("f", deliver)
