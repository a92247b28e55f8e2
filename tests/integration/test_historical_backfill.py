"""Historical data trains through the new-data trigger (issue 18, "Windows follow the data").

Given the dev stage in a cloud of its own (so no other test's run holds the training cooldown), when a raw file of
churn rows that all lie more than a year before now lands, then ingestion curates it, its "Curated Data Ingested"
event starts the training workflow, and the snapshot holds those rows: the window ends at the newest curated
partition, not at the trigger's time (a window of `training.window_days` ending now would hold none of them).

The rows stay within the churn contract's `freshness.max_event_age_days` (older ones are quarantined as stale, as
the contract says); the unit tests of prepare_training_data cover decade-old data without ingestion.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.shared.contract import load_contract
from infra.config import load_stage_config, read_cdk_json_context
from mlloop.datagen import generate_churn
from tests.integration.localcloud_support import UpProcess, up_process

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]
STAGE = "dev"
ROWS = 6000
RUN_TIMEOUT = 900.0


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    for up in up_process(tmp_path_factory.mktemp("backfill")):
        up.deploy(STAGE)
        yield up


def _physical_id(up: UpProcess, resource_type: str, suffix: str) -> str:
    """The one deployed resource of a type whose physical id ends with `suffix` (bucket and machine names)."""
    if resource_type == "bucket":
        names = [b["Name"] for b in up.client("s3").list_buckets()["Buckets"]]
    else:
        names = [m["stateMachineArn"] for m in up.client("stepfunctions").list_state_machines()["stateMachines"]]
    (found,) = [name for name in names if name.endswith(suffix)]
    return found


def _first_execution(up: UpProcess, machine: str, timeout: float) -> dict[str, Any]:
    sfn = up.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executions = sfn.list_executions(stateMachineArn=machine)["executions"]
        if executions:
            return dict(executions[0])
        time.sleep(1)
    raise AssertionError(f"no training run started within {timeout:.0f} s of the upload")


def _finished(up: UpProcess, execution_arn: str, timeout: float) -> dict[str, Any]:
    sfn = up.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return dict(described)
        time.sleep(2)
    raise AssertionError(f"the run did not finish within {timeout:.0f} s")


def test_a_backfill_of_rows_over_a_year_old_trains_through_the_new_data_trigger(cloud: UpProcess) -> None:
    config = load_stage_config(read_cdk_json_context(), STAGE)
    contract = load_contract("churn")
    now = datetime.now(UTC)
    # Six months of rows ending over a year ago (beyond a wall-clock window), inside the contract's maximum age.
    newest_allowed = now - timedelta(days=config.training.window_days + 30)
    start = max(
        newest_allowed - timedelta(days=180),
        now - timedelta(days=contract.freshness.max_event_age_days - 10),
    )
    frame = generate_churn(ROWS, seed=2016, start=start, months=6)
    newest_day = frame[contract.event_timestamp].max().date()
    assert newest_day < (now - timedelta(days=config.training.window_days)).date()
    raw = _physical_id(cloud, "bucket", f"{config.prefix}-raw-123456789012-us-east-1")
    machine = _physical_id(cloud, "machine", f":{config.prefix}-training")
    artifacts = _physical_id(cloud, "bucket", f"{config.prefix}-artifacts-123456789012-us-east-1")

    cloud.client("s3").put_object(Bucket=raw, Key="churn/backfill.csv", Body=frame.to_csv(index=False).encode())
    execution = _first_execution(cloud, machine, timeout=300)
    finished = _finished(cloud, execution["executionArn"], timeout=RUN_TIMEOUT)

    trigger = json.loads(finished["input"])["trigger"]
    assert (trigger["kind"], trigger["source"]) == ("new_data", "churn/backfill.csv")
    run_id = execution["name"]
    s3 = cloud.client("s3")
    manifests = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=artifacts, Prefix="training/runs/").get("Contents", [])
        if o["Key"].endswith("/manifest.json")
    ]
    assert len(manifests) == 1, manifests
    manifest = json.loads(s3.get_object(Bucket=artifacts, Key=manifests[0])["Body"].read())
    assert manifest["window"]["end"] == newest_day.isoformat()
    assert manifest["curated_span"].endswith(newest_day.isoformat())
    # Every row's window closed long before it landed, so each carries its inline label.
    assert manifest["labels"]["labelled"] == ROWS
    sfn = cloud.client("stepfunctions")
    events = sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    assert finished["status"] == "SUCCEEDED", (run_id, finished.get("error"), finished.get("cause"), entered)
    # The snapshot passed the data gate, trained, and the model passed the promotion gate.
    assert {"DataGatePassed", "StartTrainingJob", "PromotionGate", "ModelRegistered"} <= set(entered), entered
