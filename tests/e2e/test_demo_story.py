"""The whole story, as a user checks it after `make demo`: one demo run, each test one thing a person looks at.

Given the dev stage deployed into a fresh local cloud with two models (churn, and upsell beside it), when the demo
ingests, trains, serves, drifts, retrains, canaries a good and a broken model, serves the second model side by side
and kills the endpoint, then the registry, the endpoints, the alarms, the executions and every caller's answers tell
that story. Names come from the run's record of each model's resolved config.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import DemoRun

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.xdist_group("e2e")]

ENDPOINT = "mlloop-dev-churn"


def _alarm(demo: DemoRun, kind: str) -> str:
    """The churn model's alarm of `kind`, as its resolved config names it (`mlloop-dev-churn-…` beside upsell)."""
    return f"{demo.record['models']['churn']['prefix']}-{kind}"


def _unanswered(answers: list[dict]) -> list[dict]:
    """API requests without an answer; direct endpoint callers have no fallback and may see the model's errors."""
    return [a for a in answers if a["door"] == "api" and (a["status"] == 0 or a["status"] >= 500)]


def test_the_demo_completes_every_phase_and_names_its_report(demo: DemoRun) -> None:
    cloud_log = demo.run_dir / "cloud.log"
    assert demo.returncode == 0, demo.output[-3000:] + (cloud_log.read_text()[-3000:] if cloud_log.exists() else "")
    assert demo.record["failed"] == ""
    names = [p["name"] for p in demo.record["phases"]]
    assert names == [
        "synthesize",
        "deploy",
        "ingest",
        "train_v1",
        "deploy_v1",
        "serve",
        "drift",
        "canary_v2",
        "recovery",
        "bad_canary",
        "fast_rollback",
        "second_model",
        "fallback",
    ]
    assert "nothing is left running" in demo.output
    assert demo.record["threads_after_stop"] == []
    assert str(demo.run_dir / "report.html") in demo.output.replace("\n", "")
    report = (demo.run_dir / "report.html").read_text()
    assert report.count("data:image/png;base64,") >= 5
    for title in (
        "Drift per feature",
        "Traffic split over time",
        "Alarm and deployment timeline",
        "Data quality",
        "The world changes twice",
    ):
        assert title in report


def test_bad_rows_land_in_quarantine_and_nothing_is_lost(demo: DemoRun) -> None:
    ingest = demo.record["ingest"]
    assert ingest["rows_in"] == ingest["rows_generated"]
    assert ingest["rows_curated"] + ingest["rows_quarantined"] == ingest["rows_in"]
    assert ingest["rows_quarantined"] >= ingest["rows_corrupted"] > 0
    assert sum(ingest["rule_counts"].values()) == ingest["rows_quarantined"]


def test_v1_is_trained_by_the_state_machine_from_new_data_and_auto_approved(demo: DemoRun) -> None:
    training = demo.training("v1")
    assert training["status"] == "SUCCEEDED"
    assert training["trigger"]["kind"] == "new_data"
    for state in ("PrepareTrainingData", "CheckDataGate", "StartTrainingJob", "EvaluateCandidate", "RegisterModel"):
        assert state in training["states"]
    assert training["evaluation"]["promote"] is True
    triggers = demo.record["new_data_triggers"]
    assert triggers and {t["kind"] for t in triggers} == {"new_data"}
    assert sum(t["started"] for t in triggers) == 1, "one ingested file started exactly one run"
    entry = demo.registry_entry("v1")
    assert entry["version"] == 1 and entry["approval"] == "Approved"
    assert entry["metadata"]["trigger"] == "new_data"


def test_the_approval_deploys_v1_and_both_doors_answer_with_it(demo: DemoRun) -> None:
    assert demo.deploy("v1")["status"] == "SUCCEEDED"
    (after_v1,) = [s for s in demo.record["endpoint_snapshots"] if s["label"] == "after v1"]
    assert after_v1["status"] == "InService" and after_v1["version"] == "v1"
    # The demo keeps a warm standby from the first deploy on, so the variant names never change.
    assert after_v1["variants"] == {"primary": 1.0, "standby": 0.0}
    served = demo.answers("serve")
    assert {a["door"] for a in served} == {"api", "runtime"}
    assert all(a["status"] == 200 and a["model_version"] == "v1" and not a["fallback"] for a in served)
    assert demo.record["model_endpoint"] == {"status": 200, "model_version": "v1"}
    assert demo.record["invalid_request"]["status"] == 400
    assert "plan" in demo.record["invalid_request"]["answer"]["fields"]


