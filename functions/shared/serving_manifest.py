"""The serving manifest: what the endpoint runs, written by the deploy function once a deploy is verified.

The front door validates requests against the contract in it and answers with its fallback model; batch
scoring and the operator CLI read it to know the live model. One small JSON object in the artifacts bucket,
so readers need a single GET (and a conditional one to notice a new deploy).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


def manifest_key(endpoint_name: str) -> str:
    return f"serving/{endpoint_name}/manifest.json"


@dataclass(frozen=True)
class ServingManifest:
    endpoint_name: str
    model_version: str
    model_package_arn: str
    endpoint_config_name: str
    variant_name: str
    model_name: str
    contract: dict[str, Any]
    threshold: float
    deployed_at: str
    fallback_model: dict[str, Any] | None = None
    history: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ServingManifest:
        return cls(
            endpoint_name=str(raw["endpoint_name"]),
            model_version=str(raw["model_version"]),
            model_package_arn=str(raw["model_package_arn"]),
            endpoint_config_name=str(raw["endpoint_config_name"]),
            variant_name=str(raw["variant_name"]),
            model_name=str(raw["model_name"]),
            contract=dict(raw["contract"]),
            threshold=float(raw["threshold"]),
            deployed_at=str(raw["deployed_at"]),
            fallback_model=dict(raw["fallback_model"]) if raw.get("fallback_model") else None,
            history=[dict(h) for h in raw.get("history", [])],
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ServingManifest:
        return cls.from_dict(json.loads(text))


def load_manifest(s3: Any, bucket: str, endpoint_name: str) -> ServingManifest | None:
    """The endpoint's manifest, or None before its first deploy (NoSuchKey needs s3:ListBucket, else 403)."""
    try:
        body = s3.get_object(Bucket=bucket, Key=manifest_key(endpoint_name))["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return ServingManifest.from_json(body)
