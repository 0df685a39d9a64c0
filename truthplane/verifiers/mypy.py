"""mypy: whole-program type checking, run with cwd=target so mypy.ini, .mypy.ini, pyproject [tool.mypy]
or setup.cfg [mypy] apply. When that config names `files`, mypy checks those; otherwise it checks `.`.
truthplane's `args` are appended. Output is mypy's JSON lines (`-O json`, mypy >= 1.11).

Exit codes: 0 clean, 1 findings, 2 could not run (a blocking error such as a syntax error or a duplicate
module, bad arguments). mypy exits 0 when it cannot parse its config file and silently ignores it, so a
config complaint on stderr is treated as could-not-run too (an unrecognised option is only a warning).
Severity: error -> medium; a standalone note (reveal_type) -> note; a note attached to an error is
folded into that error (a "See https://..." hint becomes its help_uri).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import tomllib
from pathlib import Path

from truthplane.errors import VerifierError
from truthplane.models import Finding, Severity, ToolInfo
from truthplane.verifiers._commands import Command
from truthplane.verifiers._common import (
    ToolRecord,
    cached_tool_info,
    one_line,
    parse_json,
    positive,
    repo_path,
    validate,
)
from truthplane.verifiers.file_tool import FileToolVerifier
from truthplane.verifiers.tool import ToolOutput

INSTALL_HINT = "pip install mypy, or drop it from verifiers in truthplane.toml"
CONFIG_FILES = ("mypy.ini", ".mypy.ini", "pyproject.toml", "setup.cfg")
_SEE_URL = re.compile(r"^See (https?://\S+)$")
_CONFIG_COMPLAINT = re.compile(r"^(mypy\.ini|\.mypy\.ini|pyproject\.toml|setup\.cfg): (.*)$", re.MULTILINE)


class _MypyMessage(ToolRecord):
    file: str
    line: int | None = None
    column: int | None = None
    end_line: int | None = None
    end_column: int | None = None
    message: str
    hint: str | None = None
    code: str | None = None
    severity: str


def config_names_files(target: Path) -> bool:
    """Does the config mypy will pick (its own search order) say which files to check?"""
    for name in CONFIG_FILES:
        path = target / name
        if not path.is_file():
            continue
        if name == "pyproject.toml":
            try:
                section = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("mypy")
            except (tomllib.TOMLDecodeError, UnicodeDecodeError):
                return False
            if section is None:
                continue
            return bool(section.get("files"))
        import configparser  # only for an INI file: some 4 ms of a gate's imports otherwise

        parser = configparser.ConfigParser()
        try:
            parser.read(path, encoding="utf-8")
        except (configparser.Error, UnicodeDecodeError):
            return False
        if not parser.has_section("mypy"):
            if name == "setup.cfg":
                continue
            return False
        return bool(parser.get("mypy", "files", fallback="").strip())
    return False


def mypy_cache_dir(target: Path) -> str:
    """mypy's cache for this directory only: a cache shared by two trees reports stale results (or
    none) for a module that moved. A temporary tree is scanned once, so caching it only leaves litter."""
    real = os.path.realpath(target)
    if real.startswith(os.path.realpath(tempfile.gettempdir()) + os.sep):
        return os.devnull
    from truthplane.paths import default_cache_dir

    return str(default_cache_dir() / "mypy" / hashlib.sha256(real.encode()).hexdigest()[:24])


def _config_problem(stderr: str) -> str | None:
    for match in _CONFIG_COMPLAINT.finditer(stderr):
        if "Unrecognized option" not in match.group(2):
            return f"{match.group(1)}: {match.group(2)}"
    return None


class MypyVerifier(FileToolVerifier):
    name = "mypy"
    # not started from a zygote: forked from a copy that imported it, mypy 2.4 stops with an INTERNAL ERROR
    # (tests/verifiers/test_zygote.py)
    warm_start = False
    # a file subset is accepted, but results depend on the whole program: cached by tree, not per file
    file_local = False
    tree_cacheable = True
    suffixes = (".py", ".pyi")
    config_files = CONFIG_FILES
    pyproject_keys = ("tool.mypy", "project.requires-python")

    def available(self) -> ToolInfo:
        return cached_tool_info(self.instance_name, ["mypy", "--version"], install_hint=INSTALL_HINT)

    ok_exit_codes = (0, 1, 2)

    def command(self, target: Path, files: list[str] | None) -> Command:
        targets = ["--", *files] if files is not None else [] if config_names_files(target) else ["."]
        return Command(["mypy", "-O", "json", "--no-error-summary", "--cache-dir", mypy_cache_dir(target),
                        *self.options.args, *targets])

    def findings(self, target: Path, output: ToolOutput, files: list[str] | None) -> list[Finding]:
        return self.parse(target, output)

    def parse(self, target: Path, output: ToolOutput) -> list[Finding]:
        """mypy's JSON lines as findings; a blocking error or an unusable config is a VerifierError."""
        problem = _config_problem(output.stderr)
        if problem:
            raise VerifierError(
                self.instance_name, f"mypy cannot use its configuration ({one_line(problem, 200)}); fix it"
            )
        if output.returncode == 2:
            raise VerifierError(
                self.instance_name,
                f"mypy stopped at a blocking error ({one_line(self._blocking(output.stdout, output.stderr), 200)}); "
                "fix it or exclude the file",
            )
        messages = self._messages(output.stdout)
        if output.returncode == 1 and not messages:
            raise VerifierError(
                self.instance_name, "mypy exited 1 (findings) but reported none; run mypy by hand"
            )
        return [self._finding(target, m) for m in messages]

    def _messages(self, stdout: str) -> list[_MypyMessage]:
        return [
            validate(self.instance_name, _MypyMessage, parse_json(self.instance_name, line, "mypy"), "mypy")
            for line in stdout.splitlines()
            if line.strip()
        ]

    def _blocking(self, stdout: str, stderr: str) -> str:
        try:
            errors = [m for m in self._messages(stdout) if m.severity == "error"]
        except VerifierError:
            errors = []
        if errors:
            return f"{errors[0].file}:{errors[0].line}: {errors[0].message}"
        lines = (stderr.strip() or stdout.strip()).splitlines()
        return " | ".join(lines[-2:]) or "no output"

    def _finding(self, target: Path, item: _MypyMessage) -> Finding:
        message, uri = item.message, None
        if item.hint:
            see = _SEE_URL.match(item.hint.strip())
            if see:
                uri = see.group(1)
            else:
                message = f"{message} ({item.hint})"
        is_note = item.severity == "note"
        return Finding(
            verifier=self.instance_name,
            rule_id=item.code or ("note" if is_note else "misc"),
            severity=Severity.NOTE if is_note else Severity.MEDIUM,
            tool_severity=item.severity,
            message=one_line(message),
            path=repo_path(target, item.file),
            start_line=positive(item.line),
            # mypy's JSON columns are 0-based with an exclusive end; findings are 1-based
            start_column=None if item.column is None or item.column < 0 else item.column + 1,
            end_line=positive(item.end_line),
            end_column=None if item.end_column is None or item.end_column < 0 else item.end_column + 1,
            help_uri=uri,
        )