def test_drift_fires_the_alarm_whose_retraining_waits_for_new_labels_which_then_produce_v2(demo: DemoRun) -> None:
    drift = demo.record["drift"]["summary"]
    assert drift["verdict"] == "drift"
    assert {"monthly_charges", "tenure_months"} <= set(drift["drifted_features"])
    alarms = demo.record["alarms_after_drift"]
    assert alarms[_alarm(demo, "monitoring-retraining-needed")] == "ALARM"
    assert alarms[_alarm(demo, "monitoring-drift-traffic")] == "ALARM"
    alarm_events = [
        e["detail"]
        for e in demo.record["events"]
        if e["type"] == "CloudWatch Alarm State Change"
        and e["detail"]["alarmName"] == _alarm(demo, "monitoring-retraining-needed")
    ]
    assert [e["state"]["value"] for e in alarm_events][:1] == ["ALARM"]
    stopped = demo.training("no-new-labels")
    assert stopped["status"] == "SUCCEEDED"
    assert stopped["trigger"]["kind"] == "alarm"
    assert stopped["trigger"]["source"] == _alarm(demo, "monitoring-retraining-needed")
    assert "StartTrainingJob" not in stopped["states"] and stopped["states"][-1] == "NoNewLabels"
    assert stopped["snapshot"]["labels"]["newly_matured"] == 0
    assert stopped["notification"]["outcome"] == "no_new_labels"
    assert stopped["package_arn"] == ""
    training = demo.training("v2")
    assert training["status"] == "SUCCEEDED"
    assert training["trigger"]["kind"] == "new_data"
    assert training["snapshot"]["labels"]["newly_matured"] > 0
    entry = demo.registry_entry("v2")
    assert entry["version"] == 2 and entry["approval"] == "Approved"
    assert entry["metadata"]["trigger"] == "new_data"


def test_v2_goes_through_a_canary_and_is_promoted(demo: DemoRun) -> None:
    assert demo.deploy("v2")["status"] == "SUCCEEDED"
    samples = [s for s in demo.record["traffic_split"] if s["phase"] == "canary_v2"]
    assert samples[0]["blue"] == "v1" and {s["blue"] for s in samples} <= {"v1", "v2"}
    assert 0.5 in [s["green_share"] for s in samples if s["green"] == "v2"], "the one-instance canary was observed"
    canary = demo.answers("canary_v2")
    assert {a["model_version"] for a in canary if a["status"] == 200} == {"v1", "v2"}
    assert {a["door"] for a in canary} == {"api", "runtime"}
    assert not _unanswered(canary)
    (after_v2,) = [s for s in demo.record["endpoint_snapshots"] if s["label"] == "after v2"]
    assert after_v2["version"] == "v2" and after_v2["config"].startswith(f"{ENDPOINT}-v2-")
    assert after_v2["variants"] == {"primary": 1.0, "standby": 0.0}


def test_a_broken_model_is_rolled_back_by_its_alarm_and_rejected(demo: DemoRun) -> None:
    deploy = demo.deploy("v3-broken")
    assert deploy["status"] == "FAILED" and deploy["error"] == "DeployNotCompleted"
    assert "rolled the deploy back" in deploy["cause"]
    entry = demo.registry_entry("v3-broken")
    assert entry["approval"] == "Rejected"
    assert entry["metadata"]["deployment_status"] == "rolled_back"
    five_xx = [e["detail"] for e in demo.record["events"] if e["what"].startswith(_alarm(demo, "serving-5xx"))]
    assert "ALARM" in [e["state"]["value"] for e in five_xx]
    (after,) = [s for s in demo.record["endpoint_snapshots"] if s["label"] == "after the broken canary"]
    (after_v2,) = [s for s in demo.record["endpoint_snapshots"] if s["label"] == "after v2"]
    assert after["config"] == after_v2["config"] and after["status"] == "InService", "back on v2's config"
    samples = [s for s in demo.record["traffic_split"] if s["phase"] == "bad_canary"]
    assert any(s["green"] == "v3" and s["green_share"] > 0 for s in samples), "the broken model took canary traffic"
    during = demo.answers("bad_canary")
    assert during and not _unanswered(during)


def test_a_slow_promoted_version_is_rolled_back_fast_to_the_warm_standby(demo: DemoRun) -> None:
    fast = demo.record["fast_rollback"]
    assert fast["available_before"] is True
    assert (fast["path"], fast["from_version"], fast["to_version"]) == ("fast", 2, 1)
    assert fast["within_bound"] is True
    assert fast["median_latency_ms_before"] > 500, "v2 was slower than dev's latency threshold"
    (after,) = [s for s in demo.record["endpoint_snapshots"] if s["label"] == "after the fast rollback"]
    (after_v2,) = [s for s in demo.record["endpoint_snapshots"] if s["label"] == "after v2"]
    assert after["config"] == after_v2["config"], "no endpoint config was created"
    assert after["variants"] == {"primary": 0.0, "standby": 1.0}
    answers = demo.answers("fast_rollback")
    assert not _unanswered(answers)
    assert {a["model_version"] for a in answers[-12:]} == {"v1"}
    assert "took the fast path: v2 -> v1" in " ".join(demo.output.split())


