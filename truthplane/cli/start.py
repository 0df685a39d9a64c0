"""The command's first step, before the command line's own imports: a gate of the working tree starts what it
would start first (git's listings of both states, then its tools on the changed files) while Python imports the
rest.

A one-file gate of a large repository costs its tools' run plus whatever comes before their start: importing
the command line, reading the configuration, git's listings. The listings and the tools' start need none of the
command line's imports (truthplane.git.run.gate_calls_ahead, truthplane.truth.ahead.tools_ahead), so they start
here, and the command line's `gate` takes them (`take_early`) when its options turn out to be the ones read here.

Only the options these depend on are read here, and only when every argument is one `truthplane gate` knows;
anything else (a mistyped option, --help) starts nothing, and the command line says what is wrong. Nothing is
written that a gate would not write: the calls start only in an existing cache directory, and not while a
`fix --commit` killed midway waits to be finished (the gate finishes it first).
"""

from __future__ import annotations

import os
import sys
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from truthplane.cli._gate_args import _DEFAULT_BASE, gate_arguments

if TYPE_CHECKING:
    from truthplane.truth.ahead import LaunchPlans

# how long the command waits, before its own imports, for the tools to start on what git listed first: those
# imports are CPU the listing would otherwise share (one interpreter lock), and they have the tools' run to finish
_FIRST_LAUNCH_WAIT = 0.5


@dataclass(frozen=True)
class GateArgs:
    """What a gate of the working tree starts early depends on, as its command line gave it."""

    path: str = "."
    base: str = _DEFAULT_BASE
    cache_dir: str | None = None
    config: str | None = None
    verifiers: tuple[str, ...] = ()


@dataclass
class _Early:
    path: Path
    base: str
    plans: LaunchPlans
    stack: ExitStack


_early: list[_Early] = []


def entry() -> None:
    early = _start(sys.argv[2:]) if len(sys.argv) > 1 and sys.argv[1] == "gate" else None
    from truthplane.cli.main import entry as main

    main(early)


def gate_listing(args: list[str]) -> GateArgs | None:
    """The options of a gate of the working tree, from its arguments; None for a gate of a commit (--head), one
    without a cache, or arguments this reading is not sure of."""
    given = gate_arguments(args)
    if given is None or given.get("no_cache") or given.get("head") is not None:
        return None
    return GateArgs(given["path"] or ".", given.get("base", _DEFAULT_BASE), given.get("cache_dir"),
                    given.get("config_path"), tuple(given["verifier"]))


def take_early(path: Path, base: str, head: str | None, plans: LaunchPlans | None) -> ExitStack | None:
    """The context of this gate's git calls and tools if they were started early for exactly these options, for
    the gate to end when it no longer needs them; None if not. What started early for other options (a
    reading this module got wrong) is stopped here, before the gate starts its own."""
    taken = None
    while _early:
        early = _early.pop()
        if taken is None and head is None and (path, base, plans) == (early.path, early.base, early.plans):
            taken = early.stack
        else:
            early.stack.close()
    return taken


def _start(args: list[str]) -> ExitStack | None:
    """Start a gate's listings and tools if `args` are a gate of the working tree's: the context that ends them,
    for the command line to close when the command is over."""
    given = gate_listing(args)
    if given is None:
        return None
    from truthplane.paths import PENDING_COMMIT, default_cache_dir

    path = Path(given.path)
    store = Path(given.cache_dir) if given.cache_dir is not None else default_cache_dir()
    pending = path / PENDING_COMMIT
    if not os.path.isdir(store) or not os.path.isdir(path) or os.path.lexists(pending):
        return None
    from truthplane.git.run import GIT_ENV, gate_calls_ahead
    from truthplane.git.untracked import start_early
    from truthplane.truth.ahead import LaunchPlans, tools_ahead

    start_early(path, store.resolve(), GIT_ENV)
    plans = LaunchPlans(store, Path(given.config) if given.config is not None else None, given.verifiers or None)
    first = threading.Event()
    stack = ExitStack()
    try:
        launch = stack.enter_context(tools_ahead(plans))
        assert launch is not None

        def listed(listing: tuple[Path, str | None, str | None, str | None] | None) -> None:
            try:
                launch(listing)
            finally:
                first.set()

        stack.enter_context(gate_calls_ahead(path, given.base, None, listed, store=store))
    except BaseException:
        stack.close()
        raise
    _early.append(_Early(path, given.base, plans, stack))
    first.wait(_FIRST_LAUNCH_WAIT)
    return stack
