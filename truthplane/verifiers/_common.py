"""Parsing helpers the verifier modules share: JSON that must be JSON, paths that must be
repo-relative, tool output validated against the shape we rely on."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, TypeVar, dataclass_transform

from truthplane.errors import VerifierError
from truthplane.reading import Unexpected, read
from truthplane.models import Finding, ScanResult, Severity, ToolInfo
from truthplane.verifiers._commands import (
    select_files as select_files,  # shared with the commands spelled ahead
)
from truthplane.verifiers._commands import which
from truthplane.verifiers.versions import tool_version

M = TypeVar("M")


@dataclass_transform(kw_only_default=True, field_specifiers=(dataclasses.field,))
class ToolRecord:
    """Base for the slices of a tool's output we read: a dataclass (every subclass is made one) whose fields
    `validate` reads from the tool's JSON (truthplane.reading: as pydantic's lax mode does); keys it does not
    name are ignored."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(kw_only=True)(cls)


def parse_json(verifier: str, text: str, tool: str, stderr: str = "") -> Any:
    """The tool's stdout as JSON, or a VerifierError quoting what it printed instead."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if text.strip():
            shown = f"printed output that is not JSON ({one_line(text, 120)!r})"
        else:
            tail = " | ".join(stderr.strip().splitlines()[-2:])
            shown = f"printed nothing on stdout{f' ({one_line(tail, 160)})' if tail else ''}"
        raise VerifierError(verifier, f"{tool} {shown}; run it by hand to see why") from None


def validate(verifier: str, model: type[M], data: Any, tool: str) -> M:
    """Read one piece of tool output; a shape we do not recognise is a failure, not zero findings. `model` is a
    ToolRecord, or a pydantic model (validated by pydantic)."""
    if not issubclass(model, ToolRecord):  # a pydantic model (a format whose rules need its validators)
        return _validated(verifier, model, data, tool)
    try:
        return read(model, data)
    except Unexpected as exc:
        raise _shape_error(verifier, tool, exc.loc, exc.msg) from None


def _validated(verifier: str, model: Any, data: Any, tool: str) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _shape_error(verifier, tool, tuple(first["loc"]), first["msg"]) from None


def _shape_error(verifier: str, tool: str, loc: tuple[Any, ...], msg: str) -> VerifierError:
    where = ".".join(str(p) for p in loc) or "top level"
    return VerifierError(
        verifier, f"{tool} printed JSON of an unexpected shape ({where}: {msg}); is this {tool} version supported?")


def repo_path(target: Path, reported: str) -> str:
    """A path a tool reported (absolute, or relative to `target` where it ran) as repo-relative POSIX.
    A path outside the repository stays relative ("../x.py"): absolute paths never leave the process."""
    base = os.path.abspath(target)
    path = os.path.normpath(os.path.join(base, reported))
    for root in (base, os.path.realpath(base)):
        for candidate in (path, os.path.realpath(path)):
            if candidate == root or candidate.startswith(root + os.sep):
                return Path(os.path.relpath(candidate, root)).as_posix()
    return Path(os.path.relpath(path, base)).as_posix()


_TOOL_INFO: dict[tuple[str, float, str], ToolInfo] = {}


def cached_tool_info(verifier: str, command: list[str], *, install_hint: str) -> ToolInfo:
    """tool_version, asked once per executable (and again if the executable changes on disk)."""
    executable = which(command[0])
    if executable is None:
        return tool_version(verifier, command, install_hint=install_hint)
    try:
        key = (executable, os.stat(executable).st_mtime, " ".join(command))
    except OSError:
        return tool_version(verifier, command, install_hint=install_hint)
    info = _TOOL_INFO.get(key)
    if info is None:
        info = tool_version(verifier, command, install_hint=install_hint)
        if info.version:
            _TOOL_INFO[key] = info
    return info.model_copy(update={"name": verifier})


# rules whose findings are expected in tests (assert is how pytest checks; fixtures name passwords; test
# clients call without timeouts): no findings in test files unless the repository configures the tool itself
TEST_FILE_RULES = {
    "bandit": frozenset({"B101", "B105", "B106", "B107", "B113"}),
    "ruff": frozenset({"S101", "S105", "S106", "S107", "S113"}),
}
# a version of these defaults, for the cache key: changing them must not leave stale cached findings
TEST_FILE_DEFAULTS = "test-files-1:" + ";".join(
    f"{k}={','.join(sorted(v))}" for k, v in sorted(TEST_FILE_RULES.items())
)


def is_test_code(path: str) -> bool:
    """Code that serves the tests: tests/ anywhere in the path, test_*.py, *_test.py, conftest.py (where pytest
    looks). Rules that do not apply to test code are dropped there. (A test a change must not weaken is
    truthplane.change.tamper.is_test_file: conftest.py counts as configuration there.)"""
    parts = path.split("/")
    name = parts[-1]
    return (
        "tests" in parts[:-1] or name == "conftest.py"
        or (name.startswith("test_") and name.endswith(".py")) or name.endswith("_test.py")
    )


def drop_test_file_rules(findings: list[Finding], rules: frozenset[str]) -> list[Finding]:
    return [f for f in findings if not (f.rule_id in rules and is_test_code(f.path))]


def empty_result(verifier: str, version: str | None) -> ScanResult:
    return ScanResult(verifier=verifier, version=version, findings=[])


def one_line(text: str, limit: int = 300) -> str:
    """A message squeezed onto one line, so tool messages never break the one-line error rule."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def positive(value: int | None) -> int | None:
    """Tools report 0 or negative numbers for 'no line'; findings use 1-based lines or None."""
    return value if value is not None and value >= 1 else None


SEVERITY_WORDS: dict[str, Severity] = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "error": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "warning": Severity.MEDIUM,
    "low": Severity.LOW,
    "info": Severity.LOW,
    "note": Severity.NOTE,
    "none": Severity.NOTE,
}


def severity_from_word(word: str | None, default: Severity) -> Severity:
    """Map a tool's severity word (ERROR, warning, High, ...) onto truthplane's scale."""
    if not word:
        return default
    return SEVERITY_WORDS.get(word.strip().lower(), default)