def test_killing_the_endpoint_mid_traffic_leaves_no_request_unanswered(demo: DemoRun) -> None:
    answers = demo.answers("fallback")
    issued, deleted = demo.record["endpoint_kill_issued_at"], demo.record["endpoint_killed_at"]
    before = [a for a in answers if a["at"] < issued]
    after = [a for a in answers if a["at"] >= deleted]
    assert all(a["status"] == 200 for a in answers)
    assert before and all(not a["fallback"] for a in before)
    # The one request in flight while the endpoint was being deleted may still have been answered by it.
    assert len(after) > 1 and all(a["fallback"] for a in after[1:])
    assert {a["fallback_reason"] for a in answers if a["fallback"]} <= {"endpoint_missing", "circuit_open"}
    flags = [a["fallback"] for a in answers]
    assert flags == sorted(flags), "once the endpoint was gone, every answer came from the fallback"
    assert demo.record["health_after_kill"]["answer"]["status"] in ("degraded", "unavailable")


def test_no_request_of_the_whole_run_went_unanswered(demo: DemoRun) -> None:
    answers = [a for a in demo.answers() if a["door"] == "api"]
    assert len(answers) > 100
    assert _unanswered(answers) == []
    assert demo.record["delivery_failures"] == []


def test_every_principal_acted_within_its_policies(demo: DemoRun) -> None:
    """The whole story runs under IAM: no call of any role or service principal was refused or not evaluable."""
    fidelity = demo.record["fidelity"]
    roles = [name for name in fidelity["principals"] if name != "administrator"]
    assert len(roles) >= 5, fidelity["principals"]
    assert (fidelity["totals"]["denied"], fidelity["totals"]["not_evaluable"]) == (0, 0), fidelity["refusals"]
    assert "Fidelity: IAM decisions per principal" in (demo.run_dir / "report.html").read_text()


def test_a_second_model_trains_deploys_and_serves_beside_churn_from_its_own_endpoint(demo: DemoRun) -> None:
    models = demo.record["models"]
    assert sorted(models) == ["churn", "upsell"]
    assert models["upsell"]["dataset"] == "upsell" and models["churn"]["dataset"] == "churn"
    assert {m["route"] for m in models.values()} == {"/models/churn/predict", "/models/upsell/predict"}
    assert models["churn"]["endpoint"] == ENDPOINT and models["upsell"]["endpoint"] != ENDPOINT
    second = demo.record["second_model"]
    assert second["ingest"]["rows_curated"] == second["ingest"]["rows"]
    training = demo.training("upsell v1")
    assert training["status"] == "SUCCEEDED" and training["trigger"]["kind"] == "new_data"
    assert training["arn"].split(":execution:")[1].startswith(f"{models['upsell']['prefix']}-training:")
    assert second["package"]["version"] == 1 and second["package"]["approval"] == "Approved"
    assert f":model-package/{models['upsell']['model_package_group']}/1" in second["package"]["arn"]
    assert demo.deploy("upsell v1")["status"] == "SUCCEEDED"
    assert second["endpoint"] == {"name": models["upsell"]["endpoint"], "status": "InService"}
    for name, route in second["routes"].items():
        assert route["sent"] > 0 and route["answered"] == route["sent"], route
        assert route["same_as_own_endpoint"] is True, route
        assert route["described_endpoint"] == models[name]["endpoint"]
        assert route["contract"] == models[name]["dataset"]
    assert second["routes"]["upsell"]["model_versions"] == ["v1"]
    assert second["cross_contract"]["status"] == 400, "churn's route validates against churn's contract"
    upsell_alarms, churn_alarms = second["alarms"]["upsell"], second["alarms"]["churn"]
    assert len(upsell_alarms) > 10 and not set(upsell_alarms) & set(churn_alarms)
    assert all(name.startswith(models["upsell"]["prefix"] + "-") for name in upsell_alarms)
    assert "Models side by side" in (demo.run_dir / "report.html").read_text()


def test_after_the_world_changes_twice_the_retrained_model_beats_v1_on_post_change_data(demo: DemoRun) -> None:
    # Given the loop simulated by day after a feature drift and after a concept change (same inputs)
    runs = {run["scenario"]: run for run in demo.record["recovery"]}
    assert set(runs) == {"feature_drift", "concept_change"}

    for name, run in runs.items():
        # Then something detected it, a version trained since the change serves all traffic after its canary,
        # and it beats v1 on labelled post-change data
        assert run["detection"] is not None, name
        assert run["days_to_recover"] is not None, name
        assert run["auc_v2"] > run["auc_v1"], (name, run["auc_v1"], run["auc_v2"])
        assert run["auc_oracle"] - run["auc_v1"] >= 0.02, (name, run)
    # The drift detector sees the moved inputs the same day; only the labels can show the concept change
    assert runs["feature_drift"]["detection"]["by"] == "drift alarm"
    assert runs["concept_change"]["detection"]["by"] == "live-AUC drop alarm"
