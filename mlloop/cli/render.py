"""Output for people (tables; colour only where the terminal supports it) or, with --json, nothing but JSON."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from functions.deploy_model.standby import FAST_ROLLBACK_BOUND_SECONDS

STATE_STYLES = {
    "ALARM": "bold red",
    "OK": "green",
    "INSUFFICIENT_DATA": "dim",
    "Approved": "green",
    "Rejected": "red",
    "PendingManualApproval": "yellow",
    "InService": "green",
    "Updating": "yellow",
    "Failed": "red",
    "SUCCEEDED": "green",
    "FAILED": "red",
    "RUNNING": "yellow",
}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if hasattr(value, "strftime"):
        return str(value.strftime("%Y-%m-%d %H:%M:%S"))
    return str(value)


class Renderer:
    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode
        # Colour only on a terminal; pipes and files get plain text.
        self.console = Console(highlight=False, soft_wrap=True)
        self.errors = Console(stderr=True, highlight=False)

    def line(self, text: str, style: str | None = None) -> None:
        if not self.json_mode:
            self.console.print(text, style=style)

    def error(self, text: str) -> None:
        self.errors.print(f"error: {text}", style="bold red")

    def _table(self, title: str, columns: list[str], rows: list[list[Any]], state_column: int | None = None) -> None:
        table = Table(title=title, title_justify="left", show_edge=False)
        for column in columns:
            table.add_column(column)
        for row in rows:
            cells = [_fmt(c) for c in row]
            if state_column is not None:
                style = STATE_STYLES.get(cells[state_column])
                if style:
                    cells[state_column] = f"[{style}]{cells[state_column]}[/]"
            table.add_row(*cells)
        if not rows:
            table.add_row(*(["(none)"] + [""] * (len(columns) - 1)))
        self.console.print(table)

    def status(self, status: dict[str, Any]) -> None:
        if self.json_mode:
            return
        self.console.print(f"[bold]stage {status['stage']}[/]")
        self._table(
            "model versions",
            ["version", "approval", "created", "trigger", "data version"],
            [
                [
                    v.label,
                    v.approval,
                    v.created,
                    v.metadata.get("trigger", v.metadata.get("trigger_kind")),
                    v.metadata.get("data_version"),
                ]
                for v in status["versions"][:10]
            ],
            state_column=1,
        )
        endpoint = status["endpoint"]
        if endpoint is None:
            self.line("endpoint: not deployed", style="yellow")
        else:
            style = STATE_STYLES.get(endpoint.status, "")
            self.console.print(f"endpoint {endpoint.name}: [{style}]{endpoint.status}[/] config {endpoint.config_name}")
            if endpoint.pending_config:
                self.line(f"deployment in progress -> {endpoint.pending_config}", style="yellow")
            if endpoint.failure_reason:
                self.line(f"last failure: {endpoint.failure_reason}", style="red")
            self._table(
                "variants",
                ["variant", "model", "weight", "instances"],
                [[v.name, v.model, v.weight, v.instances] for v in endpoint.variants],
            )
        self.fast_rollback(status["fast_rollback"])
        self._table(
            "alarms",
            ["alarm", "kind", "state", "since"],
            [[a.name, a.kind, a.state, a.updated] for a in status["alarms"]],
            state_column=2,
        )
        self._table(
            "training executions",
            ["execution", "status", "started", "trigger"],
            [[e.name, e.status, e.started, e.trigger] for e in status["executions"]],
            state_column=1,
        )
        health = status["health"]
        self.console.print(
            f"last {health['window_hours']} h: requests {_fmt(health['requests'])}, "
            f"fallback rate {_fmt(health['fallback_rate'])}, largest feature PSI {_fmt(health['max_feature_psi'])}"
        )

    def rollback(self, result: Any) -> None:
        if self.json_mode:
            return
        move = f"v{result.from_version} -> v{result.to_version} in {result.seconds:.1f} s"
        if result.path == "fast":
            bound = "within" if result.within_bound else "OVER"
            self.line(f"fast rollback {move} ({bound} the {FAST_ROLLBACK_BOUND_SECONDS} s bound)", style="green")
            self.line(f"  {result.deploy_response.get('detail', '')} (UpdateEndpointWeightsAndCapacities)")
            return
        self.line(f"{result.path} rollback {move} (deploy execution {result.deploy_response['execution']})", "green")
        self.line(f"  no fast rollback: {result.fast_unavailable}")
        if result.skipped:
            self.line(f"  skipped: {'; '.join(result.skipped)}", style="yellow")

    def fast_rollback(self, state: Any) -> None:
        if state.available:
            self.line(f"fast rollback: available to v{state.to_version} until {state.until} (warm standby)", "green")
        else:
            self.line(f"fast rollback: not available ({state.reason}); `mlloop rollback` takes the guarded path")

    def retire(self, result: Any, *, dry_run: bool) -> None:
        if self.json_mode:
            return
        verb = "would delete" if dry_run else "deleted"
        self.line(f"kept approved versions: {', '.join(f'v{v}' for v in result.kept_versions) or '-'}")
        self.line(f"never touched (serving): {', '.join(result.protected) or '-'}")
        self.line(f"{verb} endpoint configs: {', '.join(result.deleted_endpoint_configs) or '-'}")
        self.line(f"{verb} models: {', '.join(result.deleted_models) or '-'}")
