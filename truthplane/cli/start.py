"""The command's first step, before the command line's own imports: a gate of the working tree starts the listing
of its untracked files (truthplane.git.untracked) while Python imports the rest, on a large tree the longest of
the listings a gate waits for.

Only the options the listing depends on are read here, and only when every argument is one `truthplane gate`
knows; anything else (a mistyped option, --help) starts nothing, and the command line says what is wrong.
Nothing is written that a gate would not write: the listing starts only in an existing cache directory.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# the options of `truthplane gate` (truthplane/cli/gate.py, truthplane/cli/_common.py)
_VALUED = frozenset({"--base", "--head", "--verifier", "-v", "--format", "-f", "--output", "-o", "--sarif-out",
                     "--summary-out", "--fail-on", "--review", "--config", "--cache-dir"})
_FLAGS = frozenset({"--no-cache", "--no-fetch", "--suggest"})


def entry() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "gate":
        listing = gate_listing(sys.argv[2:])
        if listing is not None:
            _start(*listing)
    from truthplane.cli.main import entry as main

    main()


def gate_listing(args: list[str]) -> tuple[str, str | None] | None:
    """(the repository's path, --cache-dir or None) of a gate of the working tree, from its arguments; None for
    a gate of a commit (--head), one without a cache, or arguments this reading is not sure of."""
    path: str | None = None
    cache_dir: str | None = None
    given = iter(args)
    for arg in given:
        name, equals, value = arg.partition("=")
        if arg in _FLAGS:
            if arg == "--no-cache":
                return None
        elif name in _VALUED:
            if not equals:
                following = next(given, None)
                if following is None:
                    return None
                value = following
            if name == "--head":
                return None
            if name == "--cache-dir":
                cache_dir = value
        elif arg.startswith("-") or path is not None:
            return None
        else:
            path = arg
    return path or ".", cache_dir


def _start(path: str, cache_dir: str | None) -> None:
    from truthplane.git.run import GIT_ENV
    from truthplane.git.untracked import start_early
    from truthplane.paths import default_cache_dir

    store = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if os.path.isdir(store) and os.path.isdir(path):
        start_early(Path(path), store.resolve(), GIT_ENV)
