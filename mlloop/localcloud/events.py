"""EventBridge delivery that moto lacks: Lambda, Step Functions and SNS targets, Input/InputPath, schedules.

moto matches rules' patterns and delivers to SQS and log groups, but raises NotImplementedError for
Lambda and Step Functions targets and ignores `Input`/`InputPath`. `Rule.send_to_targets` is patched
so every source of events (boto3 `put_events`, S3 EventBridge notifications, the emulated services'
`emit_event`, fired schedules) goes through one delivery path: Lambda targets are invoked
asynchronously (as AWS does), Step Functions targets start a named execution.

Schedule rules fire on the cloud's clock (`ScheduleSource`, clock.py): when a controlled clock is advanced,
or on the scaled timeline while the clock runs in the background (`up`); `fire_schedule` fires one now.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote_plus

from moto.events.models import Rule, events_backends
from moto.events.utils import EventMessageType, EventTemplateParser

from mlloop.localcloud import schedule_expressions
from mlloop.localcloud.dispatch import DeliveryFailure

if TYPE_CHECKING:
    from mlloop.localcloud.clock import Clock
    from mlloop.localcloud.lambdas import LambdaRuntime

LOG = logging.getLogger("mlloop.localcloud")


def _iso_time(value: Any) -> str:
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _json_path(document: Any, path: str) -> Any:
    from jsonpath_ng import ext

    matches = ext.parse(path).find(document)  # type: ignore[attr-defined]
    return matches[0].value if matches else None


def as_s3_sends_it(event: Mapping[str, Any]) -> dict[str, Any]:
    """moto's S3 "Object ..." event as S3 sends it to EventBridge: `etag` (moto spells it `eTag`, Powertools'
    model and S3's examples say `etag`) and the object key URL-encoded as in every S3 event payload ("red
    flower.jpg" becomes "red+flower.jpg", https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html;
    LocalStack's AWS-validated notifier encodes the EventBridge detail's key alike), while moto sends it raw.
    Rules match the encoded key, as on AWS."""
    out = copy.deepcopy(dict(event))
    s3_object = out.get("detail", {}).get("object") if out.get("source") == "aws.s3" else None
    if isinstance(s3_object, dict):
        if "eTag" in s3_object:
            s3_object["etag"] = s3_object.pop("eTag")
        if isinstance(s3_object.get("key"), str):
            s3_object["key"] = quote_plus(s3_object["key"], safe="/")
    return out


def target_input(target: Mapping[str, Any], event: dict[str, Any]) -> Any:
    """What a target receives: the event, its `Input` constant, its `InputPath` or its `InputTransformer`."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        return _json_path(event, target["InputPath"])
    transformer = target.get("InputTransformer")
    if transformer:
        with_ingestion_time: Any = {**event, "ingestion-time": event.get("ingestion-time", event.get("time"))}
        return EventTemplateParser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=with_ingestion_time,
        )
    return event


class EventRouter:
    """Owns the patched delivery; one per running local cloud."""

    def __init__(self, runtime: LambdaRuntime, *, account_id: str, region: str, clock: Clock) -> None:
        self.runtime = runtime
        self.account_id = account_id
        self.region = region
        self.clock = clock
        self._original_send: Any = None

    def install(self) -> None:
        router = self
        self._original_send = Rule.send_to_targets

        def send_to_targets(rule: Rule, original_event: Any, transform_input: bool = True) -> None:
            if rule.state == "DISABLED" or (rule.scheduled_expression and not rule.event_pattern.get_pattern()):
                return
            event = as_s3_sends_it(original_event)
            if not rule.event_pattern.matches_event(cast(EventMessageType, event)):
                return
            router.deliver(rule, event)

        Rule.send_to_targets = send_to_targets  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        if self._original_send is not None:
            Rule.send_to_targets = self._original_send  # type: ignore[method-assign]
            self._original_send = None

    def deliver(self, rule: Rule, original_event: Mapping[str, Any]) -> None:
        """Send an event that matched `rule` to each of its targets; failures are recorded, never raised."""
        event = copy.deepcopy(dict(original_event))
        event["time"] = _iso_time(event.get("time") or self.clock.now().timestamp())
        event.pop("ingestion-time", None)
        for target in list(rule.targets):
            try:
                self._deliver_one(rule, target, event)
            except Exception as exc:
                LOG.warning("rule %s could not deliver to %s: %r", rule.name, target.get("Arn"), exc)
                self.runtime.dispatcher.failures.append(
                    DeliveryFailure(f"rule {rule.name} -> {target.get('Arn')}", repr(exc))
                )

    def _deliver_one(self, rule: Rule, target: Mapping[str, Any], event: dict[str, Any]) -> None:
        arn: str = target["Arn"]
        parts = arn.split(":")
        service, region, account = parts[2], parts[3] or self.region, parts[4] or self.account_id
        payload = target_input(target, event)
        body = payload if isinstance(payload, str) else json.dumps(payload)
        _authorise_delivery(rule, target, service, account)
        if service == "lambda":
            self.runtime.invoke_by_arn(arn, payload, account_id=account)
        elif service == "states":
            from moto.stepfunctions.responses import get_backend as get_sfn_backend

            get_sfn_backend(account, region).start_execution(
                arn, name=f"{rule.name[:40]}-{uuid.uuid4().hex[:16]}", execution_input=json.dumps(payload)
            )
        elif service == "sqs":
            from moto.sqs.models import sqs_backends

            group_id = target.get("SqsParameters", {}).get("MessageGroupId")
            sqs_backends[account][region].send_message(queue_name=parts[5], message_body=body, group_id=group_id)
        elif service == "sns":
            from moto.sns.models import sns_backends

            sns_backends[account][region].publish(arn=arn, message=body)
        else:
            # Log groups, archives, other buses, API destinations: moto's own delivery handles them.
            single = copy.copy(rule)
            single.targets = [dict(target)]
            self._original_send(single, event, transform_input=True)

    def put_events(self, entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """PutEvents on the default bus (entries as boto3 takes them; `Detail` may be a mapping)."""
        normalised = []
        for entry in entries:
            item = dict(entry)
            if not isinstance(item.get("Detail"), str):
                item["Detail"] = json.dumps(item.get("Detail") or {})
            normalised.append(item)
        results: list[dict[str, Any]] = []
        for start in range(0, len(normalised), 10):
            results += events_backends[self.account_id][self.region].put_events(normalised[start : start + 10])
        return results

    def emit_event(
        self, source: str, detail_type: str, detail: Mapping[str, Any], resources: Iterable[str] = ()
    ) -> None:
        """An AWS service event (e.g. `aws.sagemaker`), delivered to matching rules exactly like PutEvents."""
        self.put_events(
            [{"Source": source, "DetailType": detail_type, "Detail": dict(detail), "Resources": list(resources)}]
        )

    def find_rule(self, rule_name: str) -> Rule:
        backend = events_backends[self.account_id][self.region]
        for bus in backend.event_buses.values():
            for rule in bus.rules.values():
                if rule_name in (rule.name, rule.arn):
                    return rule
        raise KeyError(f"no EventBridge rule named {rule_name!r}")

    def fire_schedule(self, rule_name: str) -> dict[str, Any]:
        """Deliver the "Scheduled Event" a schedule rule sends when it fires; returns that event."""
        rule = self.find_rule(rule_name)
        if not rule.scheduled_expression:
            raise ValueError(f"rule {rule_name!r} has no schedule expression")
        return self.fire_rule(rule, self.clock.now())

    def fire_rule(self, rule: Rule, moment: dt.datetime) -> dict[str, Any]:
        """A schedule rule's "Scheduled Event" with `time` = `moment`, delivered unless the rule is disabled."""
        _, _, _, region, account, _ = rule.arn.split(":", 5)
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": moment.timestamp(),
            "region": region,
            "resources": [rule.arn],
            "detail": {},
        }
        if rule.state != "DISABLED":
            self.deliver(rule, event)
        return {**event, "time": _iso_time(event["time"])}


