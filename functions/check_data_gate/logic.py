"""The data gate: is this snapshot fit to train on, on its own and compared with the previous snapshot?

Checks row count, the null rate of every contract column (zero where the contract forbids nulls), the label's
positive rate, and the change of each since the previous accepted snapshot. Every failed check is a reason;
the workflow stops before paying for a training job when any fails.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

from functions.shared.contract import DataContract
from functions.shared.policy import PolicyError, Range, policy_from_dict
from functions.shared.settings import load_settings

LATEST_PROFILE_KEY = "training/latest-data-profile.json"


_SHARE = Range(0, 1)


@dataclass(frozen=True)
class DataGatePolicy:
    min_rows: Annotated[int, Range(1, 10_000_000_000)] = 1000
    max_nullable_null_rate: Annotated[float, _SHARE] = 0.5
    min_positive_rate: Annotated[float, _SHARE] = 0.01
    max_positive_rate: Annotated[float, _SHARE] = 0.99
    # Compared with the previous accepted snapshot.
    max_positive_rate_shift: Annotated[float, _SHARE] = 0.15
    max_null_rate_increase: Annotated[float, _SHARE] = 0.2
    min_row_ratio: Annotated[float, _SHARE] = 0.5

    def __post_init__(self) -> None:
        if self.min_positive_rate > self.max_positive_rate:
            raise PolicyError(
                f"min_positive_rate: {self.min_positive_rate} is above max_positive_rate {self.max_positive_rate}"
            )


@dataclass(frozen=True)
class DataGateSettings:
    artifacts_bucket: str
    dataset: str
    policy: DataGatePolicy

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DataGateSettings:
        source = os.environ if env is None else env
        policy = policy_from_dict(DataGatePolicy, json.loads(source.get("DATA_GATE_POLICY") or "{}"))
        return load_settings(cls, source, policy=policy)


@dataclass
class DataProfile:
    run_id: str
    data_version: str
    contract_ref: str
    row_count: int = 0
    positive_count: int = 0
    null_counts: dict[str, int] = field(default_factory=dict)
    missing_columns: list[str] = field(default_factory=list)

    @property
    def positive_rate(self) -> float:
        return self.positive_count / self.row_count if self.row_count else 0.0

    def null_rate(self, column: str) -> float:
        return self.null_counts.get(column, 0) / self.row_count if self.row_count else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["positive_rate"] = round(self.positive_rate, 6)
        out["null_rates"] = {c: round(self.null_rate(c), 6) for c in sorted(self.null_counts)}
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> DataProfile:
        return cls(
            run_id=str(raw.get("run_id", "")),
            data_version=str(raw.get("data_version", "")),
            contract_ref=str(raw.get("contract_ref", "")),
            row_count=int(raw.get("row_count", 0)),
            positive_count=int(raw.get("positive_count", 0)),
            null_counts={str(k): int(v) for k, v in dict(raw.get("null_counts", {})).items()},
            missing_columns=list(raw.get("missing_columns", [])),
        )


@dataclass(frozen=True)
class DataGateResult:
    passed: bool
    reasons: list[str]
    row_count: int
    positive_rate: float
    previous_run_id: str | None
    profile_uri: str

    @property
    def summary(self) -> str:
        if self.passed:
            return f"data gate passed: {self.row_count} rows, positive rate {self.positive_rate:.3f}"
        return "data gate rejected the snapshot: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary}


def profile_table(table: Any, contract: DataContract, profile: DataProfile) -> None:
    """Add one Parquet table's counts to the profile (a pyarrow Table; counted without pandas)."""
    import pyarrow.compute as pc

    profile.row_count += int(table.num_rows)
    present = set(table.column_names)
    for column in contract.columns:
        if column not in present:
            if column not in profile.missing_columns:
                profile.missing_columns.append(column)
            continue
        profile.null_counts[column] = profile.null_counts.get(column, 0) + int(table.column(column).null_count)
    if contract.label.name in present:
        label = table.column(contract.label.name)
        hits = pc.sum(pc.equal(pc.cast(label, "int64"), contract.label.positive_value)).as_py()
        profile.positive_count += int(hits or 0)


