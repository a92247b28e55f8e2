"""Throttling and transient AWS faults become one error name, `TransientError`, that state machines retry with backoff.

botocore has already retried such a call by the time it raises; surfacing it under a stable name lets the
workflow add a slower, longer backoff instead of failing the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

TRANSIENT_ERROR_CODES: frozenset[str] = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "ProvisionedThroughputExceededException",
        "SlowDown",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


class TransientError(Exception):
    """A call failed for a reason that a later attempt can overcome (throttling, a service hiccup)."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code", "") in TRANSIENT_ERROR_CODES
    return isinstance(exc, (ConnectionError, ReadTimeoutError))


@contextmanager
def transient_faults() -> Iterator[None]:
    """Re-raise throttling and transient service faults as TransientError; every other error passes unchanged."""
    try:
        yield
    except (ClientError, ConnectionError, ReadTimeoutError) as exc:
        if is_transient(exc):
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        raise
