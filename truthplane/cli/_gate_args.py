"""How `truthplane gate`'s arguments are spelt: the options and their parameters, read with no import at all, for
the command's first step (truthplane.cli.start) and for a gate read without typer (truthplane.cli.gate)."""

from __future__ import annotations

from typing import Any

# the options of `truthplane gate` (truthplane/cli/gate.py, truthplane/cli/_common.py)
_VALUED = frozenset({"--base", "--head", "--verifier", "-v", "--format", "-f", "--output", "-o", "--sarif-out",
                     "--summary-out", "--fail-on", "--review", "--config", "--cache-dir"})
_FLAGS = frozenset({"--no-cache", "--no-fetch", "--suggest"})
# each option's parameter of the gate (truthplane.cli.gate.judge)
_FIELDS = {"--base": "base", "--head": "head", "--verifier": "verifier", "-v": "verifier", "--format": "fmt",
           "-f": "fmt", "--output": "output", "-o": "output", "--sarif-out": "sarif_out",
           "--summary-out": "summary_out", "--fail-on": "fail_on", "--review": "review", "--config": "config_path",
           "--cache-dir": "cache_dir", "--no-cache": "no_cache", "--no-fetch": "no_fetch", "--suggest": "suggest"}
_DEFAULT_BASE = "origin/main"  # gate.py's --base


def gate_arguments(args: list[str]) -> dict[str, Any] | None:
    """`truthplane gate`'s arguments as they are spelt, by parameter ("path"; each option's parameter, "verifier" a
    list, a flag True): only the plain spellings, None for anything else (a short option with its value attached,
    a value that starts with "-" or is empty, "--", --help, an unknown option, a second path), which the command
    line reads instead, and words its error if there is one."""
    found: dict[str, Any] = {"path": None, "verifier": []}
    given = iter(args)
    for arg in given:
        name, equals, value = arg.partition("=")
        if arg in _FLAGS:
            found[_FIELDS[arg]] = True
        elif name in _VALUED and (not equals or name.startswith("--")):
            if not equals:
                following = next(given, None)
                if following is None:
                    return None
                value = following
            if not value or value.startswith("-"):
                return None
            if _FIELDS[name] == "verifier":
                found["verifier"].append(value)
            else:
                found[_FIELDS[name]] = value  # given twice: the last, as the command line reads it
        elif not arg or arg.startswith("-") or found["path"] is not None:
            return None
        else:
            found["path"] = arg
    return found
