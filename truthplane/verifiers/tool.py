"""Running an analyser that only reads code: a missing, hung or crashed tool is a VerifierError, never an empty
result; a process a gate started ahead (truthplane.verifiers.started) is taken instead of starting it again."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from truthplane.errors import VerifierError
from truthplane.models import ToolStatus
from truthplane.verifiers import started
from truthplane.verifiers._commands import exec_form, which


@dataclass(frozen=True)
class ToolOutput:
    returncode: int
    stdout: str
    stderr: str


def run_tool(
    verifier: str,
    command: list[str],
    *,
    cwd: Path,
    timeout_s: float,
    ok_exit_codes: tuple[int, ...] | list[int] = (0,),
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    warm: bool = False,
) -> ToolOutput:
    """Run an analyser that only reads code. Missing, hung or crashed tools become VerifierError. `warm`: the
    analyser may start from a zygote, where this process keeps them (truthplane.verifiers.zygote).

    The exit code is checked against the tool's documented "findings" codes; anything else means
    the tool could not run, and its stderr tail says why.
    """
    executable = which(command[0])
    if executable is None:
        raise VerifierError(verifier, f"{command[0]} is not installed", status=ToolStatus.MISSING.value)
    program, argv, full_env = exec_form(executable, command, started.tool_env(env))
    # a gate may have started this very command already (truthplane.truth.ahead)
    proc = started.take(program, argv, cwd, full_env) if stdin is None else None
    try:
        if proc is None:
            proc = started.start(program, argv, cwd, full_env, stdin=stdin is not None, warm=warm)
        stdout, stderr = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        assert proc is not None  # only communicate() times out
        started.stop(proc)
        raise VerifierError(verifier, f"timed out after {timeout_s:g}s", status=ToolStatus.TIMEOUT.value) from None
    except OSError as exc:
        raise VerifierError(verifier, f"cannot start {command[0]}: {exc.strerror}") from None
    if proc.returncode not in ok_exit_codes:
        tail = (stderr.strip() or stdout.strip()).splitlines()[-3:]
        detail = " | ".join(line.strip() for line in tail) or "no output"
        raise VerifierError(verifier, f"exited with {proc.returncode}: {detail}")
    return ToolOutput(proc.returncode, stdout, stderr)
