"""TrainingSourceBundle: the training code as SageMaker script mode wants it, a sourcedir tar.gz shipped as an S3 asset.

The bundle holds training/, functions/shared/ and contracts/ (train.py imports the shared contract loader). It is
built byte-for-byte reproducibly (sorted members, zeroed times and owners, gzip without a timestamp), so an unchanged
tree gives an unchanged asset hash and no new upload, and its digest serves as the code version in model lineage.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from infra.constructs.platform_function import REPO_ROOT

BUNDLE_GLOBS: tuple[str, ...] = (
    "training/*.py",
    "training/models/*.py",
    "functions/__init__.py",
    "functions/shared/*.py",
    "contracts/**/*.json",
)
ENTRY_POINT = "training/train.py"


def bundle_files(root: Path, globs: Iterable[str] = BUNDLE_GLOBS) -> list[Path]:
    files = {p for pattern in globs for p in root.glob(pattern) if p.is_file() and "__pycache__" not in p.parts}
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def build_source_tarball(root: Path, globs: Iterable[str] = BUNDLE_GLOBS) -> bytes:
    """The gzip'd tar of the bundle; identical input files give identical bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in bundle_files(root, globs):
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


class TrainingSourceBundle(Construct):
    """The S3 asset of the training source; `s3_uri` goes to sagemaker_submit_directory, `code_version` to lineage."""

    def __init__(self, scope: Construct, construct_id: str, *, root: Path = REPO_ROOT) -> None:
        super().__init__(scope, construct_id)
        payload = build_source_tarball(root)
        self.code_version = f"sha256:{hashlib.sha256(payload).hexdigest()[:16]}"
        # CDK stages the file into the cloud assembly, so the temporary copy only has to outlive synthesis.
        staging = Path(tempfile.mkdtemp(prefix="training-source-")) / "sourcedir.tar.gz"
        staging.write_bytes(payload)
        self.asset = s3_assets.Asset(self, "Asset", path=str(staging))
        self.s3_uri = self.asset.s3_object_url
        self.entry_point = ENTRY_POINT