def evaluate_data_gate(
    profile: DataProfile, previous: DataProfile | None, contract: DataContract, policy: DataGatePolicy
) -> list[str]:
    """Every reason the snapshot is unfit; an empty list means it passes."""
    reasons: list[str] = []
    if profile.row_count < policy.min_rows:
        reasons.append(f"row count {profile.row_count} is below the minimum {policy.min_rows}")
    for column in profile.missing_columns:
        reasons.append(f"column {column} of contract {contract.ref} is missing from the snapshot")
    if profile.row_count == 0:
        return reasons
    nullable = {f.name: f.nullable for f in contract.features}
    for column in contract.columns:
        if column in profile.missing_columns:
            continue
        rate = profile.null_rate(column)
        if not nullable.get(column, False) and rate > 0:
            reasons.append(f"column {column} has null rate {rate:.4f} but the contract forbids nulls")
        elif rate > policy.max_nullable_null_rate:
            reasons.append(f"column {column} null rate {rate:.3f} exceeds {policy.max_nullable_null_rate:.3f}")
    rate = profile.positive_rate
    if not policy.min_positive_rate <= rate <= policy.max_positive_rate:
        reasons.append(
            f"label {contract.label.name} positive rate {rate:.4f} is outside "
            f"[{policy.min_positive_rate}, {policy.max_positive_rate}]"
        )
    if previous is not None and previous.row_count > 0:
        ratio = profile.row_count / previous.row_count
        if ratio < policy.min_row_ratio:
            reasons.append(
                f"row count fell to {profile.row_count} from {previous.row_count} in the previous snapshot "
                f"({previous.run_id}), below {policy.min_row_ratio:.0%} of it"
            )
        shift = abs(rate - previous.positive_rate)
        if shift > policy.max_positive_rate_shift:
            reasons.append(
                f"label positive rate moved {shift:.3f} (from {previous.positive_rate:.3f} to {rate:.3f}) since the "
                f"previous snapshot, more than {policy.max_positive_rate_shift:.3f}"
            )
        for column in contract.columns:
            if column in profile.missing_columns:
                continue
            increase = profile.null_rate(column) - previous.null_rate(column)
            if increase > policy.max_null_rate_increase:
                reasons.append(
                    f"column {column} null rate rose by {increase:.3f} since the previous snapshot, "
                    f"more than {policy.max_null_rate_increase:.3f}"
                )
    return reasons


def _snapshot_keys(manifest: Mapping[str, Any]) -> Iterable[str]:
    """Each snapshot file once: a partition's objects become one file of its labelled rows (none when it has none)."""
    return list(dict.fromkeys(str(o["snapshot_key"]) for o in manifest.get("objects", []) if o.get("snapshot_key")))


def _read_json(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    loaded: dict[str, Any] = json.loads(body)
    return loaded


def check_data_gate(
    run_id: str, manifest_key: str, *, s3: Any, contract: DataContract, settings: DataGateSettings
) -> DataGateResult:
    import pyarrow.parquet as pq

    bucket = settings.artifacts_bucket
    manifest = _read_json(s3, bucket, manifest_key)
    if manifest is None:
        raise FileNotFoundError(f"manifest s3://{bucket}/{manifest_key} does not exist")
    profile = DataProfile(run_id=run_id, data_version=str(manifest["data_version"]), contract_ref=contract.ref)
    for key in _snapshot_keys(manifest):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        profile_table(pq.read_table(io.BytesIO(body)), contract, profile)
    previous_raw = _read_json(s3, bucket, LATEST_PROFILE_KEY)
    previous = DataProfile.from_dict(previous_raw) if previous_raw else None
    reasons = evaluate_data_gate(profile, previous, contract, settings.policy)
    profile_key = f"{manifest_key.rsplit('/', 1)[0]}/data_profile.json"
    body = json.dumps({**profile.to_dict(), "passed": not reasons, "reasons": reasons}, sort_keys=True).encode()
    s3.put_object(Bucket=bucket, Key=profile_key, Body=body, ContentType="application/json")
    if not reasons:
        s3.put_object(Bucket=bucket, Key=LATEST_PROFILE_KEY, Body=body, ContentType="application/json")
    return DataGateResult(
        passed=not reasons,
        reasons=reasons,
        row_count=profile.row_count,
        positive_rate=round(profile.positive_rate, 6),
        previous_run_id=previous.run_id if previous else None,
        profile_uri=f"s3://{bucket}/{profile_key}",
    )
