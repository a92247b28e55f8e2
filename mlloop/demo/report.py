"""The run report: one self-contained HTML file (pictures inlined as PNG) written beside run.json.

Pictures: model metrics per version plus the training job's own evaluation plots, drift per feature, traffic
split over time during the deploys, the alarm and deployment timeline, and the ingest's quarantine counts.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

# The demo runs on servers and in CI: render to memory, never to a display.
matplotlib.use("Agg")

import matplotlib.pyplot as plt

METRICS = ("roc_auc", "pr_auc", "ece", "brier")
# Indexed by model version number: v1 blue, v2 green, v3 purple.
VARIANT_COLOURS = ("#8c564b", "#1f77b4", "#2ca02c", "#9467bd")


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _img(data: str, alt: str) -> str:
    media = "image/svg+xml" if alt.endswith(".svg") else "image/png"
    return f'<img alt="{html.escape(alt)}" src="data:{media};base64,{data}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _seconds(record: dict[str, Any], iso: str) -> float:
    started = datetime.fromisoformat(record["started_at"])
    return (datetime.fromisoformat(iso.replace("Z", "+00:00")) - started).total_seconds()


def metrics_chart(record: dict[str, Any]) -> str | None:
    trainings = [t for t in record.get("trainings", []) if t.get("evaluation", {}).get("metrics")]
    if not trainings:
        return None
    figure, axis = plt.subplots(figsize=(7, 3))
    width = 0.8 / len(trainings)
    for index, training in enumerate(trainings):
        values = [training["evaluation"]["metrics"].get(m, 0.0) for m in METRICS]
        positions = [i + index * width for i in range(len(METRICS))]
        axis.bar(positions, values, width, label=training["label"], color=_colour(training["label"]))
    axis.set_xticks([i + width * (len(trainings) - 1) / 2 for i in range(len(METRICS))], METRICS)
    axis.set_title("Test metrics per trained version (gate: AUC >= 0.70, ECE <= 0.05)")
    axis.legend()
    return _png(figure)


def drift_chart(record: dict[str, Any]) -> str | None:
    report = record.get("drift", {}).get("report")
    if not report:
        return None
    features = sorted(report["features"], key=lambda f: f.get("psi") or 0.0)
    figure, axis = plt.subplots(figsize=(7, 4))
    colours = ["#d62728" if f["drifted"] else "#7f7f7f" for f in features]
    axis.barh([f["name"] for f in features], [f.get("psi") or 0.0 for f in features], color=colours)
    axis.axvline(report["thresholds"]["psi"], linestyle="--", color="black", label="PSI threshold")
    axis.set_title(f"Drift per feature on {report['sample_count']} captured rows (red: drifted)")
    axis.set_xlabel("PSI vs the training baseline")
    axis.legend()
    return _png(figure)


def traffic_chart(record: dict[str, Any]) -> str | None:
    samples = record.get("traffic_split", [])
    answers = [
        a
        for a in record.get("answers", [])
        if a["phase"] in ("canary_v2", "bad_canary") and a["status"] == 200 and a["door"] == "api"
    ]
    if not samples:
        return None
    figure, (shares, served) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for phase, colour in (("canary_v2", "#2ca02c"), ("bad_canary", "#d62728")):
        mine = [s for s in samples if s["phase"] == phase]
        if mine:
            green = next((m["green"] for m in mine if m["green"]), "none")
            label = f"{green}'s share ({'canary, promoted' if phase == 'canary_v2' else 'canary, rolled back'})"
            shares.step(
                [s["at"] for s in mine], [s["green_share"] for s in mine], where="post", color=colour, label=label
            )
    shares.set_ylabel("share of traffic")
    shares.set_ylim(-0.05, 1.05)
    shares.set_title("Blue/green: the new fleet's share of traffic during each deploy")
    shares.legend(fontsize=7)
    who = sorted({a["model_version"] if not a["fallback"] else "fallback" for a in answers})
    for index, name in enumerate(who):
        mine = [a for a in answers if (a["model_version"] if not a["fallback"] else "fallback") == name]
        served.scatter([a["at"] for a in mine], [index] * len(mine), s=10, color=_colour(name))
    served.set_yticks(range(len(who)), who)
    served.set_xlabel("seconds since the run started")
    served.set_title("Who answered each API request (the front door)")
    return _png(figure)


def timeline_chart(record: dict[str, Any]) -> str | None:
    runs = [("training " + t["label"], t) for t in record.get("trainings", [])]
    runs += [("deploy " + d["label"], d) for d in record.get("deploys", [])]
    runs.sort(key=lambda labelled: labelled[1].get("started") or 0.0)
    if not runs:
        return None
    figure, axis = plt.subplots(figsize=(9, 4.5))
    for row, (label, run) in enumerate(runs):
        start, stop = run.get("started") or 0.0, run.get("stopped") or run.get("started") or 0.0
        colour = "#2ca02c" if run["status"] == "SUCCEEDED" else "#d62728"
        axis.barh(row, max(stop - start, 0.5), left=start, color=colour)
        axis.text(start, row + 0.3, f"{label}: {run['status']}", fontsize=7)
    alarms = [e for e in record.get("events", []) if e["type"] == "CloudWatch Alarm State Change"]
    alarm_row = len(runs)
    entered: dict[float, list[str]] = {}
    for event in alarms:
        if event["detail"].get("state", {}).get("value") == "ALARM":
            name = event["detail"]["alarmName"].removeprefix(f"mlloop-{record['stage']}-")
            entered.setdefault(round(_seconds(record, event["time"])), []).append(name)
    for at, names in entered.items():
        axis.scatter([at], [alarm_row], marker="v", color="#d62728")
        axis.text(at, alarm_row - 0.45, "\n".join(names), fontsize=6, va="top")
    axis.set_yticks(range(len(runs) + 1), [label for label, _ in runs] + ["alarms -> ALARM"])
    axis.set_xlabel("seconds since the run started")
    axis.set_title("Executions (green succeeded, red failed) and alarms entering ALARM")
    return _png(figure)


def quarantine_chart(record: dict[str, Any]) -> str | None:
    ingest = record.get("ingest")
    if not ingest:
        return None
    figure, (totals, rules) = plt.subplots(1, 2, figsize=(8, 3))
    totals.bar(["curated", "quarantined"], [ingest["rows_curated"], ingest["rows_quarantined"]])
    totals.set_title(f"{ingest['rows_in']} rows in")
    counts = ingest.get("rule_counts", {})
    rules.barh(list(counts), list(counts.values()), color="#ff7f0e")
    rules.set_title("Quarantined rows by broken rule")
    return _png(figure)


def recovery_chart(record: dict[str, Any]) -> str | None:
    """Live AUC per version per simulated day (by the day of the traffic it judged, once its labels arrived),
    with the retraining alarm and the day each version served all traffic, one panel per scenario."""
    runs = record.get("recovery")
    if not runs:
        return None
    figure, axes = plt.subplots(len(runs), 1, figsize=(9, 3.2 * len(runs)), sharex=True, squeeze=False)
    for axis, run in zip(axes[:, 0], runs, strict=True):
        for version, days in run["live_auc"].items():
            points = sorted((int(day), auc) for day, auc in days.items())
            axis.plot([d for d, _ in points], [a for _, a in points], ".", ms=3, color=_colour(version), label=version)
        for alarm in run["alarms"]:
            axis.axvline(alarm["day"], color="red", ls="--", lw=1)
        for deploy in run["deploys"]:
            axis.axvline(
                deploy["day"], color=_colour(deploy["model_version"]), lw=1.5 if deploy["since_change"] else 0.5
            )
        axis.axvline(0, color="black", lw=1)
        axis.axhline(run["auc_oracle"], color="grey", ls=":", lw=1)
        axis.set_title(
            f"{run['scenario']}: v1 {run['auc_v1']:.3f}, {run['v2']} {run['auc_v2']:.3f},"
            f" oracle {run['auc_oracle']:.3f} (ratio {run['recovery_ratio']:.2f});"
            " red dashed: alarm, solid: a version serves all traffic",
            fontsize=8,
        )
        axis.set_ylabel("live AUC")
        axis.legend(fontsize=6, ncol=6, loc="lower left")
    axes[-1, 0].set_xlabel("simulated days after the change (day of the traffic judged)")
    return _png(figure)


def _colour(version: str) -> str:
    if version == "fallback":
        return "orange"
    number = version.removeprefix("v")
    return VARIANT_COLOURS[int(number) % len(VARIANT_COLOURS)] if number.isdigit() else "#7f7f7f"


def _section(title: str, *parts: str | None) -> str:
    return f"<h2>{html.escape(title)}</h2>" + "".join(p for p in parts if p)


def models_table(record: dict[str, Any]) -> str:
    """Each model of the stage, where it lives, and what its route answered in the side-by-side phase."""
    routes = record.get("second_model", {}).get("routes", {})
    alarms = record.get("second_model", {}).get("alarms", {})
    rows = []
    for name, names in record.get("models", {}).items():
        route = routes.get(name, {})
        rows.append(
            [
                name,
                names["dataset"],
                names["route"],
                names["endpoint"],
                f"{route.get('answered', '')}/{route.get('sent', '')} by {route.get('model_versions', '')}",
                route.get("same_as_own_endpoint", ""),
                len(alarms.get(name, {})),
                names["metrics_namespace"],
            ]
        )
    return _table(
        ["model", "dataset", "route", "endpoint", "answered", "same answer as its endpoint", "alarms", "metrics"], rows
    )


def write_report(record: dict[str, Any], run_dir: Path) -> Path:
    phases = _table(
        ["phase", "seconds", "what happened"],
        [[p["title"], f"{p['seconds']:.1f}", " | ".join(p["facts"])] for p in record.get("phases", [])],
    )
    packages = _table(
        ["version", "approval", "trigger", "deployment status", "test AUC"],
        [
            [
                f"v{p['version']}",
                p["approval"],
                p["metadata"].get("trigger", ""),
                p["metadata"].get("deployment_status", ""),
                p["metadata"].get("test_roc_auc", ""),
            ]
            for p in record.get("registry", [])
        ],
    )
    endpoints = _table(
        ["when", "status", "config", "variant weights"],
        [[s["label"], s["status"], s["config"], s["variants"]] for s in record.get("endpoint_snapshots", [])],
    )
    events = _table(
        ["time", "event", "what"],
        [[e["time"], e["type"], e["what"]] for e in record.get("events", []) if "Training Job" not in e["type"]],
    )
    plots = "".join(
        _img(base64.b64encode((run_dir / name).read_bytes()).decode(), name)
        for name in record.get("plots", [])
        if (run_dir / name).exists()
    )
    answers = [a for a in record.get("answers", []) if a["door"] == "api"]
    unanswered = sum(1 for a in answers if a["status"] == 0 or a["status"] >= 500)
    charts = {
        "metrics": metrics_chart(record),
        "drift": drift_chart(record),
        "traffic": traffic_chart(record),
        "timeline": timeline_chart(record),
        "quarantine": quarantine_chart(record),
        "recovery": recovery_chart(record),
    }
    fidelity = record.get("fidelity") or {}
    totals = fidelity.get("totals", {})
    principals = _table(
        ["principal", "calls", "authorised", "denied", "not evaluable"],
        [
            [name, p["calls"], p["authorised"], p["denied"], p["not_evaluable"]]
            for name, p in fidelity.get("principals", {}).items()
        ],
    )
    fidelity_summary = (
        f"<p>{totals.get('calls', 0)} calls checked against IAM: {totals.get('authorised', 0)} authorised, "
        f"{totals.get('denied', 0)} denied, {totals.get('not_evaluable', 0)} not evaluable; "
        f"{totals.get('validated_requests', 0)} requests validated against a service model.</p>"
    )
    status = f"stopped early: {record['failed']}" if record.get("failed") else "the whole story ran"
    body = "".join(
        [
            f"<h1>mlloop demo run ({html.escape(record['started_at'])})</h1>",
            f"<p><b>{html.escape(status)}</b> in {record.get('wall_seconds', 0):.1f} s. "
            f"{len(answers)} API requests, {len(answers) - unanswered} answered, "
            f"{sum(a['fallback'] for a in answers)} by the fallback.</p>",
            _section("Phases", phases),
            _section("Models side by side", models_table(record)),
            _section("Model versions", packages, _img(charts["metrics"], "metrics") if charts["metrics"] else None),
            _section("Evaluation plots of the promoted model (from its training job)", plots or None),
            _section(
                "Data quality at ingest", _img(charts["quarantine"], "quarantine") if charts["quarantine"] else None
            ),
            _section("Drift per feature", _img(charts["drift"], "drift") if charts["drift"] else None),
            _section(
                "Traffic split over time",
                _img(charts["traffic"], "traffic") if charts["traffic"] else None,
                endpoints,
            ),
            _section(
                "Alarm and deployment timeline",
                _img(charts["timeline"], "timeline") if charts["timeline"] else None,
                events,
            ),
            _section(
                "The world changes twice: live AUC per version over simulated days",
                "<p>The loop's own logic (detectors, window rule, training, gate, canary timings) on simulated days,"
                " in-process, not on the embedded AWS: Lambda, containers and moto read the host's clock.</p>",
                _img(charts["recovery"], "recovery") if charts["recovery"] else None,
            ),
            _section("Fidelity: IAM decisions per principal", fidelity_summary, principals),
        ]
    )
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}img{max-width:100%}"
    )
    path = run_dir / "report.html"
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>mlloop demo</title>"
        f"<style>{style}</style></head><body>{body}</body></html>"
    )
    return path
