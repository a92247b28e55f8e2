"""The champion: the newest Approved model package of the group, as the registry describes it.

The promotion gate compares a candidate with it, and the snapshot asks its lineage (the manifest of the data it
was trained on) which labels are new since.
"""

from __future__ import annotations

from typing import Any


def describe_champion(sagemaker: Any, group: str) -> dict[str, Any] | None:
    """DescribeModelPackage of the newest Approved package of `group`; None before the first approval."""
    listed = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    ).get("ModelPackageSummaryList", [])
    if not listed:
        return None
    arn = str(listed[0]["ModelPackageArn"])
    return {"ModelPackageArn": arn, **sagemaker.describe_model_package(ModelPackageName=arn)}
