"""`truthplane exec`: run one command in a sandbox.

Exit code of `exec`: the command's own exit status (128+N if a signal N ended it), or 4 when the
job could not be run, timed out or was killed for exceeding its memory limit.
"""

from __future__ import annotations

import sys

import typer



def exec_(
    command: list[str] = typer.Argument(..., help="The command to run, after --.", metavar="-- CMD..."),
    executor: str = typer.Option(
        None, "--executor", "-e", help="local, docker, ... (default: [executors] default, else local)."
    ),
    timeout: float = typer.Option(60.0, "--timeout", help="Wall-clock limit in seconds."),
    memory: int = typer.Option(1024, "--memory", help="Memory limit in MB."),
    network: bool = typer.Option(False, "--network", help="Allow network access (off by default)."),
    fmt: str = typer.Option("text", "--format", "-f", help="text (the command's output) or json (the JobResult)."),
) -> int:
    """Run CMD against a copy of the current directory in a sandbox; exit with its status (4: could not run,
    timeout, OOM)."""
    import asyncio
    from pathlib import Path

    from truthplane.config import MAX_TIMEOUT_S, load_config
    from truthplane.errors import UsageError
    from truthplane.executors.interpreter import repository_interpreter
    from truthplane.executors.preflight import untrusted_scripts
    from truthplane.executors.jobs import Job, Limits
    from truthplane.executors.loader import create_executor

    if fmt not in ("text", "json"):
        raise UsageError("--format must be text or json")
    if not 0 < timeout <= MAX_TIMEOUT_S or memory <= 0:  # `not <=` also refuses nan
        raise UsageError(
            f"--timeout must be a number of seconds from above 0 to {MAX_TIMEOUT_S}, and --memory positive"
        )
    cwd = Path.cwd()
    config = load_config(cwd)
    backend = create_executor(executor or config.executors.default, config)
    job = Job(
        command=command,
        source_dir=str(cwd),
        origin=str(cwd),
        # `python` is the repository's (its .venv, else the PATH's), as in fix's test and reproduction jobs
        interpreter=repository_interpreter(cwd) if backend.runs_host_interpreter else None,
        untrusted=untrusted_scripts(command),  # an ad-hoc python -c or script: the preflight reports on it
        limits=Limits(timeout_s=timeout, memory_mb=memory, network=network),
        label="truthplane exec",
    )

    async def run_one():  # type: ignore[no-untyped-def]
        async with backend:
            return await backend.run(job)

    result = asyncio.run(run_one())
    if fmt == "json":
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        sys.stdout.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.write(result.stderr)
        if not result.sandboxed:
            sys.stderr.write("warning: ran unsandboxed\n")
        from truthplane.cli.render import printable  # the job's output is its own; truthplane's lines name its files

        for note in result.notes:
            sys.stderr.write(printable(f"truthplane: {note}") + "\n")
        for finding in result.preflight:
            sys.stderr.write(printable(f"truthplane: preflight: {finding.line_text()}") + "\n")
    return exit_code(result)


def exit_code(result) -> int:  # type: ignore[no-untyped-def]
    if result.timed_out or result.oom_killed or result.returncode is None:
        return 4
    if result.returncode < 0:
        return 128 - result.returncode
    return int(result.returncode) & 0xFF


def register(app: typer.Typer) -> None:
    app.command("exec", context_settings={"allow_interspersed_args": False})(exec_)
