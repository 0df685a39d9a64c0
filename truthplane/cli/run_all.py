"""`truthplane run-all`: every task of the task file on a Dask cluster (a local one by default, your own, ssh nodes),
with live progress.

Exit code: 0 every task approved, 1 a task was rejected, 4 a task could not be verified (or was not
run), 3 a task needs review, 130 interrupted (partial results written; run again to resume).
"""

from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TextIO

import typer

if TYPE_CHECKING:
    from truthplane.config import Config
    from truthplane.runall.scheduler import RunResult, Scheduler

NODE_SPEC = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>[^:@\s]+|\[[0-9a-fA-F:]+\])(?::(?P<port>\d{1,5}))?$")
PLAIN_EVERY_S = 5.0


def run_all(
    tasks_file: Path = typer.Argument(
        None, help="The task file (default: tasks.toml, else [[tasks]] in truthplane.toml).", dir_okay=False
    ),
    executor: str = typer.Option(
        None,
        "--executor",
        "-e",
        help="The sandbox a task runs in on its worker (local: bubblewrap, docker); ssh: the ssh nodes only.",
    ),
    cluster: str = typer.Option(
        None, "--cluster", help="Your running Dask scheduler, tcp:// or tls://HOST:PORT (default: [cluster], else "
        "a local cluster of this machine)."
    ),
    node: list[str] = typer.Option(
        None, "--node", help="An ssh node USER@HOST[:PORT] (repeatable; default: [[executors.ssh.nodes]])."
    ),
    workers: int = typer.Option(
        None, "--workers", "-w", min=0, help="Worker processes on this machine (default: the CPU count; beside ssh "
        "nodes: 0 with --executor ssh)."
    ),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json (the execution record)."),
) -> int:
    """Run every task: each in its own tree, judged by the gate, approved ones committed in dependency order."""
    import asyncio
    import json
    import os

    from truthplane.config import load_config
    from truthplane.config.cluster import cluster_settings
    from truthplane.errors import UsageError
    from truthplane.runall.scheduler import RunOptions, Scheduler
    from truthplane.runall.tasks import load_tasks
    from truthplane.git.repo import Repo

    if fmt not in ("text", "json"):
        raise UsageError("--format must be text or json")
    root = Repo.require(Path.cwd()).root.resolve()
    config = load_config(root)
    tasks = load_tasks(root, tasks_file.resolve() if tasks_file else None)
    wanted = executor or config.executors.default
    settings = config.cluster
    if cluster:
        settings = cluster_settings(settings.model_dump(exclude={"kind", "address"}, exclude_none=True),
                                    kind="address", address=cluster)
    sandbox = settings.sandbox if wanted in ("ssh", "cluster") else wanted
    nodes = select_nodes(config, node or []) if not cluster and settings.kind in ("local", "ssh") else []
    if wanted == "ssh" and not nodes:
        raise UsageError("--executor ssh needs nodes: add [[executors.ssh.nodes]] to truthplane.toml or give --node")
    if nodes and workers is None:
        workers = 0 if wanted == "ssh" else (settings.workers or os.cpu_count() or 2)
    if not nodes and workers == 0:
        raise UsageError("--workers 0 leaves no worker: give ssh nodes (--node) or --workers N with N > 0")
    options = RunOptions(root=root, tasks=tasks, config=config, executor=sandbox, workers=workers, nodes=nodes,
                         cluster=settings)
    with LiveBoard(sys.stderr) as board:
        scheduler = Scheduler(options, board.event)
        board.watch(scheduler)
        result = asyncio.run(scheduler.run())
    if fmt == "json":
        sys.stdout.write(json.dumps({**result.record, "evidence": _relative(result.path, root)}, indent=2) + "\n")
    else:
        print_summary(result, root, sys.stdout)
    return result.exit_code


def select_nodes(config: Config, specs: list[str]) -> list[dict[str, Any]]:
    """`--node` specs (a configured node with the same host and port keeps its key, slots, ...), else the
    configured nodes."""
    from truthplane.errors import UsageError
    from truthplane.executors.loader import executor_options

    configured = [dict(n) for n in executor_options("ssh", config).get("nodes", []) or [] if isinstance(n, dict)]
    if not specs:
        return configured
    nodes = []
    for spec in specs:
        match = NODE_SPEC.match(spec.strip())
        if not match:
            raise UsageError(f"--node {spec!r}: write USER@HOST or USER@HOST:PORT")
        host, port, user = match["host"].strip("[]"), int(match["port"] or 22), match["user"]
        if not 0 < port < 65536:
            raise UsageError(f"--node {spec!r}: port {port} is out of range")
        same = next((n for n in configured if n.get("host") == host and int(n.get("port", 22)) == port), None)
        entry = dict(same) if same else {"host": host, "port": port}
        if user:
            entry["user"] = user
        nodes.append(entry)
    return nodes


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


