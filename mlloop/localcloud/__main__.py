"""Command line: `python -m mlloop.localcloud up|deploy|status|advance|down --stage dev`.

`up` runs the cloud in its own process (Lambda handlers run inside it), deploys the stage and waits, running
every timed behaviour on the cloud's clock (schedules, alarm evaluation, waits): scaled real time by default,
or `--clock controlled`, where time moves only with `advance 1d` (90s, 15m, 6h, 2w). The other commands talk
to that process through a small control endpoint on 127.0.0.1 whose address `up` writes to
.localcloud/state.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.config import ConfigError
from infra.context import add_context_argument, use_context_arguments
from mlloop.localcloud import fidelity
from mlloop.localcloud.clock import parse_duration

if TYPE_CHECKING:
    from mlloop.localcloud.server import LocalCloud

# LOCALCLOUD_STATE_FILE lets several clouds (e.g. tests) run side by side without sharing a state file.
STATE_FILE = Path(
    os.environ.get("LOCALCLOUD_STATE_FILE") or Path(__file__).resolve().parents[2] / ".localcloud" / "state.json"
)


def _summary(cloud: LocalCloud) -> dict[str, Any]:
    stages = {}
    for deployment in cloud.deployments.values():
        apis = {
            api_stage.path or api_stage.logical_id: cloud.api_url(
                api_stage.properties["RestApiId"], api_stage.physical_id
            )
            for api_stage in deployment.of_type("AWS::ApiGateway::Stage")
        }
        stages[deployment.stage] = {
            "stacks": {name: len(resources) for name, resources in deployment.resources.items()},
            "deploy_seconds": round(deployment.seconds, 2),
            "apis": apis,
            "report": [entry.__dict__ for entry in deployment.report.entries],
        }
    clock = {
        "mode": "controlled" if cloud.clock.controlled else "scaled",
        "now": cloud.clock.now().isoformat(),
        "waiting": cloud.clock.waiting(),
    }
    # Per principal: calls authorised, denied and not evaluable by the IAM layer; requests validated.
    return {
        "endpoint_url": cloud.endpoint_url,
        "pid": os.getpid(),
        "clock": clock,
        "stages": stages,
        "fidelity": fidelity.report(),
    }


class _Control:
    """The `up` process's control endpoint: deploy, status, down."""

    def __init__(self, cloud: LocalCloud, stop: threading.Event) -> None:
        control = self
        self.cloud = cloud

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(200, _summary(control.cloud))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/deploy":
                    try:
                        control.cloud.deploy(request["stage"])
                    except Exception as exc:
                        self._answer(500, {"error": f"{type(exc).__name__}: {exc}"})
                        return
                    self._answer(200, _summary(control.cloud))
                elif self.path == "/advance":
                    try:
                        now = control.cloud.clock.advance(parse_duration(str(request["by"])))
                    except (RuntimeError, ValueError) as exc:
                        self._answer(400, {"error": str(exc)})
                        return
                    self._answer(200, {"now": now.isoformat()})
                elif self.path == "/down":
                    self._answer(200, {"stopping": True})
                    stop.set()
                else:
                    self._answer(404, {"error": f"unknown command {self.path}"})

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="localcloud-control", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _print_usage(cloud: LocalCloud) -> None:
    print(f"local cloud at {cloud.endpoint_url}")
    print("point boto3 and the AWS CLI at it:")
    for key, value in cloud.client_environment().items():
        print(f"  export {key}={value}")
    print(f"  aws --endpoint-url {cloud.endpoint_url} s3 ls")


