"""What an executor runs and what it says happened: a command, the files it sees, its limits, and its outcome.

Kept apart from truthplane.models, which a gate imports: building a pydantic model costs every process that
imports it, and a gate runs no jobs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from truthplane.models import Finding


class Limits(BaseModel):
    """Resource limits for one job. Network is off unless asked for."""

    timeout_s: float = 60.0
    memory_mb: int = 1024
    pids: int = 256
    cpus: float = 1.0
    network: bool = False
    max_output_bytes: int = 1_000_000


class Interpreter(BaseModel):
    """A Python on this host that a job runs instead of truthplane's own."""

    executable: str = Field(description="the interpreter's sys.executable")
    origin: str = Field(description="why this one: the repository's .venv, the PATH truthplane was started with, ...")
    prefixes: list[str] = Field(default_factory=list, description="directories a sandbox must show for it to run")

    @property
    def bin_dir(self) -> str:
        return os.path.dirname(self.executable)


class PreflightFinding(BaseModel):
    """One construct generated code has no business using (executors/preflight.py), where it is. It informs; it
    never blocks."""

    rule: str
    message: str
    path: str
    line: int
    column: int = 0
    severity: str

    def to_finding(self) -> Finding:
        from truthplane.models import Finding, Severity  # only when asked: a job result needs no models

        return Finding(verifier="preflight", rule_id=self.rule, severity=Severity(self.severity), message=self.message,
                       path=self.path, start_line=self.line, end_line=self.line, start_column=self.column + 1)

    def line_text(self) -> str:
        return f"{self.path}:{self.line}: {self.message} ({self.severity}, {self.rule})"


class Job(BaseModel):
    """A command to run against some files, somewhere isolated.

    `files` maps repo-relative paths to contents; `source_dir` names a directory snapshot to copy
    instead (or as well). `env` is empty by default: the host's environment never leaks in.
    `origin` is the checkout the snapshot was made from: a sandbox hides it wherever it lives.
    `interpreter` is the Python that test and reproduction commands run with (`python` on PATH).
    `untrusted` names the Python files truthplane did not get from the repository's history (an LLM's
    reproduction, a snippet, `exec`'s script; "<command>" for `python -c CODE` in the command): the
    preflight checks them and the result carries its findings.
    """

    command: list[str]
    files: dict[str, bytes] = Field(default_factory=dict)
    source_dir: str | None = None
    origin: str | None = None
    interpreter: Interpreter | None = None
    untrusted: list[str] = Field(default_factory=list)
    workdir: str = "."
    env: dict[str, str] = Field(default_factory=dict)
    stdin: bytes | None = None
    limits: Limits = Field(default_factory=Limits)
    label: str = ""


class JobResult(BaseModel):
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: float = 0.0
    timed_out: bool = False
    oom_killed: bool = False
    executor: str
    node: str = "localhost"
    sandboxed: bool = True
    attempts: int = 1
    notes: list[str] = Field(
        default_factory=list, description="what the caller should know: unsandboxed, retried on another node, ..."
    )
    interpreter: str | None = Field(default=None, description="the Python that `python` ran as, when the job named one")
    preflight: list[PreflightFinding] = Field(
        default_factory=list, description="what the preflight found in the job's untrusted code"
    )

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.oom_killed
