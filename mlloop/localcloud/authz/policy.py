"""IAM policy evaluation with AWS's logic, for the principals that act in the embedded AWS.

Sources: IAM User Guide, "Policy evaluation logic" (explicit Deny wins; within an account an Allow in either
the identity-based or the resource-based policy suffices, except for KMS keys, whose key policy must allow the
principal or delegate to the account), "IAM JSON policy elements: Condition operators" (IfExists, Null,
ForAnyValue/ForAllValues, negated operators on an absent key) and "Principal" (an account principal in a
resource policy delegates to identity policies). A condition key or operator this module does not understand
is *not evaluable*: the condition counts as unmet (so an Allow never follows from it) and the key is recorded
for the deployment report.
"""

from __future__ import annotations

import fnmatch
import json
import operator as op
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any

# Keys the request path supplies (global ones on every request, service ones per operation, see actions.py).
# A policy key outside this set is not evaluable.
KNOWN_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:SecureTransport",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:PrincipalType",
        "aws:PrincipalServiceName",
        "aws:SourceAccount",
        "aws:SourceArn",
        "aws:SourceOwner",
        "aws:RequestedRegion",
        "aws:userid",
        "aws:ViaAWSService",
        "s3:prefix",
        "s3:delimiter",
        "s3:x-amz-server-side-encryption",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "iam:PassedToService",
        "kms:ViaService",
        "kms:CallerAccount",
        "kms:EncryptionContextKeys",
        "cloudwatch:namespace",
    )
)


class Decision(StrEnum):
    ALLOWED = "allowed"
    EXPLICIT_DENY = "explicit deny"
    IMPLICIT_DENY = "implicit deny"


@dataclass(frozen=True)
class Principal:
    """Who makes a request: an assumed role's session, the account's administrator or an AWS service."""

    arn: str  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION, arn:aws:iam::ACCOUNT:root, or the service's name
    account: str
    role_arn: str = ""  # the role a session belongs to
    service: str = ""  # "cloudwatch.amazonaws.com" for a service principal

    @property
    def is_service(self) -> bool:
        return bool(self.service)

    @property
    def is_admin(self) -> bool:
        return self.arn.endswith(":root")

    @property
    def name(self) -> str:
        """The report's name for this principal: the role, the service, or the account's administrator."""
        if self.service:
            return self.service
        if self.role_arn:
            return self.role_arn.rsplit("/", 1)[-1]
        return "administrator"


@dataclass
class Request:
    """One authorisation question: may `principal` perform `action` on `resource`, given the context keys."""

    principal: Principal
    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)  # condition key (any case) -> str | bool | list[str]

    def value(self, key: str) -> Any:
        lowered = key.lower()
        for name, value in self.context.items():
            if name.lower() == lowered:
                return value
        return None


@dataclass
class Outcome:
    allows: bool = False
    denies: bool = False
    unknown: set[str] = field(default_factory=set)  # condition keys, operators or principals not evaluable


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


