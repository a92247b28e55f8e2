"""The SageMaker image environments: which image URI runs where, and what a job's overlay sees."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlloop.localcloud import images

SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.9-0-cpu-py3"


def test_the_regional_scikit_learn_uri_runs_in_the_1_9_0_environment() -> None:
    assert images.for_image(SKLEARN) is images.SKLEARN_1_9_0
    assert images.for_image("sagemaker-scikit-learn:1.9-0") is images.SKLEARN_1_9_0


@pytest.mark.parametrize(
    "uri",
    [
        "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311",
        "sklearn",
    ],
)
def test_an_image_without_a_local_environment_is_refused_and_reported(uri: str) -> None:
    with pytest.raises(images.ImageNotEmulatedError, match="no environment for image"):
        images.for_image(uri)
    assert "fail locally" in str(images.report_for(uri))


def test_the_package_list_is_the_images_lock_without_matplotlib() -> None:
    pins = dict(line.split("==") for line in images.SKLEARN_1_9_0.pinned_packages())
    assert pins["scikit-learn"] == "1.9.0" and pins["pandas"] == "2.2.3" and pins["sagemaker-training"] == "4.8.0"
    assert "matplotlib" not in pins


@pytest.mark.skipif(not images.SKLEARN_1_9_0.is_built(), reason="make setup builds the image environment")
def test_an_overlay_sees_the_images_packages_and_keeps_its_own_installs(tmp_path: Path) -> None:
    python = images.SKLEARN_1_9_0.overlay(tmp_path / "venv")
    probe = "import sklearn, sys; print(sklearn.__version__, sys.prefix)"
    version, prefix = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert version == "1.9.0"
    assert Path(prefix) == tmp_path / "venv"
    missing = subprocess.run([str(python), "-c", "import matplotlib"], capture_output=True, text=True, check=False)
    assert "No module named 'matplotlib'" in missing.stderr
