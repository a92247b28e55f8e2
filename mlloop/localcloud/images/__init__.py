"""The SageMaker framework images' Python environments, built once into a cache under the repository.

A training job or an endpoint variant of the local cloud runs in the environment of the image its
TrainingImage / Model Image names, never in the project's virtualenv: a script importing a package the
image lacks fails there as it fails on SageMaker. Each image's package list is kept beside this file
with where it came from (the image's own lock file), and `build_all()` (`make setup`, through
`python -m mlloop.localcloud.images build`) installs it into `.localcloud/envs/<image>/venv`.

The image's Python is 3.12. Debian's package registry has no 3.12 for this machine and PyPI ships no
interpreters, so the build takes a Python 3.12 already on the machine (pyenv's) when there is one and
otherwise the machine's own Python; `manifest.json` records which, and the deployment report says so.

A job or a variant gets an overlay environment of its own (`overlay()`): a venv without packages whose
site-packages point at the image's through a .pth file, so what a bundle's requirements.txt installs
(the toolkit runs `python -m pip install -r requirements.txt`) lands in that job's overlay, not in the
shared image environment, as each SageMaker container has its own file system.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

_HERE = Path(__file__).resolve().parent
REPOSITORY_ROOT = _HERE.parents[2]
ENVS_DIR = REPOSITORY_ROOT / ".localcloud" / "envs"
_SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
_IMAGE_URI = re.compile(r"^(?:[^/]+/)?(?P<repository>[^:@/]+)(?::(?P<tag>[^@]+))?")


class ImageNotEmulatedError(LookupError):
    """The local cloud has no environment for this image URI."""


class ImageEnvironmentMissingError(RuntimeError):
    """The image's environment has not been built (`make setup` builds it)."""


