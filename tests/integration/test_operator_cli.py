"""The operator CLI against the embedded AWS: status shows what serves, rollback goes through the guarded deploy
path and records who, when and why, a rejected version is refused, and retire never touches what serves."""

from __future__ import annotations

from typing import Any

import pytest

from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment
from tests.integration.serving_support import (
    ENDPOINT,
    Cli,
    deploy_executions,
    operator_cli,
    register_package,
    wait_for_new_deploy,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]


@pytest.fixture
def cli(local_cloud: LocalCloud) -> Cli:
    return operator_cli(local_cloud)


@pytest.fixture(scope="module")
def two_versions(local_cloud: LocalCloud, dev_stage: Deployment) -> tuple[int, int]:
    versions = []
    for _ in range(2):
        before = len(deploy_executions(local_cloud))
        arn = register_package(local_cloud, broken=False)
        assert wait_for_new_deploy(local_cloud, before)["status"] == "SUCCEEDED"
        versions.append(int(arn.rsplit("/", 1)[-1]))
    return versions[0], versions[1]


def _serving_version(status: dict[str, Any]) -> int:
    variants = sorted(status["endpoint"]["variants"], key=lambda v: v["weight"], reverse=True)
    return int(variants[0]["version"])


def test_status_shows_versions_the_endpoint_and_alarms(cli: Cli, two_versions: tuple[int, int]) -> None:
    code, status, _ = cli("status")
    assert code == 0
    older, newer = two_versions
    listed = {v["version"]: v["approval"] for v in status["versions"]}
    assert listed[older] == listed[newer] == "Approved"
    assert status["endpoint"]["name"] == ENDPOINT and status["endpoint"]["status"] == "InService"
    assert _serving_version(status) == newer
    assert any(a["name"].startswith("mlloop-dev-") for a in status["alarms"])


def test_rollback_deploys_the_previous_approved_version_and_records_why(
    cli: Cli, local_cloud: LocalCloud, two_versions: tuple[int, int]
) -> None:
    older, newer = two_versions
    code, result, err = cli("rollback", "--reason", "latency regression in the new version")
    assert code == 0, err
    assert result["from_version"] == newer and result["to_version"] == older
    assert result["path"] == "guarded", "dev keeps no warm standby"
    assert result["deploy_response"]["status"] == "SUCCEEDED"
    print(f"local rollback took {result['seconds']:.1f} s")
    _, status, _ = cli("status")
    assert _serving_version(status) == older
    package = next(v for v in status["versions"] if v["version"] == older)
    assert package["metadata"]["rollback_reason"] == "latency regression in the new version"
    assert package["metadata"]["rollback_from"] == f"v{newer}" and package["metadata"]["rollback_by"]


def test_a_rejected_version_is_refused_as_a_rollback_target(cli: Cli, two_versions: tuple[int, int]) -> None:
    _, newer = two_versions
    code, _, _ = cli("reject", str(newer), "--reason", "rolled back for latency")
    assert code == 0
    code, _, err = cli("rollback", "--to", f"v{newer}", "--reason", "try again")
    assert code == 2 and f"refusing to roll back to v{newer}: it was rejected (rolled back for latency)" in err


def test_retire_never_touches_what_serves(cli: Cli, local_cloud: LocalCloud, two_versions: tuple[int, int]) -> None:
    sm = local_cloud.client("sagemaker")
    running = sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]
    serving_models = {
        v["ModelName"] for v in sm.describe_endpoint_config(EndpointConfigName=running)["ProductionVariants"]
    }
    code, result, _ = cli("retire", "--keep", "1")
    assert code == 0
    assert running not in result["deleted_endpoint_configs"]
    assert not serving_models & set(result["deleted_models"])
    assert running in result["protected"]
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == running
    for model in serving_models:
        assert sm.describe_model(ModelName=model)["ModelName"] == model
    remaining = {c["EndpointConfigName"] for c in sm.list_endpoint_configs(NameContains=ENDPOINT)["EndpointConfigs"]}
    assert not remaining & set(result["deleted_endpoint_configs"])
