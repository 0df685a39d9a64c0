"""The template of a tool run on the files to check, named on its command line (ruff, bandit, semgrep, mypy).

Its scan is always the same: keep the files it looks at (none left: nothing to run), build the command line,
run it, read the output as findings. A verifier of this kind says only what differs: the command
(`command`, by default its built-in spelling `recipe`), the exit codes that mean "ran, and found these"
(`ok_exit_codes`), and how its output becomes findings (`findings`).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

from truthplane.models import Finding, ScanResult
from truthplane.verifiers._commands import Command, select_files
from truthplane.verifiers._common import empty_result
from truthplane.verifiers.interface import Verifier
from truthplane.verifiers.tool import ToolOutput, run_tool


class FileToolVerifier(Verifier):
    incremental = True
    #: the exit codes of a run that worked, findings or not
    ok_exit_codes: ClassVar[tuple[int, ...]] = (0, 1)
    #: a Python analyser that a long-lived process may start from a warm copy (truthplane.verifiers.zygote)
    warm_start: ClassVar[bool] = False

    def command(self, target: Path, files: list[str] | None) -> Command:
        """The command line for these files (None: the whole tree)."""
        recipe = self.recipe(target)
        if recipe is None:
            raise NotImplementedError(f"{type(self).__name__} has no recipe: it must define command()")
        return recipe.command(target, files)

    def narrow(self, target: Path, files: list[str]) -> list[str]:
        """Those of the selected `files` the tool must run on (none: it would report nothing on any of them)."""
        recipe = self.recipe(target)
        return recipe.narrow(target, files) if recipe is not None else files

    @abstractmethod
    def findings(self, target: Path, output: ToolOutput, files: list[str] | None) -> list[Finding]:
        """The tool's output as findings, for the files it was given (None: the whole tree)."""

    def scan(self, target: Path, files: list[str] | None = None) -> ScanResult:
        started = time.monotonic()
        if files is not None:
            files = select_files(target, files, self.suffixes)
            files = self.narrow(target, files) if files else files
            if not files:
                return empty_result(self.instance_name, self.available().version)
        command = self.command(target, files)
        output = run_tool(self.instance_name, command.argv, cwd=target, timeout_s=self.timeout_s,
                          ok_exit_codes=self.ok_exit_codes, env=command.env, warm=self.warm_start)
        return ScanResult(
            verifier=self.instance_name,
            version=self.available().version,
            findings=self.findings(target, output, files),
            duration_s=time.monotonic() - started,
        )
