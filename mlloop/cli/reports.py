"""Fetch a version's evaluation report and model card, and the stage's latest drift report, to a folder."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from urllib.parse import urlparse

from mlloop.cli.platform import OperatorError, Platform
from mlloop.cli.registry import get_version

DRIFT_REPORTS_PREFIX = "drift-reports/"
MODEL_TARBALL_MEMBERS = ("evaluation.json", "model_card.json")


def _split(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def fetch_reports(platform: Platform, version: str, out_dir: Path) -> dict[str, Path]:
    package = get_version(platform, version)
    sm, s3 = platform.client("sagemaker"), platform.client("s3")
    described = sm.describe_model_package(ModelPackageName=package.arn)
    containers = described.get("InferenceSpecification", {}).get("Containers", [])
    if not containers or not containers[0].get("ModelDataUrl"):
        raise OperatorError(f"v{package.version} has no model artifact to read reports from")
    target = out_dir / package.label
    target.mkdir(parents=True, exist_ok=True)
    bucket, key = _split(containers[0]["ModelDataUrl"])
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    fetched: dict[str, Path] = {}
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        names = set(archive.getnames())
        for member in MODEL_TARBALL_MEMBERS:
            for candidate in (member, f"./{member}"):
                if candidate in names:
                    extracted = archive.extractfile(candidate)
                    if extracted is not None:
                        path = target / member
                        path.write_bytes(extracted.read())
                        fetched[member] = path
                    break
        for name in sorted(names):
            if name.lstrip("./").startswith("plots/") and name.endswith(".svg"):
                extracted = archive.extractfile(name)
                if extracted is not None:
                    path = target / name.lstrip("./")
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(extracted.read())
                    fetched[name.lstrip("./")] = path
    fetched.update(_latest_drift_report(platform, target))
    return fetched


def _latest_drift_report(platform: Platform, target: Path) -> dict[str, Path]:
    s3 = platform.client("s3")
    bucket = platform.bucket("artifacts")
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=DRIFT_REPORTS_PREFIX):
        objects.extend(page.get("Contents", []))
    reports = [o for o in objects if o["Key"].endswith(".json")]
    if not reports:
        return {}
    latest = max(reports, key=lambda o: (o["LastModified"], o["Key"]))
    stem = latest["Key"][: -len(".json")]
    fetched: dict[str, Path] = {}
    for obj in objects:
        if obj["Key"].startswith(stem):
            path = target / ("drift_report" + obj["Key"][len(stem) :])
            path.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
            fetched[path.name] = path
    return fetched
