"""`mlloop`: status, approval, rollback, retraining, retirement and reports for one stage.

Works against a real account (your AWS profile) or the embedded AWS (`--endpoint-url http://127.0.0.1:PORT`,
or AWS_ENDPOINT_URL), through the same boto3 code. `--json` prints machine-readable output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from functions.shared.settings import MODEL_VARIABLE
from infra.config import STAGES, ConfigError
from infra.context import add_context_argument, use_context_arguments
from mlloop import contract_draft
from mlloop.cli import registry, reports, serving, status, training
from mlloop.cli.platform import OperatorError, Platform
from mlloop.cli.render import Renderer


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def cmd_status(platform: Platform, args: argparse.Namespace, out: Renderer) -> dict[str, Any]:
    result = status.stage_status(platform, executions=args.executions, window_hours=args.window_hours)
    out.status(result)
    return result


def cmd_approve(platform: Platform, args: argparse.Namespace, out: Renderer) -> dict[str, Any]:
    package = registry.set_approval(platform, args.version, approve=True, reason=args.reason)
    out.line(f"v{package.version} is {package.approval} (reason recorded: {args.reason})", style="green")
    return {"version": package.version, "approval": package.approval, "arn": package.arn}


def cmd_reject(platform: Platform, args: argparse.Namespace, out: Renderer) -> dict[str, Any]:
    package = registry.set_approval(platform, args.version, approve=False, reason=args.reason)
    out.line(f"v{package.version} is {package.approval} (reason recorded: {args.reason})", style="yellow")
    return {"version": package.version, "approval": package.approval, "arn": package.arn}


def cmd_rollback(platform: Platform, args: argparse.Namespace, out: Renderer) -> dict[str, Any]:
    result = serving.rollback(platform, to_version=args.to, reason=args.reason, emergency=args.emergency)
    out.rollback(result)
    return _jsonable(result)  # type: ignore[no-any-return]


def cmd_retrain(platform: Platform, args: argparse.Namespace, out: Renderer) -> dict[str, Any]:
    outcome = training.request_retraining(platform, reason=args.reason, force=args.force, window_end=args.window_end)
    style = "green" if outcome.get("started") else "yellow"
    out.line(f"{'started' if outcome.get('started') else 'not started'}: {outcome.get('reason')}", style=style)
    return outcome


def cmd_retire(platform: Platform, args: argparse.Namespace, out: Renderer) -> dict[str, Any]:
    result = serving.retire(platform, keep=args.keep, dry_run=args.dry_run)
    out.retire(result, dry_run=args.dry_run)
    return _jsonable(result)  # type: ignore[no-any-return]


def cmd_report(platform: Platform, args: argparse.Namespace, out: Renderer) -> dict[str, Any]:
    files = reports.fetch_reports(platform, args.version, Path(args.out))
    for name, path in files.items():
        out.line(f"{name}: {path}")
    return {k: str(v) for k, v in files.items()}


def cmd_contract_draft(args: argparse.Namespace, out: Renderer) -> dict[str, Any]:
    draft = contract_draft.draft_contract(
        contract_draft.read_sample(args.sample),
        dataset=args.dataset or contract_draft.snake_case(Path(args.sample).name.split(".")[0]),
        label=args.label,
        entity_key=args.entity_key,
        event_time=args.event_time,
        label_window_days=args.label_window_days,
    )
    target = Path(args.out or f"contracts/{draft.contract['dataset']}/v1.json")
    if target.exists() and not args.force:
        raise OperatorError(f"{target} exists: review it, or pass --force to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(draft.contract, indent=2) + "\n")
    notes = target.with_suffix(".review.md")
    notes.write_text(draft.notes())
    for reason in draft.reasons:
        out.line(f"- {reason}")
    out.line(f"draft contract: {target}; review notes: {notes}", style="green")
    return {"contract": str(target), "notes": str(notes), "reasons": draft.reasons}


Command = Callable[[Platform, argparse.Namespace, Renderer], Any]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlloop", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--stage", choices=STAGES, default=os.environ.get("MLLOOP_STAGE", "dev"), help="stage to act on"
    )
    common.add_argument(
        "--model",
        default=os.environ.get(MODEL_VARIABLE) or None,
        help="model to act on (default: the stage's only model; required when the stage has several)",
    )
    common.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"), help="the embedded AWS URL")
    common.add_argument("--region", default=None, help="AWS region (default: the stage's)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    add_context_argument(common)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("status", parents=[common], help="versions, endpoint, deployment, alarms, executions, health")
    p.add_argument("--executions", type=int, default=5, help="how many recent training executions to show")
    p.add_argument("--window-hours", type=int, default=1, help="window for fallback rate and drift")
    p.set_defaults(func=cmd_status)

    for name, func, verb in (("approve", cmd_approve, "Approve"), ("reject", cmd_reject, "Reject")):
        p = sub.add_parser(name, parents=[common], help=f"{verb} a model package version, recording why")
        p.add_argument("version", help="package version, e.g. 3 or v3")
        p.add_argument("--reason", required=True, help="recorded in the registry")
        p.set_defaults(func=func)

    p = sub.add_parser(
        "rollback",
        parents=[common],
        help="return traffic to the previous (or a named) approved version: fast to a warm standby, else guarded",
    )
    p.add_argument("--to", default=None, help="version to roll back to (default: the previous approved one)")
    p.add_argument("--reason", required=True, help="recorded with who and when")
    p.add_argument(
        "--emergency",
        action="store_true",
        help="when no warm standby holds the target: deploy it ALL_AT_ONCE without the canary bake",
    )
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("retrain", parents=[common], help="start the training workflow (respects the cooldown)")
    p.add_argument("--reason", required=True, help="recorded as the execution's trigger")
    p.add_argument("--force", action="store_true", help="bypass the cooldown (recorded)")
    p.add_argument(
        "--window-end", default=None, help="last day (YYYY-MM-DD) to train on; default: the newest curated data"
    )
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("retire", parents=[common], help="delete unreferenced endpoint configs and models")
    p.add_argument("--keep", type=int, default=3, help="keep the N most recent approved versions")
    p.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    p.set_defaults(func=cmd_retire)

    p = sub.add_parser("report", parents=[common], help="fetch evaluation, model card and latest drift report")
    p.add_argument("version", help="package version, e.g. 3 or v3")
    p.add_argument("--out", default="reports", help="local folder")
    p.set_defaults(func=cmd_report)

    contract = sub.add_parser("contract", help="data contracts").add_subparsers(dest="contract_command", required=True)
    p = contract.add_parser(
        "draft", help="draft a contract from a CSV or Parquet sample, with the reason for each choice"
    )
    p.add_argument("sample", help="a CSV or Parquet file of the dataset")
    p.add_argument("--dataset", default=None, help="dataset name (default: from the file name)")
    p.add_argument("--label", default=None, help="the outcome column (default: guessed from a binary column)")
    p.add_argument("--entity-key", default=None, help="the entity key column (default: guessed)")
    p.add_argument("--event-time", default=None, help="the event time column (default: guessed)")
    p.add_argument("--label-window-days", type=int, default=None, help="days until an outcome is final")
    p.add_argument("--out", default=None, help="where to write it (default: contracts/<dataset>/v1.json)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(offline=cmd_contract_draft)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Renderer(json_mode=args.json)
    try:
        offline = getattr(args, "offline", None)
        result = offline(args, out) if offline is not None else _run_on_platform(args, out)
    except (OperatorError, ConfigError, contract_draft.DraftError) as exc:
        out.error(str(exc))
        return 2
    if args.json:
        print(json.dumps(_jsonable(result), indent=2, sort_keys=True, default=str))
    return 0


def _run_on_platform(args: argparse.Namespace, out: Renderer) -> Any:
    use_context_arguments(args.context)
    platform = Platform.for_stage(args.stage, model=args.model, endpoint_url=args.endpoint_url, region=args.region)
    return args.func(platform, args, out)


if __name__ == "__main__":
    sys.exit(main())
