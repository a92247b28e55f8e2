"""Model registry operations: versions, approval with a recorded reason, and choosing a rollback target."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlloop.cli.platform import OperatorError, Platform

APPROVED = "Approved"
REJECTED = "Rejected"
PENDING = "PendingManualApproval"


@dataclass(frozen=True)
class PackageVersion:
    version: int
    arn: str
    approval: str
    created: datetime
    metadata: dict[str, str]

    @property
    def label(self) -> str:
        return f"v{self.version}"


def _parse_version(text: str) -> int:
    digits = text.lower().lstrip("v")
    if not digits.isdigit():
        raise OperatorError(f"version {text!r} is not a model package version (expected e.g. 3 or v3)")
    return int(digits)


def list_versions(platform: Platform) -> list[PackageVersion]:
    """Every package of the stage's group, newest first, with its metadata."""
    sm = platform.client("sagemaker")
    group = platform.config.model_package_group
    summaries: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending"}
    try:
        while True:
            page = sm.list_model_packages(**kwargs)
            summaries.extend(page["ModelPackageSummaryList"])
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    except sm.exceptions.ClientError as exc:
        raise OperatorError(f"cannot list model packages of {group}: {exc}") from exc
    versions = []
    for summary in summaries:
        described = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        versions.append(
            PackageVersion(
                version=int(summary["ModelPackageVersion"]),
                arn=summary["ModelPackageArn"],
                approval=str(described.get("ModelApprovalStatus") or PENDING),
                created=summary["CreationTime"],
                metadata=dict(described.get("CustomerMetadataProperties") or {}),
            )
        )
    return sorted(versions, key=lambda v: v.version, reverse=True)


def get_version(platform: Platform, version: str) -> PackageVersion:
    wanted = _parse_version(version)
    for candidate in list_versions(platform):
        if candidate.version == wanted:
            return candidate
    raise OperatorError(f"no version v{wanted} in model package group {platform.config.model_package_group}")


def update_package(
    platform: Platform, package: PackageVersion, *, approval: str, note: str, metadata: dict[str, str]
) -> None:
    """Change approval and merge metadata, passing every field SageMaker would otherwise reset."""
    merged = {**package.metadata, **metadata}
    platform.client("sagemaker").update_model_package(
        ModelPackageArn=package.arn,
        ModelApprovalStatus=approval,
        ApprovalDescription=note[:1024],
        CustomerMetadataProperties=merged,
    )


def set_approval(platform: Platform, version: str, *, approve: bool, reason: str) -> PackageVersion:
    if not reason.strip():
        raise OperatorError("a reason is required: it is recorded in the registry")
    package = get_version(platform, version)
    status = APPROVED if approve else REJECTED
    now = datetime.now(UTC).isoformat(timespec="seconds")
    verb = "approved" if approve else "rejected"
    update_package(
        platform,
        package,
        approval=status,
        note=f"{verb} by {platform.actor}: {reason}",
        metadata={f"{verb}_by": platform.actor, f"{verb}_at": now, f"{verb}_reason": reason},
    )
    return get_version(platform, str(package.version))


def choose_rollback_target(
    versions: list[PackageVersion], serving_version: int | None, named: str | None
) -> PackageVersion:
    """The named version, or the newest approved version older than the one serving. Never a rejected one."""
    if named is not None:
        wanted = _parse_version(named)
        match = next((v for v in versions if v.version == wanted), None)
        if match is None:
            raise OperatorError(f"no version v{wanted} in the registry")
        if match.approval == REJECTED:
            why = match.metadata.get("rejected_reason", "no reason recorded")
            raise OperatorError(f"refusing to roll back to v{wanted}: it was rejected ({why})")
        if match.approval != APPROVED:
            raise OperatorError(
                f"refusing to roll back to v{wanted}: its approval is {match.approval}; approve it first"
            )
        if match.version == serving_version:
            raise OperatorError(f"v{wanted} is already serving")
        return match
    older = [v for v in versions if v.approval == APPROVED and (serving_version is None or v.version < serving_version)]
    if not older:
        raise OperatorError("no earlier approved version to roll back to")
    return older[0]
