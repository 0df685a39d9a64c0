"""`truthplane doctor`: which verifiers and executors are usable here, and why not; which Python tests run with."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from truthplane.config import Config


def doctor(
    path: Path = typer.Argument(Path("."), help="Repository whose configuration to check.", file_okay=False),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
    cluster: str = typer.Option(None, "--cluster", help="Check this Dask scheduler's workers (tcp:// or tls://)."),
) -> int:
    """List every verifier and executor: installed or not, version, why not usable, how to fix it.

    eslint, tsc and npm-audit count as configured when the repository has an eslint config,
    tsconfig.json or an npm lockfile; their tools are looked for in its node_modules/.bin, then PATH.

    With a cluster configured ([cluster] address or kind, or [[executors.ssh.nodes]]) or --cluster, it also checks
    the cluster: the scheduler reachable, and every worker's host, Python, truthplane version and sandbox."""
    from truthplane.cli.render import printable
    from truthplane.config import load_config
    from truthplane.errors import PluginError, UsageError
    from truthplane.executors.interpreter import repository_interpreter
    from truthplane.models import ToolInfo
    from truthplane.executors.loader import executor_options
    from truthplane.registry import load, names
    from truthplane.verifiers.loader import create_verifier
    from truthplane.verifiers.interface import VerifierContext

    if fmt not in ("text", "json"):
        raise UsageError("--format must be text or json")
    config = load_config(path)
    context = VerifierContext(timeout_s=config.timeout_s)
    rows: list[tuple[str, str, bool, ToolInfo]] = []
    for name in sorted(set(names("verifiers")) - {"command"} | set(config.verifiers)):
        try:
            info = create_verifier(config, name, context).available()
        except PluginError as exc:
            info = ToolInfo(name=name, installed=False, reason=str(exc))
        rows.append(("verifier", name, name in config.verifiers, info))
    for name in names("executors"):
        try:
            cls = load("executors", name)
            info = cls.available(executor_options(name, config))
        except PluginError as exc:
            info = ToolInfo(name=name, installed=False, reason=str(exc))
        rows.append(("executor", name, name == config.executors.default, info))

    missing = [n for kind, n, used, info in rows if kind == "verifier" and used and (not info.installed or info.reason)]
    python = repository_interpreter(config.root or path.resolve())
    nodes = check_cluster(config, cluster)
    unready = [name for name, node in (nodes or {}).items() if node.get("problem")]
    if fmt == "json":
        doc = [
            {"kind": k, "name": n, "configured": used, **info.model_dump(exclude={"name"})} for k, n, used, info in rows
        ]
        sys.stdout.write(json.dumps({"components": doc, "missing": missing, "interpreter": python.model_dump(
            include={"executable", "origin"}), "cluster": nodes}, indent=2) + "\n")
    else:
        for kind, name, used, info in rows:
            state = "MISSING" if not info.installed else "BROKEN" if info.reason and kind == "verifier" else (
                "warn" if info.reason else "ok")
            mark = "*" if used else " "
            line = f"{mark} {kind:<8} {name:<10} {state:<7} {info.version or '-':<12}"
            if info.reason:
                line += f" {info.reason}"
            sys.stdout.write(printable(line.rstrip()) + "\n")
        sys.stdout.write(
            "\n" + printable(f"tests and reproductions run with {python.executable} ({python.origin})") + "\n"
        )
        if nodes is not None:
            sys.stdout.write("\n")
            for name, node in nodes.items():
                if "host" in node:
                    line = (f"  node {name:<10} {node['problem'] and 'NOT READY' or 'ready':<9} {node['worker']} on "
                            f"{node['host']}: python {node['python']}, truthplane {node['truthplane']}, sandbox "
                            f"{node['sandbox']} {'usable' if node['sandbox_usable'] else 'MISSING'}")
                else:
                    line = f"  node {name:<10} DOWN      {node['problem']}"
                if node.get("problem") and "host" in node:
                    line += f" ({node['problem']})"
                sys.stdout.write(printable(line) + "\n")
        sys.stdout.write("\n* = configured for this repository\n")
        if missing:
            sys.stdout.write(
                printable(f"{len(missing)} configured verifier(s) cannot run here: {', '.join(missing)}") + "\n"
            )
        if unready:
            sys.stdout.write(printable(f"{len(unready)} cluster node(s) not ready: {', '.join(unready)}") + "\n")
    return 4 if missing or unready else 0


def check_cluster(config: Config, address: str | None) -> dict[str, dict[str, Any]] | None:
    """Each node of the configured cluster (or of the one at `address`) and whether it is ready for a run; None
    when no cluster is configured (run-all would start a local one)."""
    import asyncio

    from truthplane.config.cluster import cluster_settings
    from truthplane.errors import ExecutorError
    from truthplane.executors.cluster import Cluster
    from truthplane.executors.loader import executor_options
    from truthplane.executors.ssh import parse_options

    import truthplane

    settings = config.cluster
    if address:
        settings = cluster_settings(settings.model_dump(exclude={"kind", "address"}, exclude_none=True),
                                    kind="address", address=address)
    ssh_table = executor_options("ssh", config)
    if settings.kind == "local" and ssh_table.get("nodes"):
        settings = settings.model_copy(update={"kind": "ssh"})
    if settings.kind == "local":
        return None
    ssh = parse_options(ssh_table) if settings.kind == "ssh" else None
    sandbox = settings.sandbox

    async def check() -> dict[str, dict[str, Any]]:
        cluster = Cluster(settings, ssh, run_id="doctor")
        try:
            await cluster.start()
            if not cluster.owned:
                await cluster.check_scheduler()
            found: dict[str, dict[str, Any]] = {name: {"problem": why} for name, why in cluster.lost.items()}
            for name, node in (await cluster.readiness(sandbox, executor_options(sandbox, config))).items():
                problems = []
                if not node["sandbox_usable"]:
                    problems.append(f"sandbox {sandbox}: {node['sandbox_reason']}")
                if node["truthplane"] != truthplane.__version__:
                    problems.append(f"truthplane {node['truthplane']} there, {truthplane.__version__} here")
                found[name] = {**node, "problem": "; ".join(problems)}
            if not found:
                found["(cluster)"] = {"problem": "the scheduler has no worker"}
            return found
        except ExecutorError as exc:
            return {"(cluster)": {"problem": str(exc)}}
        finally:
            await cluster.close()

    return asyncio.run(check())


def register(app: typer.Typer) -> None:
    app.command()(doctor)
