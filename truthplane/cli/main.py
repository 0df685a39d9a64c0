"""The Typer app and the CLI's one error boundary.

Command modules stay thin and import core code inside their functions, so `truthplane --help`
does not pay for pydantic, rich or git. A gate whose arguments are all plainly spelt does not pay for typer
either: it is read by truthplane.cli.gate.fast_arguments, held to typer's reading by the tests.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

_SETTINGS: dict[str, Any] = dict(
    name="truthplane",
    help="Accept or reject code changes on deterministic evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: importing rich would cost most of the start-up budget
    pretty_exceptions_show_locals=False,  # locals may hold API keys
    context_settings={"help_option_names": ["-h", "--help"]},
)

# the module of each command, one list of them: each module has register(app)
COMMANDS = {
    "scan": "truthplane.cli.scan",
    "diff": "truthplane.cli.diff",
    "gate": "truthplane.cli.gate",
    "doctor": "truthplane.cli.doctor",
    "fix": "truthplane.cli.fix",
    "exec": "truthplane.cli.exec_",
    "sandbox": "truthplane.cli.sandbox",
    "history": "truthplane.cli.history",
    "show": "truthplane.cli.show",
    "report": "truthplane.cli.report",
    "gc": "truthplane.cli.gc",
    "verify": "truthplane.cli.verify",
    "run-all": "truthplane.cli.run_all",
    "mcp": "truthplane.cli.mcp_",
}
COMMAND_MODULES = tuple(dict.fromkeys(COMMANDS.values()))


def _typer_errors(*names: str) -> tuple[type[BaseException], ...]:
    """typer's exception classes of these names, once a command line has imported typer (none before: nothing
    raises them)."""
    typer = sys.modules.get("typer")
    return tuple(getattr(typer, name) for name in names) if typer is not None else ()


def _usage_errors() -> tuple[type[BaseException], ...]:
    """The click typer runs on: the click package up to typer 0.25, its own copy of click after. Every usage error
    (an unknown option, a bad value) derives from that click's ClickException, which BadParameter names."""
    return tuple(c for c in _typer_errors("BadParameter")[0].__mro__ if c.__name__ == "ClickException") \
        if "typer" in sys.modules else ()


def build(modules: tuple[str, ...] = COMMAND_MODULES) -> Any:
    """The command line (a typer.Typer) with the commands of `modules`: all of them, or the one a command line
    names (a one-shot gate need not import and build the other thirteen)."""
    import typer

    def version_asked(value: bool) -> None:
        if value:
            from truthplane import __version__

            typer.echo(f"truthplane {__version__}")
            raise typer.Exit(0)

    def main(
        version: bool = typer.Option(False, "--version", callback=version_asked, is_eager=True,
                                     help="Print the version."),
    ) -> None:
        """Accept or reject code changes on deterministic evidence."""

    built = typer.Typer(**_SETTINGS)
    built.callback()(main)
    for module in modules:
        importlib.import_module(module).register(built)
    return built


def __getattr__(name: str) -> Any:
    if name == "app":  # every command, for whoever documents or inspects them
        return build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _crash_log(exc: BaseException) -> Path | None:
    """Write the traceback of an unexpected error where the user can find it."""
    try:
        from truthplane.paths import default_cache_dir

        log = default_cache_dir() / "crash.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(traceback.format_exception(exc)), encoding="utf-8")
        return log
    except Exception:
        return None


def _error(message: str) -> None:
    from truthplane.cli.render import printable  # a file name in a message cannot forge a line of its own

    sys.stderr.write(f"truthplane: error: {printable(message)}\n")


def run(argv: list[str] | None = None) -> int:
    """Entry point: every expected failure is one line on stderr and a documented exit code."""
    from truthplane.errors import ExitCode, TruthplaneError

    given = sys.argv[1:] if argv is None else argv
    named = COMMANDS.get(given[0]) if given else None
    try:
        # a command module may read its plainest command lines itself (`without_typer`): importing typer and
        # building the command cost a gate some 25 ms of CPU
        reader = getattr(importlib.import_module(named), "without_typer", None) if named else None
        call = reader(given[1:]) if reader is not None else None
        if call is not None:
            result = call()
        else:
            import typer

            command = typer.main.get_command(build((named,) if named else COMMAND_MODULES))
            result = command.main(args=argv, prog_name="truthplane", standalone_mode=False)
    except TruthplaneError as exc:
        _error(str(exc))
        return int(exc.exit_code)
    except _typer_errors("Exit") as exc:
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except (KeyboardInterrupt, *_typer_errors("Abort")):  # type: ignore[misc]  # a tuple of classes, made lazily
        _error("interrupted")
        return int(ExitCode.INTERRUPTED)
    except _usage_errors() as exc:
        exc.show()  # type: ignore[attr-defined]
        return int(ExitCode.USAGE)
    except BrokenPipeError:
        # the reader went away (`truthplane scan | head`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return int(ExitCode.OK)
    except Exception as exc:  # the one place an unexpected error is caught
        log = _crash_log(exc)
        where = f"; traceback in {log}" if log else ""
        _error(f"unexpected {type(exc).__name__}: {exc}{where}")
        return int(ExitCode.UNVERIFIED)
    return int(result or 0)


_ONE_SHOT = frozenset({"scan", "diff", "gate"})


def entry(early: AbstractContextManager[object] | None = None) -> None:
    """The console script's body; `early`: what the command's first step started ahead (truthplane.cli.start),
    ended when the command is."""
    import gc

    # a short-lived process that builds tens of thousands of long-lived findings: the collector's default
    # (a pass every 700 allocations, each walking every young object) costs a large repo's gate a tenth
    # of its time and finds next to nothing; what is imported by now is never garbage
    gc.set_threshold(50_000, 20, 100)
    one_shot = len(sys.argv) > 1 and sys.argv[1] in _ONE_SHOT
    if one_shot:
        # a bounded job whose garbage reference counting frees (findings hold no cycles): passes of the
        # collector over its young objects only cost a large repository's gate time, so there are none. Long-running
        # commands (mcp, run-all, fix with its event loop) keep the collector.
        gc.disable()
    gc.freeze()
    with early or nullcontext():
        code = run()
    if one_shot:
        _leave(code)
    sys.exit(code)  # the others end the usual way: whatever their libraries left for the interpreter's end runs


def _leave(code: int) -> None:
    """Exit a one-shot command (scan, diff, gate) with `code`, without the interpreter's teardown when nothing
    of ours needs it.

    Tearing down every module a gate imported is a measurable share of a gate, and by the time run() returns every
    file is written (atomically), every tool and git process reaped and every thread pool shut down. What
    does need an orderly end lives on a thread of its own (the executors' starter pool, whose finalizer
    kills its starters): while any thread but this one is alive, Python exits the usual way.
    """
    import threading

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, OSError):
        pass  # the reader went away: nothing more to say to it
    if threading.active_count() == 1:
        if "logging" in sys.modules:
            import logging

            logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
