"""Analysers started ahead of need, and taken by the verifier that needs them.

A gate may start a tool on the changed files before the verifier that runs it is even imported
(truthplane.truth.ahead). The process waits here; `run_tool` takes it when it would start the very same
process itself (same executable, arguments, directory and environment). Whatever nobody took is killed
when the gate ends (`stop_all`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_started: dict[tuple[Any, ...], subprocess.Popen[str]] = {}
_settled = threading.Event()  # clear while a launch is still deciding what to start
_settled.set()


def launching() -> None:
    """A launch is on its way: `take` waits for it rather than start a second copy of a tool it starts."""
    _settled.clear()


def launch_over() -> None:
    _settled.set()


def tool_env(extra: dict[str, str] | None) -> dict[str, str]:
    """The environment an analyser runs in."""
    return {**os.environ, "PYTHONIOENCODING": "utf-8", **(extra or {})}


def start(
    program: str, argv: list[str], cwd: Path, env: dict[str, str], *, stdin: bool = False, warm: bool = False
) -> subprocess.Popen[str]:
    """Start an analyser that only reads code (`program`, called as argv[0]): output captured, in a session of
    its own so that ending it ends whatever it started too. `warm`: from its zygote, where this process keeps
    one (truthplane.verifiers.zygote)."""
    # only a process that lives long (truthplane mcp) enables zygotes, and it has imported their module: a command
    # line that runs a plan's warm entry does not import it (a socket module and more) only to learn that
    zygote = sys.modules.get("truthplane.verifiers.zygote")
    if warm and not stdin and zygote is not None:
        forked = zygote.start(program, argv, cwd, env)
        if forked is not None:
            return forked  # type: ignore[return-value]  # the part of Popen that run_tool and stop use
    return subprocess.Popen(
        argv, executable=program, cwd=cwd, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace",
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    """End an analyser and everything it started, and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.communicate()


def _key(program: str, argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[Any, ...]:
    return program, tuple(argv), os.path.realpath(cwd), tuple(sorted(env.items()))


def take(program: str, argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str] | None:
    """The process started ahead with exactly this program, arguments, directory and environment, if any."""
    _settled.wait()
    if not _started:
        return None
    with _lock:
        return _started.pop(_key(program, argv, cwd, env), None)


def stop_all() -> None:
    """Kill whatever was started ahead and not taken."""
    with _lock:
        left = list(_started.values())
        _started.clear()
    for proc in left:
        stop(proc)


def hold_only(launches: list[tuple[str, list[str], dict[str, str], bool]], cwd: Path) -> int:
    """Make what is held started ahead exactly `launches` (program, argv, env, warm) in `cwd`: each one not held
    yet is started, and whatever is held and not among them is stopped (a launch on what git had listed so far,
    whose files a later listing changed). Starts back to back once everything is worked out: no tool's start
    waits on another's cache lookup. How many are held."""
    wanted = {_key(program, argv, cwd, env): (program, argv, env, warm) for program, argv, env, warm in launches}
    with _lock:
        stale = [proc for key, proc in _started.items() if key not in wanted]
        for key in [key for key in _started if key not in wanted]:
            del _started[key]
        missing = [launch for key, launch in wanted.items() if key not in _started]
    for proc in stale:
        stop(proc)
    if "truthplane.verifiers.zygote" in sys.modules:
        # a start from a zygote waits for its fork: the plain starts go first (a warm run is a short one anyway);
        # without one (a command line) a warm entry is started like any other, in the plan's order (slowest first)
        missing.sort(key=lambda launch: launch[3])
    for program, argv, env, warm in missing:
        # two verifiers configured alike: the second runs its own when it gets there
        keep(program, argv, cwd, env, start(program, argv, cwd, env, warm=warm))
    return len(wanted)


def keep(program: str, argv: list[str], cwd: Path, env: dict[str, str], proc: subprocess.Popen[str]) -> bool:
    """Hold a process started ahead for whoever asks for the same one; False (and the process stopped) when
    an identical one is held already."""
    with _lock:
        earlier = _started.setdefault(_key(program, argv, cwd, env), proc)
    if earlier is not proc:
        stop(proc)
        return False
    return True