class LiveBoard:
    """done/total, percent, elapsed, rate, busy workers and what each does: a rich live panel on a
    terminal (refreshed twice a second), a plain status line every 5 seconds otherwise (CI logs)."""

    def __init__(self, stream: TextIO) -> None:
        from truthplane.cli.render import fancy

        self.stream = stream
        self.scheduler: Scheduler | None = None
        self._live: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        if fancy(stream):
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(file=stream), get_renderable=self._panel, refresh_per_second=2,
                              transient=False)

    def watch(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    def __enter__(self) -> Self:
        if self._live is not None:
            self._live.start()
        else:
            self._thread = threading.Thread(target=self._plain_loop, name="run-all-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.stop()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self.scheduler is not None and self._live is None and exc_type is None:
            self._write(self.status_line())

    def event(self, line: str) -> None:
        if self._live is not None:
            from rich.markup import escape

            from truthplane.cli.render import printable

            self._live.console.print(escape(printable(f"truthplane: {line}")), highlight=False)
        else:
            self._write(f"truthplane: {line}")

    def _write(self, line: str) -> None:
        from truthplane.cli.render import printable  # task ids, titles and paths come from the task file

        with self._lock:
            self.stream.write(printable(line) + "\n")
            self.stream.flush()

    def _plain_loop(self) -> None:
        while not self._stop.wait(PLAIN_EVERY_S):
            if self.scheduler is not None:
                self._write(self.status_line())
                for worker in self.scheduler.workers:
                    if worker.doing:
                        self._write(f"  {worker.name}: {worker.doing}")

    def status_line(self) -> str:
        scheduler = self.scheduler
        assert scheduler is not None
        done, total, elapsed = scheduler.done, scheduler.total, scheduler.elapsed()
        fresh = sum(1 for s in scheduler.states.values() if s.status == "DONE" and s.carried is None)
        rate = fresh / elapsed * 60 if elapsed > 0 else 0.0
        busy = sum(1 for w in scheduler.workers if w.doing)
        alive = sum(1 for w in scheduler.workers if w.alive)
        percent = 100 * done // total if total else 100
        return (f"truthplane: [{done}/{total} {percent}%] {_clock(elapsed)} elapsed, {rate:.1f} tasks/min, "
                f"{busy}/{alive} workers busy")

    def _panel(self) -> Any:
        from rich.markup import escape as rich_escape
        from rich.table import Table

        from truthplane.cli.render import printable

        def escape(text: str) -> str:
            return rich_escape(printable(text))

        table = Table.grid(padding=(0, 2))
        if self.scheduler is None:
            table.add_row("truthplane: reading the task file")
            return table
        table.add_row(escape(self.status_line().removeprefix("truthplane: ")))
        for worker in self.scheduler.workers:
            state = worker.doing or ("idle" if worker.alive else "down")
            style = "dim" if not worker.doing else ""
            table.add_row(
                f"[{style}]{escape(worker.name)}: {escape(state)}[/]" if style else escape(f"{worker.name}: {state}")
            )
        return table


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}" if minutes < 60 else time.strftime("%H:%M:%S", time.gmtime(seconds))


def print_summary(result: RunResult, root: Path, stream: TextIO) -> None:
    from truthplane.cli.render import printable  # task ids and reasons come from the task file and the repository

    record = result.record
    for task in record["tasks"]:
        commit = (task.get("git_evidence") or {}).get("commit_sha")
        where = f"  commit {commit[:12]}" if commit else ""
        carried = "  (from an earlier run)" if task.get("carried_over_from") else ""
        stream.write(printable(f"{task['status']:<13} {task['task_id']}{where}{carried}") + "\n")
        reason = (task.get("truth_gate") or {}).get("reason")
        if reason and task["status"] != "SUCCESS":
            stream.write(printable(f"              {reason[:300]}") + "\n")
    metrics = record["honest_metrics"]
    stream.write(
        "truthplane: "
        + ("INTERRUPTED (run again to resume)" if result.interrupted else record["overall_verdict"])
        + f"  {metrics['git_commits']} commit(s), {metrics['files_modified']} file(s) modified, "
        f"{metrics['truth_gate_approvals']} approved, {metrics['truth_gate_rejections']} rejected\n"
    )
    stream.write(printable(f"evidence: {_relative(result.path, root)}") + "\n")


def register(app: typer.Typer) -> None:
    app.command("run-all")(run_all)
