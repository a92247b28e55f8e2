"""Account quotas the stacks touch, as a new AWS account has them.

Lambda: an account's functions share its concurrent-executions quota, and a reservation that would leave less
than Lambda's minimum unreserved concurrency is refused with InvalidParameterValueException (the text
CloudFormation passes on when a stack sets ReservedConcurrentExecutions); see infra/aws_limits.py for the
sources. The local default is a new account's quota, 10, which leaves no concurrency to reserve at all;
LOCALCLOUD_LAMBDA_CONCURRENCY_QUOTA declares another (an account whose quota AWS raised, e.g. to 1,000).

moto enforces a floor of 100 only when MOTO_LAMBDA_CONCURRENCY_QUOTA is set; install() replaces its check.
"""

from __future__ import annotations

import os
from typing import Any

from infra.aws_limits import LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY, LAMBDA_NEW_ACCOUNT_CONCURRENCY_QUOTA

_originals: dict[str, Any] = {}


def lambda_concurrency_quota() -> int:
    """LOCALCLOUD_LAMBDA_CONCURRENCY_QUOTA: the account's concurrent executions (default: a new account's)."""
    raw = os.environ.get("LOCALCLOUD_LAMBDA_CONCURRENCY_QUOTA", "")
    try:
        value = int(raw) if raw else LAMBDA_NEW_ACCOUNT_CONCURRENCY_QUOTA
    except ValueError as exc:
        raise ValueError(f"LOCALCLOUD_LAMBDA_CONCURRENCY_QUOTA: {raw!r} is not an integer") from exc
    if value < LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY:
        raise ValueError(
            f"LOCALCLOUD_LAMBDA_CONCURRENCY_QUOTA: {value} is below Lambda's minimum unreserved concurrency "
            f"({LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY})"
        )
    return value


def unreserved_after(reservations: dict[str, int], function_name: str, reserved: int, quota: int) -> int:
    """Unreserved concurrency left when `function_name` reserves `reserved` next to the other reservations."""
    others = sum(n for name, n in reservations.items() if name != function_name)
    return quota - others - reserved


def _put_function_concurrency(self: Any, function_name: str, reserved_concurrency: str) -> str:
    from moto.awslambda.exceptions import InvalidParameterValueException

    target = self.get_function(function_name)
    reservations = {
        fn.function_name: int(fn.reserved_concurrency)
        for fn in self.list_functions()
        if fn.reserved_concurrency is not None
    }
    left = unreserved_after(reservations, target.function_name, int(reserved_concurrency), lambda_concurrency_quota())
    if left < LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY:
        raise InvalidParameterValueException(
            "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution "
            f"below its minimum value of [{LAMBDA_MINIMUM_UNRESERVED_CONCURRENCY}]."
        )
    target.reserved_concurrency = reserved_concurrency
    return str(target.reserved_concurrency)


def install(cloud: Any) -> None:
    from moto.awslambda.models import LambdaBackend

    if not _originals:
        _originals["put_function_concurrency"] = LambdaBackend.put_function_concurrency
        LambdaBackend.put_function_concurrency = _put_function_concurrency  # type: ignore[method-assign]


def uninstall() -> None:
    from moto.awslambda.models import LambdaBackend

    original = _originals.pop("put_function_concurrency", None)
    if original is not None:
        LambdaBackend.put_function_concurrency = original  # type: ignore[method-assign]
