"""Package sets that stand for the Lambda runtime's own packages and the managed layers, built once into a cache.

Each set is a requirements file in `packages/` (with where its contents come from), installed with pip into
`.localcloud/envs/<set>-<hash of the file>/python`, the way a layer's zip holds `python/`. `make setup` builds them
(`python -m mlloop.localcloud.execution.envs`); a set changes only when its file changes. A layer is known by its ARN
without region and account (`AWSSDKPandas-Python311:22`), since the managed layers carry the same content in every
region.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
PACKAGES = Path(__file__).resolve().parent / "packages"
CACHE_ROOT = Path(os.environ.get("LOCALCLOUD_ENVS", REPO_ROOT / ".localcloud" / "envs"))
RUNTIME_SET = "runtime-python3.11"
_REMOVE_PREFIX = "# remove:"
_UPLOADED_PREFIX = "# uploaded-prior-to:"
_build_lock = threading.Lock()


class PackageSetError(RuntimeError):
    """A package set could not be built (pip failed): the message carries pip's output."""


@dataclass(frozen=True)
class PackageSet:
    name: str
    requirements: Path

    @property
    def directory(self) -> Path:
        digest = hashlib.sha256(self.requirements.read_bytes()).hexdigest()[:12]
        return CACHE_ROOT / f"{self.name}-{digest}" / "python"

    @property
    def built(self) -> bool:
        return (self.directory.parent / "installed.txt").exists()

    def removed_packages(self) -> list[str]:
        """Packages the real layer build deletes after installing (they come from the runtime)."""
        return self._directive(_REMOVE_PREFIX)

    def _directive(self, prefix: str) -> list[str]:
        return [
            word
            for line in self.requirements.read_text().splitlines()
            if line.startswith(prefix)
            for word in line[len(prefix) :].split()
        ]

    def build(self) -> Path:
        """Install the set (once); returns the folder to put on the import path."""
        with _build_lock:
            if self.built:
                return self.directory
            staging = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=_ensure(CACHE_ROOT)))
            target = staging / "python"
            command = [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "--only-binary=:all:",
                "--target",
                str(target),
                "-r",
                str(self.requirements),
            ]
            # Dependencies resolve as they did on the day the layer was built, not to today's releases.
            for moment in self._directive(_UPLOADED_PREFIX):
                command += ["--uploaded-prior-to", moment]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                shutil.rmtree(staging, ignore_errors=True)
                raise PackageSetError(f"building {self.name} failed:\n{result.stdout}\n{result.stderr}")
            for package in self.removed_packages():
                for path in target.glob(f"{package}*"):
                    if path.name == package or path.name.startswith(f"{package}-"):
                        shutil.rmtree(path, ignore_errors=True)
            shutil.rmtree(target / "bin", ignore_errors=True)
            installed = sorted(p.name.removesuffix(".dist-info") for p in target.glob("*.dist-info"))
            (staging / "installed.txt").write_text("\n".join(installed) + "\n")
            final = self.directory.parent
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
            return self.directory

    def installed(self) -> list[str]:
        """`name-version` of every distribution in the built set."""
        return (self.directory.parent / "installed.txt").read_text().split()


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def layer_key(layer_arn: str) -> str:
    """`name:version` of a layer version ARN (arn:aws:lambda:<region>:<account>:layer:<name>:<version>)."""
    parts = layer_arn.split(":")
    if len(parts) != 8 or parts[5] != "layer":
        raise ValueError(f"not a layer version ARN: {layer_arn}")
    return f"{parts[6]}:{parts[7]}"


def runtime_set() -> PackageSet:
    return PackageSet(RUNTIME_SET, PACKAGES / f"{RUNTIME_SET}.txt")


def layer_set(layer_arn: str) -> PackageSet | None:
    """The package set emulating a layer, or None for a layer this cloud does not know."""
    name, version = layer_key(layer_arn).split(":")
    requirements = PACKAGES / f"layer-{name}-{version}.txt"
    return PackageSet(f"layer-{name}-{version}", requirements) if requirements.exists() else None


def all_sets() -> list[PackageSet]:
    sets = [runtime_set()]
    sets += [PackageSet(p.stem, p) for p in sorted(PACKAGES.glob("layer-*.txt"))]
    return sets


def main() -> None:
    for package_set in all_sets():
        print(f"{package_set.name}: {package_set.build()}")
        print("  " + " ".join(package_set.installed()))


if __name__ == "__main__":
    main()
