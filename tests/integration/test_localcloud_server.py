"""The local cloud starts on 127.0.0.1, is shared within a process, stops cleanly, and has a CLI.

Given the embedded AWS, when it is started and stopped (in this process or through the command line),
then clients reach it by endpoint URL and nothing it started is left running afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlloop.localcloud import LocalCloud

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]
REPO_ROOT = Path(__file__).resolve().parents[2]

LIFECYCLE = textwrap.dedent(
    """
    import json, socket, threading
    from mlloop.localcloud import LocalCloud

    before = {t.name for t in threading.enumerate()}
    with LocalCloud.start() as cloud:
        port = cloud.port
        cloud.client("s3").create_bucket(Bucket="lifecycle")
        cloud.api_url("any-api", "prod")
        cloud.put_events([{"Source": "test", "DetailType": "Ping", "Detail": {}}])
        host = cloud.endpoint_url.split("//")[1].split(":")[0]
        # An execution still waiting when the cloud stops (a retraining the last alarm started, say).
        role = cloud.client("iam").create_role(
            RoleName="lifecycle-machine",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}]}),
        )["Role"]["Arn"]
        sfn = cloud.client("stepfunctions")
        machine = sfn.create_state_machine(
            name="lifecycle", roleArn=role,
            definition=json.dumps(
                {"StartAt": "Hold", "States": {"Hold": {"Type": "Wait", "Seconds": 86400, "End": True}}}
            ),
        )["stateMachineArn"]
        sfn.start_execution(stateMachineArn=machine)
    left = sorted({t.name for t in threading.enumerate()} - before)
    probe = socket.socket()
    refused = probe.connect_ex(("127.0.0.1", port)) != 0
    probe.close()
    print(json.dumps({"host": host, "left": left, "refused": refused}))
    """
)


def test_stop_leaves_no_thread_and_no_open_port() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LIFECYCLE], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=120
    )

    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"host": "127.0.0.1", "left": [], "refused": True}


def test_start_in_a_process_with_a_running_cloud_joins_it(local_cloud: LocalCloud) -> None:
    with LocalCloud.start() as joined:
        assert joined is local_cloud

    assert local_cloud.running
    assert local_cloud.client("s3").list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


def _cli(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlloop.localcloud", *arguments],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_cli_brings_a_stage_up_reports_its_status_and_brings_it_down(tmp_path: Path) -> None:
    env = {**os.environ, "LOCALCLOUD_STATE_FILE": str(tmp_path / "state.json")}
    up = subprocess.Popen(
        [sys.executable, "-m", "mlloop.localcloud", "up", "--stage", "dev"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 600
        status = None
        while time.monotonic() < deadline and up.poll() is None:
            answer = _cli("status", "--json", env=env)
            if answer.returncode == 0 and "dev" in json.loads(answer.stdout)["stages"]:
                status = json.loads(answer.stdout)
                break
            time.sleep(1)
        assert status is not None, "the cloud never reported the dev stage"
        assert status["endpoint_url"].startswith("http://127.0.0.1:")
        assert "mlloop-dev-data-lake" in status["stages"]["dev"]["stacks"]
        assert {"calls", "authorised", "denied", "not_evaluable", "validated_requests"} <= set(
            status["fidelity"]["totals"]
        )

        assert _cli("down", env=env).returncode == 0
        output, _ = up.communicate(timeout=120)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 0
    assert f"export AWS_ENDPOINT_URL={status['endpoint_url']}" in output
    assert not (tmp_path / "state.json").exists()
    assert _cli("status", env=env).returncode == 1
