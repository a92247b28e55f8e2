"""Lambda functions run in their own execution environments on the local cloud.

Given functions deployed from a template, when they are invoked through boto3, then the real code runs in a
worker process of its own, with the function's environment, its layers' packages and nothing from the host, within
its timeout, memory and concurrency, and errors come back the way Lambda returns them.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from mlloop.localcloud import LocalCloud
from mlloop.localcloud.deployer import Deployment
from tests.integration.localcloud_support import (
    PANDAS_LAYER,
    POWERTOOLS_LAYER,
    ROLE,
    python_function,
    unique_stage,
    write_assembly,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("localcloud")]

POWERTOOLS_CODE = """
    import os
    from aws_lambda_powertools import Metrics

    metrics = Metrics()

    def handler(event, context):
        if event.get("fail"):
            raise ValueError("the input asked to fail")
        metrics.add_metric(name="Handled", unit="Count", value=event.get("count", 1))
        metrics.flush_metrics()
        return {
            "greeting": os.environ["GREETING"],
            "namespace": metrics.provider.namespace,
            "service": metrics.provider.service,
            "function": context.function_name,
            "event": event,
        }
"""

UNKNOWN_LAYER = "arn:aws:lambda:us-east-1:123456789012:layer:team-pandas:3"
USES_PANDAS = """
    import pandas

    def handler(event, context):
        return {"pandas": pandas.__version__}
"""

# What the environment looks like from inside: its variables, its process, and when it ran.
INTROSPECT = """
    import os
    import time

    def handler(event, context):
        started = time.time()
        time.sleep(event.get("sleep", 0))
        if event.get("allocate_mb"):
            hoard = bytearray(event["allocate_mb"] * 1024 * 1024)
            hoard[::4096] = b"x" * len(hoard[::4096])
        return {"pid": os.getpid(), "environ": dict(os.environ), "started": started, "ended": time.time()}
"""

ALWAYS_FAILS = """
    def handler(event, context):
        print("attempt for", event["id"])
        raise RuntimeError("downstream unavailable")
