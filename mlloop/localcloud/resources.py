"""What resource creators and the local front ends need from the cloud and from the deployer, as protocols.

The composition root (`server.LocalCloud`) imports the deployer and the API Gateway; the deployer imports the API
Gateway's resource creators; none of them imports back. They reach the cloud through `CloudServices` and the stack
being deployed through `StackContext`, which `LocalCloud` and `deployer.StackDeployer` satisfy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Any, Protocol

from mlloop.localcloud.lambdas import LambdaRuntime

# CloudFormation's generated physical names end in a 12-character suffix; deterministic here so reruns match.
_SUFFIX_LENGTH = 12


class CloudServices(Protocol):
    """The running local cloud, as the deployer and the front ends use it."""

    account_id: str
    region: str
    lambdas: LambdaRuntime | None

    def client(self, service: str, region: str | None = None) -> Any: ...

    def fire_schedule(self, rule_name: str, *, wait: bool = True) -> dict[str, Any]: ...


class StackContext(Protocol):
    """The stack a resource is created in."""

    stack: str
    region: str
    definitions: dict[str, Any]

    def client(self, service: str) -> Any: ...

    def report(self, logical_id: str, resource_type: str, status: str, reason: str) -> None: ...


# A resource type's creator: (stack, logical id, resolved properties) -> (physical id, attributes for GetAtt).
Creator = Callable[[Any, str, dict[str, Any]], tuple[Any, dict[str, Any]]]


def name_suffix(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:_SUFFIX_LENGTH].upper()


def generated_name(stack: str, logical_id: str, max_length: int = 64, *, lower: bool = False) -> str:
    """A CloudFormation-style physical name: stack-logicalid-SUFFIX, cut to fit the service's limit."""
    suffix = name_suffix(stack, logical_id)
    base = f"{stack}-{logical_id}"[: max_length - len(suffix) - 1]
    name = f"{base}-{suffix}"
    return re.sub(r"[^a-z0-9.-]", "-", name.lower()) if lower else name