class ScheduleSource:
    """Every enabled schedule rule of every account and region, firing on the clock's timeline.

    A rule's creation is when this source first sees it (at once with a controlled clock, which only moves in
    `advance`; within a tick of the background clock otherwise); a changed expression counts as a new rule.
    """

    name = "schedules"

    def __init__(self, router: EventRouter) -> None:
        self.router = router
        self._created: dict[str, tuple[str, dt.datetime]] = {}
        self._refused: set[str] = set()

    def _rules(self) -> list[tuple[Rule, dt.datetime]]:
        rules = []
        seen = set()
        for by_region in list(events_backends.values()):
            for backend in list(by_region.values()):
                for bus in list(backend.event_buses.values()):
                    for rule in list(bus.rules.values()):
                        expression = rule.scheduled_expression
                        if not expression or rule.state == "DISABLED":
                            continue
                        seen.add(rule.arn)
                        known = self._created.get(rule.arn)
                        if known is None or known[0] != expression:
                            known = (expression, self.router.clock.timeline())
                            self._created[rule.arn] = known
                        rules.append((rule, known[1]))
        for arn in set(self._created) - seen:
            del self._created[arn]
        return rules

    def _next(self, rule: Rule, after: dt.datetime, created: dt.datetime) -> dt.datetime | None:
        try:
            return schedule_expressions.next_run(rule.scheduled_expression or "", after, created)
        except ValueError as exc:
            if rule.arn not in self._refused:
                self._refused.add(rule.arn)
                LOG.warning("schedule rule %s never fires locally: %s", rule.name, exc)
            return None

    def next_due(self, after: dt.datetime) -> dt.datetime | None:
        dues = [due for rule, created in self._rules() if (due := self._next(rule, after, created)) is not None]
        return min(dues) if dues else None

    def run_due(self, due: dt.datetime, now: dt.datetime) -> None:
        just_before = due - dt.timedelta(microseconds=1)
        for rule, created in self._rules():
            if self._next(rule, just_before, created) == due:
                self.router.fire_rule(rule, now)


def _authorise_delivery(rule: Rule, target: Mapping[str, Any], service: str, account: str) -> None:
    """EventBridge delivers as events.amazonaws.com (Lambda, SNS, SQS: the resource's policy decides) or with the
    target's role (Step Functions: the role's policies decide), as AWS does."""
    from mlloop.localcloud import authz

    arn: str = target["Arn"]
    if target.get("RoleArn"):
        action = {"states": "states:StartExecution", "lambda": "lambda:InvokeFunction", "sqs": "sqs:SendMessage"}
        if service in action:
            authz.authorise_role(target["RoleArn"], action[service], arn, session=f"events-{rule.name}"[:64])
        return
    if service == "lambda":
        authz.authorise_service(
            "events.amazonaws.com",
            "lambda:InvokeFunction",
            arn,
            account=account,
            source_arn=rule.arn,
            source_account=account,
        )
    elif service == "sns":
        authz.authorise_service_publish("events.amazonaws.com", arn, source_arn=rule.arn, account=account)
    elif service == "sqs":
        authz.authorise_service(
            "events.amazonaws.com", "sqs:SendMessage", arn, account=account, source_arn=rule.arn, source_account=account
        )