@dataclass(frozen=True)
class ImageEnvironment:
    """One SageMaker framework image: its package list, its Python and the variables its Dockerfile sets."""

    name: str
    repository: str
    tag_prefix: str
    python_version: str
    lock_file: Path
    # The Dockerfile's ENV lines; paths under /opt/ml are rewritten to the job's or host's own root.
    container_environment: dict[str, str] = field(default_factory=dict)
    # sed patches the Dockerfile applies to installed files: (site-packages relative path, old, new).
    patches: tuple[tuple[str, str, str], ...] = ()

    @property
    def directory(self) -> Path:
        return ENVS_DIR / self.name

    @property
    def venv(self) -> Path:
        return self.directory / "venv"

    @property
    def manifest_file(self) -> Path:
        return self.directory / "manifest.json"

    def lock_digest(self) -> str:
        return hashlib.sha256(self.lock_file.read_bytes()).hexdigest()

    def pinned_packages(self) -> list[str]:
        lines = (line.split("#", 1)[0].strip() for line in self.lock_file.read_text().splitlines())
        return [line for line in lines if line]

    def manifest(self) -> dict[str, str]:
        if not self.manifest_file.is_file():
            return {}
        return dict(json.loads(self.manifest_file.read_text()))

    def is_built(self) -> bool:
        return self.manifest().get("lock_sha256") == self.lock_digest() and self.python().is_file()

    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def require(self) -> ImageEnvironment:
        if not self.is_built():
            raise ImageEnvironmentMissingError(
                f"the local environment of image {self.repository}:{self.tag_prefix} is not built; "
                "run `make setup` (python -m mlloop.localcloud.images build)"
            )
        return self

    def site_packages(self) -> Path:
        version = self.manifest()["python_version"].rsplit(".", 1)[0]
        return self.venv / "lib" / f"python{version}" / "site-packages"

    def build(self, *, force: bool = False) -> None:
        if self.is_built() and not force:
            return
        python, substituted = find_python(self.python_version)
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        subprocess.run([python, "-m", "venv", str(self.venv)], check=True)
        # --no-deps: the list is the image's full lock, installed as `uv sync --frozen` installs it; the lock
        # carries `typing`, whose metadata says Python < 3.5: uv installs it regardless, so pip must be told to.
        subprocess.run(
            [
                *(str(self.python()), "-m", "pip", "install", "-q", "--no-deps", "--ignore-requires-python"),
                *("--disable-pip-version-check", "-r", str(self.lock_file)),
            ],
            check=True,
        )
        version = subprocess.run(
            [str(self.python()), "-c", "import platform; print(platform.python_version())"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        site = self.venv / "lib" / f"python{version.rsplit('.', 1)[0]}" / "site-packages"
        for relative, old, new in self.patches:
            target = site / relative
            target.write_text(target.read_text().replace(old, new))
        self.manifest_file.write_text(
            json.dumps(
                {
                    "image": f"{self.repository}:{self.tag_prefix}",
                    "lock_sha256": self.lock_digest(),
                    "python_version": version,
                    "image_python_version": self.python_version,
                    "python_substituted": substituted,
                    "base_python": python,
                },
                indent=2,
            )
        )

    def overlay(self, root: Path) -> Path:
        """A package-less venv at `root` that sees the image's packages; returns its python."""
        self.require()
        base = Path(self.manifest().get("base_python") or _base_python(self.python()))
        subprocess.run([str(base), "-m", "venv", "--without-pip", str(root)], check=True)
        version = self.manifest()["python_version"].rsplit(".", 1)[0]
        site = root / "lib" / f"python{version}" / "site-packages"
        (site / "_sagemaker_image.pth").write_text(f"{self.site_packages()}\n")
        return root / "bin" / "python"

    def substitution_note(self) -> str | None:
        manifest = self.manifest()
        if not manifest or not manifest.get("python_substituted"):
            return None
        return (
            f"image {manifest['image']} runs Python {self.python_version}; its local environment runs Python "
            f"{manifest['python_version']} (no Python {self.python_version} on this machine or its registries)"
        )


def _base_python(venv_python: Path) -> str:
    """The interpreter a venv was made from (pyvenv.cfg `home`)."""
    config = venv_python.parent.parent / "pyvenv.cfg"
    for line in config.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "home":
            for name in ("python3", "python"):
                candidate = Path(value.strip()) / name
                if candidate.is_file():
                    return str(candidate)
    return str(venv_python)


def _runs(python: str, version: str) -> bool:
    try:
        done = subprocess.run(
            [python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return False
    return done.returncode == 0 and done.stdout.strip().startswith(version + ".")


def find_python(version: str) -> tuple[str, bool]:
    """(interpreter, substituted): Python `version` if the machine has one, else this machine's Python 3."""
    candidates = [shutil.which(f"python{version}") or ""]
    pyenv_root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates += sorted(str(p) for p in pyenv_root.glob(f"versions/{version}.*/bin/python{version}"))
    for candidate in candidates:
        if candidate and _runs(candidate, version):
            return candidate, False
    base = getattr(sys, "_base_executable", sys.executable)
    return str(base), True


SKLEARN_1_9_0 = ImageEnvironment(
    name="sagemaker-scikit-learn-1.9-0",
    repository="sagemaker-scikit-learn",
    tag_prefix="1.9-0",
    python_version="3.12",
    lock_file=_HERE / "sagemaker-scikit-learn-1.9-0.txt",
    container_environment={
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "SM_INPUT": "/opt/ml/input",
        "SM_INPUT_TRAINING_CONFIG_FILE": "/opt/ml/input/config/hyperparameters.json",
        "SM_INPUT_DATA_CONFIG_FILE": "/opt/ml/input/config/inputdataconfig.json",
        "SM_CHECKPOINT_CONFIG_FILE": "/opt/ml/input/config/checkpointconfig.json",
        "SM_MODEL_DIR": "/opt/ml/model",
    },
    patches=(("sagemaker_containers/_mapping.py", "collections.Mapping", "collections.abc.Mapping"),),
)

IMAGES: tuple[ImageEnvironment, ...] = (SKLEARN_1_9_0,)


def for_image(uri: str) -> ImageEnvironment:
    """The environment of an ECR image URI: <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>."""
    match = _IMAGE_URI.match(uri.strip())
    repository, tag = (match.group("repository"), match.group("tag") or "") if match else ("", "")
    for image in IMAGES:
        if repository == image.repository and (tag == image.tag_prefix or tag.startswith(image.tag_prefix + "-")):
            return image
    known = ", ".join(f"{i.repository}:{i.tag_prefix}" for i in IMAGES)
    raise ImageNotEmulatedError(f"the local cloud has no environment for image {uri!r} (it runs {known})")


def at_root(environment: dict[str, str], root: Path) -> dict[str, str]:
    """The image's variables with /opt/ml standing for `root` (SAGEMAKER_BASE_DIR)."""
    return {key: value.replace("/opt/ml", str(root)) for key, value in environment.items()}


def container_path(python: Path) -> str:
    """The PATH a container starts with: its Python's bin directory (the image's /opt/venv/bin), then the system's."""
    return os.pathsep.join([str(python.parent), *_SYSTEM_PATH])


def build_all(*, force: bool = False) -> list[str]:
    """Build every image environment that is missing or out of date; returns notes for the deployment report."""
    notes = []
    for image in IMAGES:
        image.build(force=force)
        note = image.substitution_note()
        if note:
            notes.append(note)
    return notes


def report_for(uri: str) -> str | None:
    """What the deployment report says about an image a template names, or None when it runs as on AWS."""
    try:
        image = for_image(uri)
    except ImageNotEmulatedError as missing:
        return f"training jobs and endpoints on it fail locally: {missing}"
    if not image.is_built():
        return f"image {image.repository}:{image.tag_prefix}: local environment not built (make setup)"
    return image.substitution_note()


def deployment_notes() -> list[str]:
    """What the deployment report says about the image environments (substituted Pythons, missing builds)."""
    notes = []
    for image in IMAGES:
        if not image.is_built():
            notes.append(f"image {image.repository}:{image.tag_prefix}: local environment not built (make setup)")
            continue
        note = image.substitution_note()
        if note:
            notes.append(note)
    return notes


__all__ = [
    "ENVS_DIR",
    "IMAGES",
    "SKLEARN_1_9_0",
    "ImageEnvironment",
    "ImageEnvironmentMissingError",
    "ImageNotEmulatedError",
    "at_root",
    "build_all",
    "container_path",
    "deployment_notes",
    "find_python",
    "for_image",
    "report_for",
]
