"""Start a retraining: one entry for every trigger (schedule, new curated data, drift alarm, manual).

The execution name derives from the trigger, so the same event delivered twice names the same execution
and Step Functions refuses the second. A cooldown allows at most one retraining per window; triggers that
arrive while a retraining runs, or inside the cooldown, are recorded and not started.

Two DIFFERENT triggers at the same instant (a new-data event and the drift alarm) could both see "nothing
running, outside the cooldown" and both start a run: the check and the start are two calls, and dev/staging
cannot reserve concurrency 1 (a new account's quota of 10 forbids any reservation). So the check and the start
happen under a start lease: one S3 object claimed with a conditional write, `If-None-Match: *` to create it and
`If-Match: <ETag>` to take it over (compare-and-swap). S3 applies either atomically; of two racing writers one
gets 412 PreconditionFailed or 409 ConditionalRequestConflict (S3 User Guide, "How to prevent object overwrites
with conditional writes", https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html; PutObject
API reference, IfMatch / IfNoneMatch). Chosen over a DynamoDB conditional put because the function already writes
to the artifacts bucket (no cross-stack table, key or grant), and over the cooldown slot as the execution name
because the name already carries the trigger's identity (the redelivery guard) and a forced run has no slot.

The lease is taken only by a trigger the policy would start, so a trigger that starts nothing (an alarm back to
OK) never crowds out one that would. A lease names the run its holder started and stays held while that run is
RUNNING: ListExecutions is eventually consistent ("may not reflect very recent updates", StepFunctions API
reference), so a run started a moment ago may not be listed yet, but its lease is read back strongly
(S3 read-after-write). A holder that started nothing releases the lease; one that crashed before starting leaves a
lease that expires after START_LEASE_TTL (longer than the function's timeout), so nothing jams for good.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, Protocol

from functions.shared.platform_events import CURATED_DATA_INGESTED
from functions.shared.settings import load_settings

TriggerKind = Literal["schedule", "new_data", "alarm", "manual"]
TRIGGER_RECORDS_PREFIX = "training/triggers"
START_LEASE_KEY = "training/start-lease.json"
# Lambda's longest timeout: a holder still running never loses its lease; one that crashed frees it after this.
START_LEASE_TTL = timedelta(minutes=15)
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class TriggerError(ValueError):
    """The event is not one of the triggers this function understands; the message says what it got."""


def start_lease_key(model: str = "") -> str:
    """Where a model's start lease lies in the stage's shared artifacts bucket (a stage's only model: as always)."""
    return START_LEASE_KEY if not model else f"training/start-lease-{model}.json"


@dataclass(frozen=True)
class StartTrainingSettings:
    state_machine_arn: str
    artifacts_bucket: str
    cooldown_minutes: int
    # MLLOOP_MODEL (functions/shared/settings.MODEL_VARIABLE): the model, beside other models of the stage.
    mlloop_model: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StartTrainingSettings:
        return load_settings(cls, env)


@dataclass(frozen=True)
class Trigger:
    kind: TriggerKind
    # What fired: the schedule rule's name, the curated object key, the alarm's name, or who asked.
    source: str
    time: datetime
    event_id: str
    detail: dict[str, str] = field(default_factory=dict)
    # Only a person may skip the cooldown; a running retraining is never doubled.
    force: bool = False
    # Beside other models of the stage, the model this trigger starts: one new-data event reaches every model of
    # its dataset, and the run's name is its folder in the shared artifacts bucket (training/runs/<name>/).
    model: str = ""

    @property
    def execution_name(self) -> str:
        """Stable across redeliveries: the event id, plus the event's own time for events (a manual request has
        no time of its own, only its request id)."""
        seed = f"{self.kind}|{self.event_id}" + (f"|{self.model}" if self.model else "")
        digest = hashlib.sha256(seed.encode()).hexdigest()[:12]
        kind = self.kind.replace("_", "-") + (f"-{self.model}" if self.model else "")
        name = f"{kind}-{digest}" if self.kind == "manual" else f"{kind}-{self.time:%Y%m%dT%H%M%SZ}-{digest}"
        return _NAME_UNSAFE.sub("-", name)[:80]

    def to_input(self) -> dict[str, Any]:
        """The `trigger` object of the state machine's input; it becomes the package's lineage."""
        return {
            "kind": self.kind,
            "source": self.source,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "event_id": self.event_id,
            "detail": dict(self.detail),
            "force": self.force,
        }


@dataclass(frozen=True)
class Decision:
    start: bool
    reason: str


@dataclass(frozen=True)
class Outcome:
    started: bool
    reason: str
    execution_name: str
    execution_arn: str
    trigger: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _parse_time(raw: Any, fallback: datetime) -> datetime:
    if not isinstance(raw, str) or not raw:
        return fallback
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_window_end(raw: Any) -> str:
    """A manual run may name the last day it trains on (a backfill, a reproduction); an ISO date."""
    try:
        return date.fromisoformat(str(raw)[:10]).isoformat()
    except ValueError as exc:
        raise TriggerError(f"manual trigger: window_end {raw!r} is not an ISO date (YYYY-MM-DD)") from exc


def parse_trigger(event: Mapping[str, Any], now: datetime) -> Trigger:
    """Recognise the trigger: an EventBridge event (schedule, curated data ingested, alarm) or a manual request."""
    detail_type = event.get("detail-type")
    raw_detail = event.get("detail")
    detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
    event_id = str(event.get("id", ""))
    event_time = _parse_time(event.get("time"), now)
    if detail_type == "Scheduled Event":
        resources = event.get("resources") or ["schedule"]
        return Trigger("schedule", str(resources[0]).rsplit("/", 1)[-1], event_time, event_id)
    if detail_type == CURATED_DATA_INGESTED:
        source = detail.get("source") or {}
        return Trigger(
            "new_data",
            str(source.get("key", "")),
            event_time,
            event_id,
            {"bucket": str(source.get("bucket", "")), "rows_curated": str(detail.get("rows_curated", ""))},
        )
    if detail_type == "CloudWatch Alarm State Change":
        state = detail.get("state", {})
        return Trigger(
            "alarm",
            str(detail.get("alarmName", "")),
            _parse_time(state.get("timestamp"), event_time),
            event_id,
            {"state": str(state.get("value", "")), "reason": str(state.get("reason", ""))[:500]},
        )
    if event.get("trigger") == "manual":
        requested_by = str(event.get("requested_by") or "").strip()
        if not requested_by:
            raise TriggerError("manual trigger: requested_by is required (who asks for this retraining)")
        request_id = str(event.get("request_id") or now.isoformat())
        detail = {"reason": str(event.get("reason") or "")[:500]}
        if event.get("window_end"):
            detail["window_end"] = _parse_window_end(event["window_end"])
        return Trigger("manual", requested_by, now, request_id, detail, force=event.get("force") is True)
    raise TriggerError(
        f"unrecognised trigger (detail-type={detail_type!r}, keys={sorted(event)[:10]}); expected a schedule, "
        f"{CURATED_DATA_INGESTED!r} or CloudWatch alarm event, or {{'trigger': 'manual', 'requested_by': ...}}"
    )


def decide(
    trigger: Trigger, *, running: list[str], last_start: datetime | None, cooldown_minutes: int, now: datetime
) -> Decision:
    """Pure policy: whether this trigger starts a retraining, and why (or why not)."""
    if trigger.kind == "alarm" and trigger.detail.get("state") != "ALARM":
        return Decision(False, f"alarm {trigger.source} changed to {trigger.detail.get('state')}, not ALARM")
    if running:
        return Decision(False, f"a retraining is already running ({running[0]}); trigger recorded")
    if not trigger.force and last_start is not None:
        allowed_after = last_start + timedelta(minutes=cooldown_minutes)
        if now < allowed_after:
            return Decision(
                False,
                f"cooldown: the last retraining started at {last_start.isoformat()}, "
                f"the next may start after {allowed_after.isoformat()}; trigger recorded",
            )
    return Decision(True, f"{trigger.kind} trigger from {trigger.source}")


@dataclass(frozen=True)
class Lease:
    """Who holds the start lease, since when, and the run it started (if any)."""

    holder: str
    taken_at: datetime
    execution_arn: str = ""
    released: bool = False
    # Unique per write, so a lease written again with the same fields still gets a new ETag (no ABA).
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> bytes:
        return json.dumps({**asdict(self), "taken_at": self.taken_at.isoformat()}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Lease:
        data = json.loads(raw)
        return cls(
            holder=str(data["holder"]),
            taken_at=_parse_time(data["taken_at"], datetime.now(UTC)),
            execution_arn=str(data.get("execution_arn", "")),
            released=bool(data.get("released", False)),
            token=str(data.get("token", "")),
        )


def lease_refusal(lease: Lease, *, now: datetime, execution_status: str | None) -> str | None:
    """Pure policy: why a held lease may not be taken over (None: it may). `execution_status` is the status of
    the run the lease names, None when it names none or Step Functions does not know it (yet)."""
    if lease.released:
        return None
    if lease.execution_arn:
        if execution_status not in (None, "RUNNING"):
            return None
        if execution_status is None and now >= lease.taken_at + START_LEASE_TTL:
            return None
        run = lease.execution_arn.rsplit(":", 1)[-1]
        return f"a retraining is already running ({run}, started by {lease.holder}); trigger recorded"
    if now >= lease.taken_at + START_LEASE_TTL:
        return None
    return (
        f"another trigger ({lease.holder}) has held the start lease since {lease.taken_at.isoformat()} "
        "and is starting a retraining; trigger recorded"
    )


class StartLease(Protocol):
    """The one-at-a-time guard around check-and-start, behind a seam the tests replace."""

    def acquire(self, holder: str, now: datetime, status_of: Callable[[str], str | None]) -> str | None:
        """Take the lease (None) or say why not."""
        ...

    def mark_started(self, execution_arn: str) -> None: ...

    def release(self) -> None: ...


class Executions(Protocol):
    """The Step Functions calls this function makes, behind a seam the tests replace."""

    def exists(self, name: str) -> str | None: ...

    def running(self) -> list[str]: ...

    def last_start(self) -> datetime | None: ...

    def start(self, name: str, payload: dict[str, Any]) -> str | None: ...

    def status(self, execution_arn: str) -> str | None: ...


class TriggerLog(Protocol):
    def record(self, outcome: Outcome, at: datetime) -> None: ...


def _decide_now(trigger: Trigger, executions: Executions, settings: StartTrainingSettings, now: datetime) -> Decision:
    return decide(
        trigger,
        running=executions.running(),
        last_start=executions.last_start(),
        cooldown_minutes=settings.cooldown_minutes,
        now=now,
    )


def _start_under_lease(
    trigger: Trigger, *, executions: Executions, lease: StartLease, settings: StartTrainingSettings, now: datetime
) -> tuple[Decision, str]:
    name = trigger.execution_name
    refusal = lease.acquire(name, now, executions.status)
    if refusal is not None:
        return Decision(False, refusal), ""
    started = ""
    try:
        # Again under the lease: a run another trigger started and finished in between counts for the cooldown.
        decision = _decide_now(trigger, executions, settings, now)
        if decision.start:
            arn = executions.start(name, {"trigger": trigger.to_input()})
            if arn is None:
                decision = Decision(False, f"duplicate trigger: execution {name} already exists")
            else:
                started = arn
                lease.mark_started(arn)
    finally:
        if not started:
            lease.release()
    return decision, started


def start_training(
    event: Mapping[str, Any],
    *,
    executions: Executions,
    lease: StartLease,
    log: TriggerLog,
    settings: StartTrainingSettings,
    now: datetime,
) -> Outcome:
    trigger = replace(parse_trigger(event, now), model=settings.mlloop_model)
    name = trigger.execution_name
    existing = executions.exists(name)
    arn = ""
    if existing is not None:
        decision = Decision(False, f"duplicate trigger: execution {name} already exists")
        arn = existing
    else:
        decision = _decide_now(trigger, executions, settings, now)
        if decision.start:
            decision, arn = _start_under_lease(trigger, executions=executions, lease=lease, settings=settings, now=now)
    outcome = Outcome(decision.start, decision.reason, name, arn, trigger.to_input())
    log.record(outcome, now)
    return outcome


class BotoExecutions:
    def __init__(self, sfn: Any, state_machine_arn: str) -> None:
        self._sfn = sfn
        self._arn = state_machine_arn

    def _execution_arn(self, name: str) -> str:
        return f"{self._arn.replace(':stateMachine:', ':execution:', 1)}:{name}"

    def exists(self, name: str) -> str | None:
        arn = self._execution_arn(name)
        try:
            self._sfn.describe_execution(executionArn=arn)
        except self._sfn.exceptions.ExecutionDoesNotExist:
            return None
        return arn

    def running(self) -> list[str]:
        page = self._sfn.list_executions(stateMachineArn=self._arn, statusFilter="RUNNING", maxResults=10)
        return [str(e["name"]) for e in page.get("executions", [])]

    def last_start(self) -> datetime | None:
        page = self._sfn.list_executions(stateMachineArn=self._arn, maxResults=100)
        starts = [e["startDate"] for e in page.get("executions", [])]
        if not starts:
            return None
        latest: datetime = max(starts)
        return latest.astimezone(UTC) if latest.tzinfo else latest.replace(tzinfo=UTC)

    def start(self, name: str, payload: dict[str, Any]) -> str | None:
        try:
            response = self._sfn.start_execution(stateMachineArn=self._arn, name=name, input=json.dumps(payload))
        except self._sfn.exceptions.ExecutionAlreadyExists:
            return None
        return str(response["executionArn"])

    def status(self, execution_arn: str) -> str | None:
        try:
            return str(self._sfn.describe_execution(executionArn=execution_arn)["status"])
        except self._sfn.exceptions.ExecutionDoesNotExist:
            return None


# 412: the condition failed; 409: a concurrent conditional write to the key won; 404: an If-Match write found
# no object (S3 PutObject API reference, "Conditional writes").
_LOST_RACE = {"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"}


class S3StartLease:
    """The start lease as one object in the artifacts bucket, written only with S3 conditional writes."""

    def __init__(self, s3: Any, bucket: str, key: str = START_LEASE_KEY) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._key = key
        self._held: Lease | None = None
        self._etag = ""

    def _put(self, lease: Lease, **condition: str) -> bool:
        try:
            response = self._s3.put_object(
                Bucket=self._bucket, Key=self._key, Body=lease.to_json(), ContentType="application/json", **condition
            )
        except self._s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _LOST_RACE:
                return False
            raise
        self._held, self._etag = lease, str(response["ETag"])
        return True

    def acquire(self, holder: str, now: datetime, status_of: Callable[[str], str | None]) -> str | None:
        mine = Lease(holder=holder, taken_at=now)
        if self._put(mine, IfNoneMatch="*"):
            return None
        current = self._s3.get_object(Bucket=self._bucket, Key=self._key)
        lease = Lease.from_json(current["Body"].read())
        refusal = lease_refusal(
            lease, now=now, execution_status=status_of(lease.execution_arn) if lease.execution_arn else None
        )
        if refusal is not None:
            return refusal
        if self._put(mine, IfMatch=str(current["ETag"])):
            return None
        return "another trigger took the start lease at the same moment and is starting a retraining; trigger recorded"

    def mark_started(self, execution_arn: str) -> None:
        if self._held is not None:
            self._put(replace(self._held, execution_arn=execution_arn, token=uuid.uuid4().hex), IfMatch=self._etag)

    def release(self) -> None:
        if self._held is not None:
            self._put(replace(self._held, released=True, token=uuid.uuid4().hex), IfMatch=self._etag)
            self._held = None


class S3TriggerLog:
    """Every trigger and what became of it, one JSON object per trigger, for audit and for the debounce's story."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def record(self, outcome: Outcome, at: datetime) -> None:
        status = "started" if outcome.started else "recorded"
        key = f"{TRIGGER_RECORDS_PREFIX}/{at:%Y-%m-%d}/{at:%H%M%S%f}-{status}-{outcome.execution_name}.json"
        body = json.dumps({**outcome.to_dict(), "recorded_at": at.isoformat()}, sort_keys=True)
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body.encode(), ContentType="application/json")
