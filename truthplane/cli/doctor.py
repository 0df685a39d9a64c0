"""`truthplane doctor`: which verifiers and executors are usable here, and why not; which Python tests run with."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer


def doctor(
    path: Path = typer.Argument(Path("."), help="Repository whose configuration to check.", file_okay=False),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> int:
    """List every verifier and executor: installed or not, version, why not usable, how to fix it.

    eslint, tsc and npm-audit count as configured when the repository has an eslint config,
    tsconfig.json or an npm lockfile; their tools are looked for in its node_modules/.bin, then PATH."""
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
    if fmt == "json":
        doc = [
            {"kind": k, "name": n, "configured": used, **info.model_dump(exclude={"name"})} for k, n, used, info in rows
        ]
        sys.stdout.write(json.dumps({"components": doc, "missing": missing, "interpreter": python.model_dump(
            include={"executable", "origin"})}, indent=2) + "\n")
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
        sys.stdout.write("\n* = configured for this repository\n")
        if missing:
            sys.stdout.write(
                printable(f"{len(missing)} configured verifier(s) cannot run here: {', '.join(missing)}") + "\n"
            )
    return 4 if missing else 0


def register(app: typer.Typer) -> None:
    app.command()(doctor)
