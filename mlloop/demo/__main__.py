"""Run the demo: a progress line per phase, a summary, and the run report's path.

The cloud's own output (every Lambda's log lines, the training jobs) goes to `cloud.log` in the run folder so
the terminal shows the story; the exit code is 0 only when every phase ended as the story says.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from infra.config import ConfigError
from infra.context import add_context_argument, use_context_arguments
from mlloop.assembly import REPO_ROOT
from mlloop.demo.report import write_report
from mlloop.demo.second_model import side_by_side_argument
from mlloop.demo.story import STAGE, DemoOptions, Story

DEFAULT_OUTPUT = REPO_ROOT / "demo-output"


@contextmanager
def cloud_output_to(log_path: Path) -> Iterator[IO[str]]:
    """Point file descriptors 1 and 2 at the log; yield a stream on the real terminal for the story."""
    sys.stdout.flush()
    sys.stderr.flush()
    terminal_fd = os.dup(1)
    saved_err = os.dup(2)
    terminal = os.fdopen(terminal_fd, "w", buffering=1)
    with open(log_path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield terminal
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(terminal_fd, 1)
            os.dup2(saved_err, 2)
            os.close(saved_err)
            terminal.close()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = DemoOptions()
    parser = argparse.ArgumentParser(prog="python -m mlloop.demo", description=__doc__)
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT, help="where run folders are written")
    parser.add_argument("--rows", type=int, default=defaults.rows, help="rows of training data to generate")
    parser.add_argument("--time-scale", type=float, default=defaults.time_scale, help="local seconds per AWS second")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    add_context_argument(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        context = use_context_arguments(args.context)
        # The stage gets a second model for this run only, by the project's own override (cdk.json is untouched).
        added = side_by_side_argument(context, STAGE)
        if added is not None:
            use_context_arguments([added])
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    run_dir = args.output_dir / datetime.now(UTC).strftime("run-%Y%m%dT%H%M%SZ")
    run_dir.mkdir(parents=True, exist_ok=True)
    options = DemoOptions(rows=args.rows, time_scale=args.time_scale, seed=args.seed)
    failed = ""
    with cloud_output_to(run_dir / "cloud.log") as terminal:
        console = Console(file=terminal, highlight=False)
        console.rule("[bold]mlloop demo: the life of a model on the embedded AWS")
        story = Story(
            options,
            output_dir=run_dir,
            cdk_out=args.output_dir / "cdk.out",
            on_fact=lambda text: console.print(f"    {text}", style="dim"),
        )
        started = time.monotonic()
        try:
            for number, (name, title, step) in enumerate(story.phases(), start=1):
                with console.status(f"[{number}/{len(story.phases())}] {title} ..."):
                    console.print(f"[bold cyan]{number:>2}. {title}")
                    with story.phase(name, title) as phase:
                        step()
                console.print(f"    [green]done in {phase.seconds:.1f} s")
            story.collect()
        except Exception as error:
            failed = f"{type(error).__name__}: {error}"
            traceback.print_exc()
            console.print(f"[bold red]stopped: {failed}[/] (details in {run_dir / 'cloud.log'})")
            try:
                story.collect()
            except Exception:
                traceback.print_exc()
        finally:
            story.stop()
        story.record["threads_after_stop"] = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
        story.record["wall_seconds"] = round(time.monotonic() - started, 2)
        story.record["failed"] = failed
        (run_dir / "run.json").write_text(json.dumps(story.record, indent=1, default=str))
        report = write_report(story.record, run_dir)
        summarize(console, story.record, report)
    return 1 if failed else 0


def summarize(console: Console, record: dict[str, Any], report: Path) -> None:
    table = Table(title="Wall time per phase", show_edge=False)
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    for phase in record["phases"]:
        table.add_row(phase["title"], f"{phase['seconds']:.1f}")
    table.add_row("[bold]total", f"[bold]{record['wall_seconds']:.1f}")
    console.print(table)
    answers = record.get("answers", [])
    unanswered = [a for a in answers if a["door"] == "api" and (a["status"] == 0 or a["status"] >= 500)]
    api = [a for a in answers if a["door"] == "api"]
    versions = [f"v{p['version']} {p['approval']}" for p in record.get("registry", [])]
    console.print(f"model versions: {', '.join(versions) or 'none'}")
    console.print(
        f"API requests: {len(api)} sent, {len(api) - len(unanswered)} answered, "
        f"{sum(a['fallback'] for a in api)} by the fallback; "
        f"{len(answers) - len(api)} direct sagemaker-runtime calls"
    )
    if record.get("failed"):
        console.print(f"[bold red]the story stopped early: {record['failed']}")
    else:
        console.print("[bold green]the whole story ran")
    left = record.get("threads_after_stop", [])
    console.print(f"still running after the cloud stopped: {', '.join(left)}" if left else "nothing is left running")
    console.print(f"run report: [bold]{report}[/]")


if __name__ == "__main__":
    sys.exit(main())