"""


@pytest.fixture(scope="module")
def deployed(local_cloud: LocalCloud, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    stage = unique_stage()
    resources: dict[str, Any] = {
        "Role": ROLE,
        "First": python_function(
            POWERTOOLS_CODE,
            layers=[POWERTOOLS_LAYER],
            environment={
                "GREETING": "hello from first",
                "POWERTOOLS_SERVICE_NAME": "first-service",
                "POWERTOOLS_METRICS_NAMESPACE": f"{stage}/First",
            },
        ),
        "Second": python_function(
            POWERTOOLS_CODE,
            layers=[POWERTOOLS_LAYER],
            environment={
                "GREETING": "hello from second",
                "POWERTOOLS_SERVICE_NAME": "second-service",
                "POWERTOOLS_METRICS_NAMESPACE": f"{stage}/Second",
            },
        ),
        "PandasWithoutLayer": python_function(USES_PANDAS),
        # Importing pandas, numpy and pyarrow takes about 130 MB resident: 128 MB (Lambda's default) is too little,
        # and the local cloud kills a worker past its memory size as Lambda does.
        "PandasWithLayer": python_function(USES_PANDAS, layers=[POWERTOOLS_LAYER, PANDAS_LAYER], MemorySize=512),
        "PandasFromUnknownLayer": python_function(USES_PANDAS, layers=[UNKNOWN_LAYER]),
        "Introspect": python_function(INTROSPECT, environment={"ONLY_HERE": "introspect"}, Timeout=2, MemorySize=128),
        "Reserved": python_function(INTROSPECT, ReservedConcurrentExecutions=1, Timeout=10),
        "Sleeper": python_function(INTROSPECT, Timeout=10),
        "DeadLetters": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "FailingLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": 7}},
        "Failing": python_function(
            ALWAYS_FAILS,
            DeadLetterConfig={"TargetArn": {"Fn::GetAtt": ["DeadLetters", "Arn"]}},
            LoggingConfig={"LogGroup": {"Ref": "FailingLogs"}},
        ),
        "FailingInvokeConfig": {
            "Type": "AWS::Lambda::EventInvokeConfig",
            "Properties": {"FunctionName": {"Ref": "Failing"}, "Qualifier": "$LATEST", "MaximumRetryAttempts": 1},
        },
    }
    out = write_assembly(tmp_path_factory.mktemp("lambdas"), {f"mlloop-{stage}-fns": {"Resources": resources}})
    # "Reserved" reserves one execution: only an account whose quota AWS raised above a new account's 10 can.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCALCLOUD_LAMBDA_CONCURRENCY_QUOTA", "1000")
        return local_cloud.deploy(stage, cdk_out=out)


def _invoke(cloud: LocalCloud, function: str, event: dict[str, Any]) -> tuple[Any, str | None]:
    answer = cloud.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event))
    return json.loads(answer["Payload"].read()), answer.get("FunctionError")


def test_handler_runs_with_its_template_environment(local_cloud: LocalCloud, deployed: Deployment) -> None:
    result, error = _invoke(local_cloud, deployed.physical_id("First"), {"count": 3})

    assert error is None
    assert result["greeting"] == "hello from first"
    assert result["function"] == deployed.physical_id("First")
    assert result["event"] == {"count": 3}


def test_each_function_keeps_its_own_powertools_settings(local_cloud: LocalCloud, deployed: Deployment) -> None:
    first, _ = _invoke(local_cloud, deployed.physical_id("First"), {})
    second, _ = _invoke(local_cloud, deployed.physical_id("Second"), {})
    first_again, _ = _invoke(local_cloud, deployed.physical_id("First"), {})

    assert (first["service"], first["namespace"]) == ("first-service", f"{deployed.stage}/First")
    assert (second["service"], second["namespace"]) == ("second-service", f"{deployed.stage}/Second")
    assert first_again["namespace"] == first["namespace"]


def test_emf_metrics_printed_by_a_handler_reach_cloudwatch(local_cloud: LocalCloud, deployed: Deployment) -> None:
    _invoke(local_cloud, deployed.physical_id("Second"), {"count": 7})

    metrics = local_cloud.client("cloudwatch").list_metrics(Namespace=f"{deployed.stage}/Second")["Metrics"]
    assert {"Name": "service", "Value": "second-service"} in metrics[0]["Dimensions"]
    assert metrics[0]["MetricName"] == "Handled"


def test_a_raising_handler_returns_lambdas_error_shape(local_cloud: LocalCloud, deployed: Deployment) -> None:
    result, error = _invoke(local_cloud, deployed.physical_id("First"), {"fail": True})

    assert error == "Unhandled"
    assert result["errorType"] == "ValueError"
    assert result["errorMessage"] == "the input asked to fail"


def test_failed_async_invocation_is_retried_then_sent_to_the_dead_letter_queue(
    local_cloud: LocalCloud, deployed: Deployment
) -> None:
    function = deployed.physical_id("Failing")

    answer = local_cloud.client("lambda").invoke(
        FunctionName=function, InvocationType="Event", Payload=json.dumps({"id": "order-17"})
    )
    local_cloud.wait_idle()

    assert answer["StatusCode"] == 202
    messages = local_cloud.client("sqs").receive_message(QueueUrl=deployed.physical_id("DeadLetters"))["Messages"]
    record = json.loads(messages[0]["Body"])
    assert record["requestPayload"] == {"id": "order-17"}
    assert record["responsePayload"]["errorMessage"] == "downstream unavailable"
    log_group = deployed.physical_id("FailingLogs")
    logs = local_cloud.client("logs").filter_log_events(logGroupName=log_group)["events"]
    assert sum("attempt for order-17" in event["message"] for event in logs) == 2


def test_handler_code_comes_from_the_template(tmp_path: Path, local_cloud: LocalCloud) -> None:
    stage = unique_stage()
    resources = {"Role": ROLE, "Echo": python_function("def handler(event, context):\n    return ['v2', event]\n")}
    out = write_assembly(tmp_path, {f"mlloop-{stage}-echo": {"Resources": resources}})

    deployment = local_cloud.deploy(stage, cdk_out=out)

    result, _ = _invoke(local_cloud, deployment.physical_id("Echo"), {"x": 1})
    assert result == ["v2", {"x": 1}]


def test_a_handler_importing_a_package_no_layer_provides_fails_as_lambda_does(
    local_cloud: LocalCloud, deployed: Deployment
) -> None:
    result, error = _invoke(local_cloud, deployed.physical_id("PandasWithoutLayer"), {})

    assert error == "Unhandled"
    assert result["errorType"] == "Runtime.ImportModuleError"
    assert result["errorMessage"] == "Unable to import module 'index': No module named 'pandas'"


def test_the_same_handler_runs_with_the_layer_that_provides_the_package(
    local_cloud: LocalCloud, deployed: Deployment
) -> None:
    result, error = _invoke(local_cloud, deployed.physical_id("PandasWithLayer"), {})

    assert error is None, result
    assert result == {"pandas": "2.3.0"}


def test_a_layer_without_a_local_package_set_is_reported_and_its_imports_fail(
    local_cloud: LocalCloud, deployed: Deployment
) -> None:
    result, _ = _invoke(local_cloud, deployed.physical_id("PandasFromUnknownLayer"), {})

    (entry,) = [e for e in deployed.report.entries if e.logical_id == "PandasFromUnknownLayer"]
    assert entry.status == "not emulated"
    assert UNKNOWN_LAYER in entry.reason
    assert result["errorType"] == "Runtime.ImportModuleError"


def test_past_its_timeout_an_invocation_fails_and_the_next_gets_a_fresh_environment(
    local_cloud: LocalCloud, deployed: Deployment
) -> None:
    function = deployed.physical_id("Introspect")
    warm, _ = _invoke(local_cloud, function, {})

    timed_out, error = _invoke(local_cloud, function, {"sleep": 5})
    after, _ = _invoke(local_cloud, function, {})

    assert error == "Unhandled"
    assert timed_out["errorType"] == "Sandbox.Timedout"
    assert timed_out["errorMessage"].endswith("Task timed out after 2.00 seconds")
    assert after["pid"] != warm["pid"]


def test_an_environment_is_reused_between_invocations(local_cloud: LocalCloud, deployed: Deployment) -> None:
    first, _ = _invoke(local_cloud, deployed.physical_id("Introspect"), {})
    second, _ = _invoke(local_cloud, deployed.physical_id("Introspect"), {})

    assert first["pid"] == second["pid"] != os.getpid()


def test_past_its_memory_size_the_worker_is_killed_and_the_error_says_so(
    local_cloud: LocalCloud, deployed: Deployment
) -> None:
    result, error = _invoke(local_cloud, deployed.physical_id("Introspect"), {"allocate_mb": 300})

    assert error == "Unhandled"
    assert result["errorType"] == "Runtime.OutOfMemory"


def test_a_function_sees_only_its_own_variables_and_lambdas(
    local_cloud: LocalCloud, deployed: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLLOOP_HOST_ONLY", "the test process")

    result, _ = _invoke(local_cloud, deployed.physical_id("Introspect"), {})

    environ = result["environ"]
    assert environ["ONLY_HERE"] == "introspect"
    assert "GREETING" not in environ  # First's variable
    assert "MLLOOP_HOST_ONLY" not in environ
    assert environ["AWS_LAMBDA_FUNCTION_NAME"] == deployed.physical_id("Introspect")
    assert environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert environ["AWS_ACCESS_KEY_ID"] != "localcloud"  # the role's temporary credentials
    assert environ["AWS_SESSION_TOKEN"]
    assert "ONLY_HERE" not in os.environ


def _invoke_together(cloud: LocalCloud, function: str, event: dict[str, Any], client: Any = None) -> list[Any]:
    client = client or cloud.client("lambda")
    results: list[Any] = [None, None]
    barrier = threading.Barrier(2)

    def call(index: int) -> None:
        barrier.wait()
        try:
            answer = client.invoke(FunctionName=function, Payload=json.dumps(event))
            results[index] = json.loads(answer["Payload"].read())
        except ClientError as exc:
            results[index] = exc

    threads = [threading.Thread(target=call, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_concurrent_invocations_run_in_parallel_environments(local_cloud: LocalCloud, deployed: Deployment) -> None:
    first, second = _invoke_together(local_cloud, deployed.physical_id("PandasWithLayer"), {})
    # Long enough that the second environment's cold start, even on a loaded machine, ends inside the first's run.
    one, other = _invoke_together(local_cloud, deployed.physical_id("Sleeper"), {"sleep": 3})

    assert first == second == {"pandas": "2.3.0"}
    assert one["pid"] != other["pid"]
    assert one["started"] < other["ended"] and other["started"] < one["ended"]


def test_reserved_concurrency_one_throttles_the_second_of_two_overlapping_calls(
    local_cloud: LocalCloud, deployed: Deployment
) -> None:
    without_retries = local_cloud.session.client(
        "lambda", endpoint_url=local_cloud.endpoint_url, config=Config(retries={"max_attempts": 1})
    )

    results = _invoke_together(local_cloud, deployed.physical_id("Reserved"), {"sleep": 2}, without_retries)

    throttled = [r for r in results if isinstance(r, ClientError)]
    answered = [r for r in results if isinstance(r, dict)]
    assert len(throttled) == 1 and len(answered) == 1
    error = throttled[0].response
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
