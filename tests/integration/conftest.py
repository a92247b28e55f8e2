"""Fixtures of the embedded AWS shared by every integration test.

`local_cloud` is one LocalCloud per test process (moto's state is process-wide); `dev_stage` is the
dev stage synthesized from this repository and deployed into it. Tests that use them run in the
"localcloud" xdist group so one worker pays for the start and the deploy.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment


@pytest.fixture(scope="session")
def local_cloud() -> Iterator[LocalCloud]:
    with LocalCloud.start() as cloud:
        yield cloud


@pytest.fixture(scope="session")
def dev_stage(local_cloud: LocalCloud) -> Deployment:
    """The dev stage as `cdk synth` produced it, deployed (again, if moto's state was reset meanwhile)."""
    return local_cloud.deploy("dev")