@lru_cache(maxsize=4096)
def _wildcard(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    # IAM wildcards: * any run of characters, ? one character; policy variables are not used by these templates.
    translated = fnmatch.translate(pattern)
    return re.compile(translated, 0 if case_sensitive else re.IGNORECASE)


def matches(pattern: str, value: str, *, case_sensitive: bool = True) -> bool:
    if "[" in pattern:  # fnmatch would read [..] as a character class; IAM does not
        pattern = pattern.replace("[", "[[]")
    return bool(_wildcard(pattern, case_sensitive).match(value))


def _action_matches(patterns: Iterable[str], action: str) -> bool:
    # Action names are case-insensitive (IAM User Guide, "Action").
    return any(matches(p, action, case_sensitive=False) for p in patterns)


def _resource_matches(patterns: Iterable[str], resource: str) -> bool:
    return any(matches(p, resource) for p in patterns)


def _principal_matches(element: Any, request: Request, outcome: Outcome, *, effect: str) -> bool:
    """Whether a resource policy's Principal names the caller. An account principal in an Allow delegates to
    the caller's identity policies (it does not allow by itself); in a Deny it covers the account's principals."""
    principal = request.principal
    if element == "*":
        return True
    if not isinstance(element, Mapping):
        outcome.unknown.add(f"principal {element!r}")
        return False
    for kind, values in element.items():
        for value in _as_list(values):
            if kind == "AWS":
                if value == "*":
                    return True
                if value in (principal.account, f"arn:aws:iam::{principal.account}:root"):
                    if effect == "Deny" and not principal.is_service:
                        return True
                    continue  # delegation to identity policies, handled by the caller
                if principal.role_arn and value == principal.role_arn:
                    return True
                if value == principal.arn:
                    return True
            elif kind == "Service":
                if principal.service and value == principal.service:
                    return True
            else:
                outcome.unknown.add(f"principal {kind}:{value}")
    return False


def delegates_to_account(document: Mapping[str, Any], request: Request) -> bool:
    """Whether a key policy allows the account principal the action (KMS: 'enable IAM policies')."""
    for statement in _as_list(document.get("Statement")):
        if statement.get("Effect") != "Allow":
            continue
        principals = statement.get("Principal")
        names = _as_list(principals.get("AWS")) if isinstance(principals, Mapping) else []
        account = request.principal.account
        if not any(n in (account, f"arn:aws:iam::{account}:root") for n in names):
            continue
        if _statement_applies(statement, request, Outcome(), check_principal=False):
            return True
    return False


def _statement_applies(
    statement: Mapping[str, Any], request: Request, outcome: Outcome, *, check_principal: bool
) -> bool:
    if "Action" in statement and not _action_matches(_as_list(statement["Action"]), request.action):
        return False
    if "NotAction" in statement and _action_matches(_as_list(statement["NotAction"]), request.action):
        return False
    if "Resource" in statement and not _resource_matches(_as_list(statement["Resource"]), request.resource):
        return False
    if "NotResource" in statement and _resource_matches(_as_list(statement["NotResource"]), request.resource):
        return False
    if check_principal:
        effect = statement.get("Effect", "")
        if "Principal" in statement and not _principal_matches(statement["Principal"], request, outcome, effect=effect):
            return False
        if "NotPrincipal" in statement and _principal_matches(
            statement["NotPrincipal"], request, outcome, effect="Allow"
        ):
            return False
    return _conditions_hold(statement.get("Condition") or {}, request, outcome)


def evaluate(document: Mapping[str, Any] | str, request: Request, *, resource_policy: bool = False) -> Outcome:
    """Whether any statement of one policy allows or denies the request."""
    parsed: Mapping[str, Any] = json.loads(document) if isinstance(document, str) else document
    outcome = Outcome()
    for statement in _as_list(parsed.get("Statement")):
        if not _statement_applies(statement, request, outcome, check_principal=resource_policy):
            continue
        if statement.get("Effect") == "Deny":
            outcome.denies = True
        elif statement.get("Effect") == "Allow":
            outcome.allows = True
    return outcome


def decide(
    identity_policies: Sequence[Mapping[str, Any]],
    resource_policy: Mapping[str, Any] | None,
    request: Request,
    *,
    key_policy: bool = False,
) -> tuple[Decision, str, set[str]]:
    """AWS's decision for a principal of the resource's own account, with the kind of policy that decided."""
    unknown: set[str] = set()
    identity = [evaluate(d, request) for d in identity_policies]
    resource = evaluate(resource_policy, request, resource_policy=True) if resource_policy is not None else None
    for outcome in [*identity, *([resource] if resource else [])]:
        unknown |= outcome.unknown
    if resource is not None and resource.denies:
        return Decision.EXPLICIT_DENY, "resource-based policy", unknown
    if any(o.denies for o in identity):
        return Decision.EXPLICIT_DENY, "identity-based policy", unknown
    identity_allows = any(o.allows for o in identity)
    if key_policy:
        # A KMS key policy must allow the principal itself, or delegate to the account's IAM policies.
        assert resource_policy is not None
        if (resource is not None and resource.allows) or (
            identity_allows and delegates_to_account(resource_policy, request)
        ):
            return Decision.ALLOWED, "", unknown
        delegated = delegates_to_account(resource_policy, request)
        return Decision.IMPLICIT_DENY, "identity-based policy" if delegated else "resource-based policy", unknown
    if identity_allows or (resource is not None and resource.allows):
        return Decision.ALLOWED, "", unknown
    # A service principal has no identity policies: only the resource's policy could have allowed it.
    kind = "resource-based policy" if request.principal.is_service else "identity-based policy"
    return Decision.IMPLICIT_DENY, kind, unknown


# ------------------------------------------------------------------------------------------------ conditions
_STRING = {
    "StringEquals": (False, False, False),  # (negated, like, ignore case)
    "StringNotEquals": (True, False, False),
    "StringEqualsIgnoreCase": (False, False, True),
    "StringNotEqualsIgnoreCase": (True, False, True),
    "StringLike": (False, True, False),
    "StringNotLike": (True, True, False),
    "ArnEquals": (False, True, False),  # ARN operators accept wildcards in each segment
    "ArnLike": (False, True, False),
    "ArnNotEquals": (True, True, False),
    "ArnNotLike": (True, True, False),
}
_NUMERIC: dict[str, Callable[[float, float], bool]] = {
    "NumericEquals": op.eq,
    "NumericNotEquals": op.ne,
    "NumericLessThan": op.lt,
    "NumericLessThanEquals": op.le,
    "NumericGreaterThan": op.gt,
    "NumericGreaterThanEquals": op.ge,
}


def _conditions_hold(conditions: Mapping[str, Any], request: Request, outcome: Outcome) -> bool:
    return all(
        _condition_holds(operator, key, _as_list(expected), request, outcome)
        for operator, block in conditions.items()
        for key, expected in block.items()
    )


def _condition_holds(operator: str, key: str, expected: list[Any], request: Request, outcome: Outcome) -> bool:
    if key.lower() not in KNOWN_KEYS and not key.lower().startswith("aws:principaltag/"):
        outcome.unknown.add(f"condition key {key}")
        return False
    qualifier = ""
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    actual = request.value(key)
    if base == "Null":
        want_absent = str(expected[0]).lower() == "true"
        return (actual is None) == want_absent
    if actual is None:
        if if_exists:
            return True
        # An absent key matches no value: a positive operator fails, a negated one holds.
        negated = (base in _STRING and _STRING[base][0]) or base == "NumericNotEquals"
        return bool(negated) or qualifier == "ForAllValues"
    values = [str(v).lower() if isinstance(v, bool) else str(v) for v in _as_list(actual)]
    wanted = [str(v) for v in expected]
    if base == "Bool":
        return any(v.lower() == w.lower() for v in values for w in wanted)
    if base in _STRING:
        negated, like, ignore_case = _STRING[base]

        def one(value: str) -> bool:
            if like:
                return any(matches(w, value, case_sensitive=not ignore_case) for w in wanted)
            if ignore_case:
                return any(value.lower() == w.lower() for w in wanted)
            return value in wanted

        # Single-valued keys and ForAnyValue: any value matches; ForAllValues: every value does.
        result = all(one(v) for v in values) if qualifier == "ForAllValues" else any(one(v) for v in values)
        return not result if negated else result
    if base in _NUMERIC:
        compare = _NUMERIC[base]
        try:
            return any(compare(float(v), float(w)) for v in values for w in wanted)
        except ValueError:
            return False
    outcome.unknown.add(f"condition operator {operator}")
    return False


_OPERATORS = {*_STRING, *_NUMERIC, "Bool", "Null"}


def unevaluable(document: Mapping[str, Any]) -> list[str]:
    """What in a policy this evaluator cannot evaluate (it counts as unmet): for the deployment report."""
    found: set[str] = set()
    for statement in _as_list(document.get("Statement")):
        for operator, block in (statement.get("Condition") or {}).items():
            base = operator.split(":", 1)[-1].removesuffix("IfExists")
            if base not in _OPERATORS:
                found.add(f"condition operator {operator}")
            for key in block:
                if key.lower() not in KNOWN_KEYS and not key.lower().startswith("aws:principaltag/"):
                    found.add(f"condition key {key}")
        for element in ("Principal", "NotPrincipal"):
            principal = statement.get(element)
            if isinstance(principal, Mapping):
                found.update(f"principal {kind}" for kind in principal if kind not in ("AWS", "Service"))
    return sorted(found)
