"""Monitoring as synthesized: each alarm on the metric its job publishes, the retraining composite, the rule that
turns it into a training run (or a request for approval in prod), the schedules and the dashboard."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.drift_detector import metric_names as drift_names
from functions.label_quality import metric_names as quality_names
from infra.config import load_stage_config, read_cdk_json_context
from infra.stacks.monitoring import alarm_names
from mlloop.assembly import load_template, synthesize

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("synth")]
STAGES = ("dev", "staging", "prod")


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    synthesize()
    return {stage: load_template(f"mlloop-{stage}-monitoring") for stage in STAGES}


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == kind}


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["AlarmName"]: p for p in _of_type(template, "AWS::CloudWatch::Alarm").values()}


def _logical_id(template: dict[str, Any], kind: str, **match: Any) -> str:
    for logical_id, res in template["Resources"].items():
        if res["Type"] == kind and all(res["Properties"].get(k) == v for k, v in match.items()):
            return logical_id
    raise AssertionError(f"no {kind} with {match}")


@pytest.mark.parametrize("stage", STAGES)
def test_every_alarm_exists_with_the_stage_threshold_and_pages_people(templates, stage):
    config = load_stage_config(read_cdk_json_context(), stage)
    m = config.monitoring
    alarms = _alarms(templates[stage])
    names = alarm_names(config)
    expected = {
        "drift": m.drifted_share_threshold,
        "feature-drift": 1,
        "weighted-drift": m.weighted_drift_threshold,
        "prediction-drift": 1,
        "drift-traffic": m.min_drift_samples,
        "model-errors": m.errors_5xx,
        "validation-error-rate": m.validation_error_rate_percent,
        "quarantine-rate": m.quarantine_rate_percent,
        "training-failures": 1,
        "live-auc": m.min_live_auc,
        "live-auc-drop": m.max_live_auc_drop,
    }

    assert set(alarms) == {names[k] for k in expected}
    for kind, threshold in expected.items():
        alarm = alarms[names[kind]]
        assert alarm["Threshold"] == threshold, kind
        assert alarm["TreatMissingData"] == "notBreaching", kind
        notifies = "AlarmActions" in alarm
        assert notifies is (kind != "drift-traffic"), kind
    assert alarms[names["live-auc"]]["ComparisonOperator"] == "LessThanThreshold"
    assert alarms[names["live-auc-drop"]]["ComparisonOperator"] == "GreaterThanThreshold"


def test_one_failed_training_run_is_enough_for_the_failures_alarm(templates):
    names = alarm_names(load_stage_config(read_cdk_json_context(), "dev"))
    alarm = _alarms(templates["dev"])[names["training-failures"]]
    (expression,) = [m["Expression"] for m in alarm["Metrics"] if "Expression" in m]
    # Step Functions publishes ExecutionsFailed, TimedOut and Aborted only when they happen.
    assert expression == "FILL(failed, 0) + FILL(timed_out, 0) + FILL(aborted, 0)"


def test_prod_keeps_the_rule_dead_letter_queues_and_dev_deletes_them(templates):
    for stage, policy in (("dev", "Delete"), ("prod", "Retain")):
        queues = [r for r in templates[stage]["Resources"].values() if r["Type"] == "AWS::SQS::Queue"]
        assert queues and {q["DeletionPolicy"] for q in queues} == {policy}, stage


def test_drift_alarms_watch_the_detectors_metrics_on_this_endpoint(templates):
    alarms = _alarms(templates["dev"])
    names = alarm_names(load_stage_config(read_cdk_json_context(), "dev"))
    endpoint = [{"Name": drift_names.ENDPOINT_DIMENSION, "Value": "mlloop-dev-churn"}]

    for kind, metric in (
        ("drift", drift_names.DRIFTED_SHARE),
        ("feature-drift", drift_names.MAX_FEATURE_SEVERITY),
        ("weighted-drift", drift_names.WEIGHTED_SEVERITY),
        ("prediction-drift", drift_names.PREDICTION_SEVERITY),
        ("drift-traffic", drift_names.SAMPLE_COUNT),
    ):
        alarm = alarms[names[kind]]
        assert (alarm["MetricName"], alarm["Namespace"], alarm["Dimensions"]) == (metric, "MLLoop/dev", endpoint)
    assert alarms[names["live-auc"]]["MetricName"] == quality_names.LIVE_AUC


def test_the_serving_stack_holds_the_endpoint_health_alarms(templates):
    serving = _alarms(load_template("mlloop-dev-serving"))

    assert {"mlloop-dev-serving-5xx", "mlloop-dev-serving-latency-p99", "mlloop-dev-serving-fallback-rate"} <= set(
        serving
    )


@pytest.mark.parametrize("stage", STAGES)
def test_retraining_needs_drift_and_enough_traffic(templates, stage):
    template = templates[stage]
    composite = next(iter(_of_type(template, "AWS::CloudWatch::CompositeAlarm").values()))
    rule = json.dumps(composite["AlarmRule"])
    ids = {
        kind: _logical_id(template, "AWS::CloudWatch::Alarm", AlarmName=f"mlloop-{stage}-monitoring-{kind}")
        for kind in ("drift", "feature-drift", "weighted-drift", "prediction-drift", "drift-traffic")
    }

    assert composite["AlarmName"] == f"mlloop-{stage}-monitoring-retraining-needed"
    # (drift OR feature-drift OR weighted-drift OR prediction-drift) AND drift-traffic: one severe feature suffices.
    drifted = [rule.index(ids[k]) for k in ("drift", "feature-drift", "weighted-drift", "prediction-drift")]
    assert drifted == sorted(drifted) and rule.count(" OR ") == 4
    assert drifted[-1] < rule.index(" AND ") < rule.index(ids["drift-traffic"])
    assert composite["AlarmActions"]


@pytest.mark.parametrize("stage", STAGES)
def test_a_live_auc_drop_below_the_evaluated_auc_alone_asks_for_retraining(templates, stage):
    # Given the stage's relative live-quality alarm
    template = templates[stage]
    config = load_stage_config(read_cdk_json_context(), stage)
    alarm = _alarms(template)[alarm_names(config)["live-auc-drop"]]
    composite = next(iter(_of_type(template, "AWS::CloudWatch::CompositeAlarm").values()))
    rule = json.dumps(composite["AlarmRule"])
    drop_id = _logical_id(template, "AWS::CloudWatch::Alarm", AlarmName=alarm["AlarmName"])

    # Then it watches the label-quality job's drop on this endpoint over a day, above the stage's allowance
    assert (alarm["MetricName"], alarm["Namespace"], alarm["Dimensions"]) == (
        quality_names.LIVE_AUC_DROP,
        config.metrics_namespace,
        [{"Name": quality_names.ENDPOINT_DIMENSION, "Value": config.endpoint_name}],
    )
    assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == (
        "Maximum",
        86400,
        config.monitoring.max_live_auc_drop,
    )
    # And it is OR-ed with (drift AND traffic) at the top of the retraining composite: it needs no drift
    assert rule.rindex(" OR ") < rule.index(drop_id)
    assert rule.index(" AND ") < rule.rindex(" OR ")
    # And its notification says what it compares and where the version is named
    assert (
        "evaluated" in alarm["AlarmDescription"] and quality_names.MODEL_VERSION_DIMENSION in alarm["AlarmDescription"]
    )


@pytest.mark.parametrize("stage", ["dev", "staging"])
def test_retraining_alarm_starts_the_training_trigger_function_with_the_alarm_event(templates, stage):
    rules = _of_type(templates[stage], "AWS::Events::Rule")
    rule = next(r for r in rules.values() if "EventPattern" in r)
    target = rule["Targets"][0]

    assert rule["EventPattern"] == {
        "source": ["aws.cloudwatch"],
        "detail-type": ["CloudWatch Alarm State Change"],
        "detail": {"alarmName": [f"mlloop-{stage}-monitoring-retraining-needed"], "state": {"value": ["ALARM"]}},
    }
    assert "StartTrainingFunction" in json.dumps(target["Arn"])
    # No Input or InputTransformer: the function receives the alarm event itself, its lineage.
    assert "Input" not in target and "InputTransformer" not in target
    assert target["DeadLetterConfig"]
    permissions = _of_type(templates[stage], "AWS::Lambda::Permission")
    assert any("StartTrainingFunction" in json.dumps(p["FunctionName"]) for p in permissions.values())


def test_prod_asks_people_instead_of_retraining_by_itself(templates):
    rules = _of_type(templates["prod"], "AWS::Events::Rule")
    rule = next(r for r in rules.values() if "EventPattern" in r)
    target = rule["Targets"][0]

    assert "NotificationsTopic" in json.dumps(target["Arn"])
    assert "mlloop retrain --stage prod" in json.dumps(target["InputTransformer"])


@pytest.mark.parametrize("stage", STAGES)
def test_drift_and_quality_jobs_run_on_the_stage_schedule(templates, stage):
    config = load_stage_config(read_cdk_json_context(), stage)
    template = templates[stage]
    functions = _of_type(template, "AWS::Lambda::Function")
    drift = next(p for p in functions.values() if p["Handler"] == "functions.drift_detector.handler.handler")
    quality = next(p for p in functions.values() if p["Handler"] == "functions.label_quality.handler.handler")
    schedules = [r for r in _of_type(template, "AWS::Events::Rule").values() if "ScheduleExpression" in r]

    env = drift["Environment"]["Variables"]
    assert env["ENDPOINT_NAME"] == config.endpoint_name
    assert env["MIN_DRIFT_SAMPLES"] == str(config.monitoring.min_drift_samples)
    assert env["DRIFT_WINDOW_HOURS"] == str(config.monitoring.drift_window_hours)
    assert env["WASSERSTEIN_THRESHOLD"] == str(config.monitoring.wasserstein_threshold)
    assert env["OUT_OF_RANGE_THRESHOLD"] == str(config.monitoring.out_of_range_threshold)
    assert env["WEIGHTED_DRIFT_THRESHOLD"] == str(config.monitoring.weighted_drift_threshold)
    assert drift["MemorySize"] == 3008 and drift["Timeout"] == 900
    assert quality["Environment"]["Variables"]["LABELS_DATASET"] == "churn_labels"
    assert len(schedules) == 2
    assert all(r["ScheduleExpression"] == config.monitoring.drift_schedule for r in schedules)


def test_dashboard_shows_traffic_latency_errors_drift_per_feature_versions_and_canaries(templates):
    dashboards = _of_type(templates["dev"], "AWS::CloudWatch::Dashboard")
    (props,) = dashboards.values()
    body = "".join(part for part in props["DashboardBody"]["Fn::Join"][1] if isinstance(part, str))

    assert props["DashboardName"] == "mlloop-dev-ml-platform"
    for title in (
        "Invocations",
        "Latency (ms)",
        "Errors and fallback rate",
        "Drift per feature (PSI)",
        "Model version over time",
        "Canary deploys and retraining",
        "Live quality on delayed labels",
    ):
        assert title in body, title
    for feature in ("tenure_months", "plan", "auto_renew"):
        assert f'"{drift_names.FEATURE_DIMENSION}","{feature}"' in body, feature
    assert "mlloop-dev-serving-latency-p99" in body
    assert "DriftTrafficAlarm" not in json.dumps(props["DashboardBody"])
