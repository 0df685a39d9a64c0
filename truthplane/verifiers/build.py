"""build: the repository's own build command (`npm run build`, `python -m build`, `make`, anything),
run in the configured executor because a build executes the repository's code (DESIGN.md's sandbox
rule): on a copy of the tree, with no network unless the executor is told otherwise.

truthplane.toml::

    [verifiers.build]
    command = ["npm", "run", "build"]
    timeout_s = 900

A build that exits non-zero is one `build-failed` finding (high) about the repository as a whole,
carrying the tail of the build's output; its identity is the command, so a build that stays broken
is unchanged and one that starts failing is new. A build that times out, runs out of memory, or an
executor that cannot start it is could-not-run. Results are cached by the hash of the whole tree.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from truthplane.errors import ConfigError, VerifierError
from truthplane.executors.jobs import Job, JobResult, Limits
from truthplane.models import Finding, ScanResult, Severity, ToolInfo, ToolStatus
from truthplane.verifiers._commands import which
from truthplane.verifiers._common import one_line
from truthplane.verifiers._executed import executor_problem, run_job
from truthplane.verifiers._node import NodeTool, borrowed_node_modules
from truthplane.verifiers.interface import Verifier

RULE = "build-failed"
TAIL_LINES = 20
TAIL_CHARS = 2000
MEMORY_MB = 4096


def output_tail(result: JobResult) -> str:
    """The last lines the build printed (stderr after stdout), flattened to one line."""
    lines = [ln.rstrip() for ln in (result.stdout + "\n" + result.stderr).splitlines() if ln.strip()]
    tail = " | ".join(lines[-TAIL_LINES:])
    return tail if len(tail) <= TAIL_CHARS else "…" + tail[-TAIL_CHARS:]


class BuildVerifier(NodeTool, Verifier):
    name = "build"
    incremental = False
    file_local = False
    tree_cacheable = True
    suffixes = ()
    config_files = ()

    @property
    def command(self) -> list[str]:
        if not self.options.command:
            raise ConfigError(
                f"verifiers.{self.instance_name}: a build verifier needs command = [...], "
                'e.g. command = ["npm", "run", "build"]'
            )
        return list(self.options.command)

    def available(self) -> ToolInfo:
        if not self.options.command:
            return ToolInfo(
                name=self.instance_name,
                installed=False,
                reason=f'no build command: set command = ["npm", "run", "build"] under '
                       f'[verifiers.{self.instance_name}] '
                "in truthplane.toml, or drop it from verifiers",
            )
        executable = self.command[0]
        found = which(executable) if "/" not in executable else executable
        if found is None:
            return ToolInfo(
                name=self.instance_name,
                installed=False,
                reason=f"{executable} is not installed or not on PATH: install it, or change "
                       f"[verifiers.{self.instance_name}] "
                "command in truthplane.toml",
            )
        problem = executor_problem(self.context.executor)
        if problem:
            return ToolInfo(
                name=self.instance_name, installed=False, path=found, reason=f"cannot run the build: {problem}"
            )
        return ToolInfo(name=self.instance_name, installed=True, path=found)

    def scan(self, target: Path, files: list[str] | None = None) -> ScanResult:
        started = time.monotonic()
        if files is not None and not files:
            return ScanResult(verifier=self.instance_name)
        info = self.available()
        if not info.installed:
            raise VerifierError(
                self.instance_name, info.reason or "the build cannot run", status=ToolStatus.MISSING.value
            )
        job = Job(
            source_dir=str(target),
            command=self.command,
            limits=Limits(timeout_s=self.timeout_s, memory_mb=MEMORY_MB, max_output_bytes=2_000_000),
            env=dict(self.context.env),
            label=f"{self.instance_name} on {target.name}",
        )
        with borrowed_node_modules(target, self.project_root):
            result = run_job(self.instance_name, self.context.executor, job)
        findings = [] if result.returncode == 0 else [self._finding(result)]
        return ScanResult(verifier=self.instance_name, findings=findings, duration_s=time.monotonic() - started)

    def _finding(self, result: JobResult) -> Finding:
        shown = shlex.join(self.command)
        tail = output_tail(result) or "no output"
        return Finding(
            verifier=self.instance_name,
            rule_id=RULE,
            severity=Severity.HIGH,
            message=one_line(f"`{shown}` exited {result.returncode}: {tail}", TAIL_CHARS + 200),
            path="",
            identity=shown,
        )
