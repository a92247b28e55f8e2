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

from infra.config import STAGES, ConfigError
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
    outcome = training.request_retraining(platform, reason=args.reason, force=args.force)
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


Command = Callable[[Platform, argparse.Namespace, Renderer], Any]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlloop", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--stage", choices=STAGES, default=os.environ.get("MLLOOP_STAGE", "dev"), help="stage to act on"
    )
    common.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"), help="the embedded AWS URL")
    common.add_argument("--region", default=None, help="AWS region (default: the stage's)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
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
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("retire", parents=[common], help="delete unreferenced endpoint configs and models")
    p.add_argument("--keep", type=int, default=3, help="keep the N most recent approved versions")
    p.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    p.set_defaults(func=cmd_retire)

    p = sub.add_parser("report", parents=[common], help="fetch evaluation, model card and latest drift report")
    p.add_argument("version", help="package version, e.g. 3 or v3")
    p.add_argument("--out", default="reports", help="local folder")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Renderer(json_mode=args.json)
    try:
        platform = Platform.for_stage(args.stage, endpoint_url=args.endpoint_url, region=args.region)
        result = args.func(platform, args, out)
    except (OperatorError, ConfigError) as exc:
        out.error(str(exc))
        return 2
    if args.json:
        print(json.dumps(_jsonable(result), indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
