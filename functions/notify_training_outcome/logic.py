"""Tell people how a training run ended: registered, rejected by a gate (with every reason), stopped for want of
new labels, or failed (what broke).

The same summary goes to the notifications topic and back to the workflow, whose Fail state quotes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

Outcome = Literal["registered", "rejected", "data_rejected", "no_new_labels", "failed"]
OUTCOMES: tuple[str, ...] = ("registered", "rejected", "data_rejected", "no_new_labels", "failed")
MAX_SUBJECT = 100
MAX_CAUSE = 2000


@dataclass(frozen=True)
class NotifySettings:
    topic_arn: str
    model_package_group: str
    stage: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifySettings:
        source = os.environ if env is None else env
        return cls(
            topic_arn=source["NOTIFICATIONS_TOPIC_ARN"],
            model_package_group=source["MODEL_PACKAGE_GROUP"],
            stage=source.get("STAGE", ""),
        )


@dataclass(frozen=True)
class Summary:
    outcome: str
    subject: str
    lines: list[str]
    error: str
    cause: str

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _failure(state: Mapping[str, Any]) -> tuple[str, str]:
    """The error name and a one-line cause: which step broke and the error it raised."""
    error = state.get("error") or {}
    name = str(error.get("Error", "States.TaskFailed"))
    cause = str(error.get("Cause", ""))
    try:
        parsed = json.loads(cause)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "errorMessage" in parsed:
        cause = f"{parsed.get('errorType', name)}: {parsed['errorMessage']}"
    step = str(state.get("failed_step") or "the workflow")
    # A Fail state may not raise a name in the reserved States.* namespace.
    if name.startswith("States."):
        name = f"Workflow.{name.removeprefix('States.')}"
    return name, _shorten(f"{step} failed: {cause}")


def _shorten(text: str) -> str:
    """Keep both ends: the start says what failed, the end (a script's last exception) says why."""
    if len(text) <= MAX_CAUSE:
        return text
    head = MAX_CAUSE // 4
    return f"{text[:head]} ... {text[-(MAX_CAUSE - head - 5) :]}"


def summarise(outcome: str, run_id: str, state: Mapping[str, Any], settings: NotifySettings) -> Summary:
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome: {outcome!r} is not one of {', '.join(OUTCOMES)}")
    trigger = state.get("trigger") or {}
    snapshot = state.get("snapshot") or {}
    evaluation = state.get("evaluation") or {}
    registration = state.get("registration") or {}
    head = [
        f"Training run {run_id} ({settings.stage}, {settings.model_package_group})",
        f"Trigger: {trigger.get('kind', 'unknown')} from {trigger.get('source', 'unknown')} "
        f"at {trigger.get('time', '')}",
    ]
    if snapshot:
        head.append(
            f"Data: {snapshot.get('object_count', 0)} files, version {snapshot.get('data_version', '')}, "
            f"window {snapshot.get('window_start', '')}..{snapshot.get('window_end', '')}"
            + (
                f" (curated data spans {snapshot['curated_span'] or 'nothing yet'})"
                if not snapshot.get("object_count") and "curated_span" in snapshot
                else ""
            )
        )
    metrics = evaluation.get("metrics") or {}
    if metrics:
        shown = ", ".join(
            f"{k} {float(metrics[k]):.4f}" for k in ("roc_auc", "pr_auc", "ece", "log_loss") if k in metrics
        )
        head.append(f"Candidate {evaluation.get('model_version', '')}: {shown}")
        if evaluation.get("champion_model_version"):
            head.append(f"Champion: {evaluation['champion_model_version']}")
    error, cause = "", ""
    if outcome == "registered":
        status = registration.get("approval_status", "")
        subject = f"[{settings.stage}] model registered ({status}): {evaluation.get('model_version', run_id)}"
        lines = [
            *head,
            f"Registered {registration.get('model_package_arn', '')} with status {status}.",
            "Gate checks:",
            *(f"  - {r}" for r in evaluation.get("reasons", [])),
        ]
    elif outcome == "rejected":
        subject = f"[{settings.stage}] candidate rejected by the promotion gate: {run_id}"
        lines = [
            *head,
            "The promotion gate rejected the candidate; nothing was registered. Reasons:",
            *(f"  - {r}" for r in evaluation.get("reasons", [])),
            f"Decision record: {evaluation.get('decision_uri', '')}",
        ]
    elif outcome == "data_rejected":
        gate = state.get("data_gate") or {}
        subject = f"[{settings.stage}] training data rejected by the data gate: {run_id}"
        lines = [
            *head,
            "The data gate rejected the snapshot; no training job was started. Reasons:",
            *(f"  - {r}" for r in gate.get("reasons", [])),
            f"Profile: {gate.get('profile_uri', '')}",
        ]
        error, cause = "DataGateRejected", str(gate.get("summary", "data gate rejected the snapshot"))[:MAX_CAUSE]
    elif outcome == "no_new_labels":
        labels = snapshot.get("labels") or {}
        subject = f"[{settings.stage}] retraining stopped, no new labels since the champion: {run_id}"
        lines = [
            *head,
            "No training job was started and nothing was registered: "
            + str(snapshot.get("retraining_reason", "no new labels since the champion")),
            f"Labels at the cut {labels.get('cut', '')}: {labels.get('labelled', 0)} labelled rows, "
            f"{labels.get('immature_dropped', 0)} still in their label window, "
            f"{labels.get('rows_not_yet_arrived', 0)} rows and {labels.get('labels_not_yet_arrived', 0)} labels "
            "landed after it.",
        ]
    else:
        error, cause = _failure(state)
        subject = f"[{settings.stage}] training run failed: {run_id}"
        lines = [*head, f"Error: {error}", f"Cause: {cause}"]
    return Summary(outcome, subject[:MAX_SUBJECT], lines, error, cause)


def notify(outcome: str, run_id: str, state: Mapping[str, Any], *, sns: Any, settings: NotifySettings) -> Summary:
    summary = summarise(outcome, run_id, state, settings)
    sns.publish(
        TopicArn=settings.topic_arn,
        Subject=summary.subject,
        Message=summary.text,
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "training-run"},
            "outcome": {"DataType": "String", "StringValue": outcome},
        },
    )
    return summary