def _up(args: argparse.Namespace) -> int:
    if STATE_FILE.exists() and _call("GET", "/status", None, quiet=True) is not None:
        print(f"a local cloud is already up (see {STATE_FILE}); `down` stops it", file=sys.stderr)
        return 1
    # Imported here: status/deploy/down only talk HTTP and should not pay for importing moto.
    from mlloop.localcloud.server import LocalCloud

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.perf_counter()
    with LocalCloud.start(port=args.port) as cloud:
        start_seconds = time.perf_counter() - started
        if args.clock == "controlled":
            cloud.clock.take_control()
        cloud.clock.start_background()
        control = _Control(cloud, stop)
        try:
            STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
            STATE_FILE.write_text(json.dumps({"endpoint_url": cloud.endpoint_url, "control_url": control.url}))
            _print_usage(cloud)
            print(f"started in {start_seconds:.2f} s; clock {args.clock} at {cloud.clock.now().isoformat()}")
            for stage in args.stage or []:
                deployment = cloud.deploy(stage)
                print(f"deployed {stage}: {len(deployment.stack_names)} stacks in {deployment.seconds:.2f} s")
                print(deployment.report)
            for stage_summary in _summary(cloud)["stages"].values():
                for name, url in stage_summary["apis"].items():
                    print(f"API {name}: {url}")
            print("running; Ctrl-C or `python -m mlloop.localcloud down` stops it")
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            control.close()
            STATE_FILE.unlink(missing_ok=True)
    print("local cloud stopped")
    return 0


def _call(
    method: str, path: str, body: dict[str, Any] | None, *, quiet: bool = False, timeout: float = 600
) -> dict[str, Any] | None:
    try:
        state = json.loads(STATE_FILE.read_text())
        request = urllib.request.Request(
            state["control_url"] + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer
    except urllib.error.HTTPError as exc:
        print(json.loads(exc.read()).get("error", exc), file=sys.stderr)
        return None
    except (OSError, ValueError, KeyError) as exc:
        if not quiet:
            print(f"no local cloud is up ({exc}); start one with `python -m mlloop.localcloud up`", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlloop.localcloud", description="The embedded local AWS.")
    parser.add_argument("command", choices=["up", "deploy", "status", "advance", "down"])
    parser.add_argument("duration", nargs="?", help="advance: how far to move a controlled clock (90s, 15m, 6h, 1d)")
    parser.add_argument("--stage", action="append", help="stage to deploy (repeatable; default dev for up/deploy)")
    parser.add_argument("--no-deploy", action="store_true", help="up: start the cloud with no stage deployed")
    parser.add_argument(
        "--clock",
        choices=["scaled", "controlled"],
        default="scaled",
        help="up: scaled real time (LOCALCLOUD_TIME_SCALE) or a clock that moves only with `advance`",
    )
    parser.add_argument("--port", type=int, default=0, help="port of the AWS endpoint for `up` (default: a free one)")
    add_context_argument(parser)
    parser.add_argument("--json", action="store_true", help="status: print JSON (what it prints anyway)")
    args = parser.parse_args(argv)
    if args.context and args.command != "up":
        parser.error("-c applies to `up`: the stages it deploys are synthesized with it")
    try:
        use_context_arguments(args.context)
    except ConfigError as exc:
        parser.error(str(exc))
    if args.command == "advance":
        if not args.duration:
            parser.error("advance needs a duration, e.g. `advance 1d`")
        try:
            parse_duration(args.duration)
        except ValueError as exc:
            parser.error(str(exc))
    elif args.duration:
        parser.error(f"unexpected argument {args.duration!r}")
    if args.command in ("up", "deploy") and not args.stage and not args.no_deploy:
        args.stage = ["dev"]
    if args.command == "advance":
        # Advancing weeks runs every schedule's real work (Lambda calls, executions) on the way: no short timeout.
        answer = _call("POST", "/advance", {"by": args.duration}, timeout=24 * 3600)
        if answer is None:
            return 1
        print(answer["now"])
        return 0
    if args.command == "up":
        return _up(args)
    if args.command == "deploy":
        for stage in args.stage:
            answer = _call("POST", "/deploy", {"stage": stage})
            if answer is None:
                return 1
            print(json.dumps(answer["stages"][stage], indent=2))
        return 0
    if args.command == "status":
        answer = _call("GET", "/status", None)
        if answer is None:
            return 1
        print(json.dumps(answer, indent=2))
        return 0
    answer = _call("POST", "/down", {})
    return 0 if answer is not None else 1


if __name__ == "__main__":
    sys.exit(main())
