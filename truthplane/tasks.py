"""The task file of `truthplane run-all`: `[[tasks]]` in truthplane.toml, or a separate tasks.toml.

    [[tasks]]
    id = "drop-unused-imports"
    title = "Remove unused imports from the report module"
    kind = "fix"                      # fix | command | patch
    target = "app/report.py"          # fix: the file whose findings to fix (default: files[0])
    files = ["app/report.py"]         # what the task may touch (globs allowed)
    priority = 10                     # higher runs first among tasks that are ready
    depends_on = ["format"]
    acceptance = { test_cmd = "python -m pytest -q", fail_on = "high", review_on = "medium", max_new = 0 }

    [[tasks]]
    id = "format"
    kind = "command"                  # runs through an executor; the files it changes are gated
    command = "python tools/codemod.py"
    files = ["app/*.py"]

    [[tasks]]
    id = "bump"
    kind = "patch"
    patch = "patches/bump.diff"       # repo-relative

Everything is checked before anything runs: unknown fields, duplicate ids, unknown dependencies,
dependency cycles (named), missing files. Each problem is one line (exit 2).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from truthplane.config import GateConfig, Seconds, read_toml
from truthplane.errors import ConfigError
from truthplane.inputs import MAX_INPUT_BYTES, read_regular_file
from truthplane.models import Severity

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class TaskFileError(ConfigError):
    """The task file is invalid: nothing was run."""


class Acceptance(BaseModel):
    """What a task's result must satisfy: its tests pass, and the gate with these thresholds approves."""

    model_config = ConfigDict(extra="forbid")

    test_cmd: str | None = Field(default=None, description="run through the executor on the changed tree; must exit 0")
    fail_on: Severity | None = Field(default=None, description="default: [gate] fail_on")
    review_on: Severity | None = Field(default=None, description="default: [gate] review_on")
    max_new: int | None = Field(default=None, ge=0, description="default: [gate] max_new")

    def policy(self, gate: GateConfig) -> GateConfig:
        return GateConfig(
            fail_on=self.fail_on or gate.fail_on, review_on=self.review_on or gate.review_on,
            max_new=self.max_new if self.max_new is not None else gate.max_new,
        )


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str = Field(pattern=ID_PATTERN)
    title: str = ""
    kind: Literal["fix", "command", "patch"]
    files: list[str] = Field(default_factory=list, description="what the task may touch; globs allowed")
    acceptance: Acceptance = Field(default_factory=Acceptance)
    priority: int = 0
    depends_on: list[str] = Field(default_factory=list)
    timeout_s: Seconds = 600.0
    # kind = "command"
    command: str | None = None
    network: bool = False
    # kind = "patch"
    patch: str | None = None
    # kind = "fix"
    target: str | None = None
    finding: str | None = None
    autofix: bool = True
    candidates: list[str] = Field(default_factory=list, description="patch files judged as fix candidates")
    providers: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return self.title or self.id

    def digest(self) -> str:
        """Identity of what the task asks for: a commit trailer with this digest means "done"."""
        data = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode("utf-8")
        return hashlib.sha256(data).hexdigest()[:12]

    def fix_target(self) -> str | None:
        return self.target or (self.files[0] if self.files else None)

    def may_touch(self, path: str) -> bool:
        return any(path == pattern or fnmatch.fnmatchcase(path, pattern) for pattern in self.allowed())

    def allowed(self) -> list[str]:
        """`files`, or else what the kind implies: a fix its target, a patch its own files (checked later)."""
        if self.files:
            return self.files
        if self.kind == "fix" and self.target:
            return [self.target]
        return []


class TaskFile(BaseModel):
    source: str
    tasks: list[Task]
    patches: dict[str, str] = Field(default_factory=dict, description="task id -> the patch text, read up front")

    def by_id(self) -> dict[str, Task]:
        return {task.id: task for task in self.tasks}


_KIND_FIELDS = {"command": ("command", "network"), "patch": ("patch",),
                "fix": ("target", "finding", "autofix", "candidates", "providers")}


def _describe(error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    where = ".".join(loc)
    if error["type"] == "extra_forbidden":
        return f"unknown field {where!r}"
    if error["type"] == "missing":
        return f"missing field {where!r}"
    if error["type"] == "string_pattern_mismatch" and loc == ["id"]:
        return "id must be letters, digits, '.', '_' or '-' (at most 100)"
    return f"{where}: {error['msg']}"


def _parse_one(raw: Any, index: int, source: str) -> Task:
    if not isinstance(raw, dict):
        raise TaskFileError(f"{source}: tasks[{index}] is not a table: write it as [[tasks]]")
    name = repr(raw["id"]) if isinstance(raw.get("id"), str) else f"#{index + 1}"
    try:
        task = Task.model_validate(raw)
    except ValidationError as exc:
        raise TaskFileError(f"{source}: task {name}: {_describe(exc.errors()[0])}") from None
    for kind, fields in _KIND_FIELDS.items():
        stray = [f for f in fields if f in raw and kind != task.kind]
        if stray:
            raise TaskFileError(f"{source}: task {name}: {stray[0]!r} is for kind = \"{kind}\", not \"{task.kind}\"")
    if task.kind == "command" and not (task.command or "").strip():
        raise TaskFileError(f"{source}: task {name}: kind = \"command\" needs command = \"...\"")
    if task.kind == "patch" and not task.patch:
        raise TaskFileError(f"{source}: task {name}: kind = \"patch\" needs patch = \"path/to/change.diff\"")
    if task.kind == "fix" and not task.fix_target():
        raise TaskFileError(f"{source}: task {name}: kind = \"fix\" needs target = \"file\" (or files = [...])")
    return task


def find_cycle(tasks: list[Task]) -> list[str] | None:
    """A dependency cycle as [a, b, ..., a], or None."""
    deps = {task.id: task.depends_on for task in tasks}
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in deps.get(node, []):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for task in tasks:
        if task.id not in state:
            found = visit(task.id)
            if found:
                return found
    return None


def _inside(root: Path, rel: str) -> Path | None:
    path = (root / rel).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def validate(raw_tasks: Any, source: str, root: Path) -> TaskFile:
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise TaskFileError(f"{source}: no tasks: add [[tasks]] tables with id, kind and what to do")
    tasks = [_parse_one(raw, i, source) for i, raw in enumerate(raw_tasks)]
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise TaskFileError(f"{source}: duplicate task id {task.id!r}: ids must be unique")
        seen.add(task.id)
    for task in tasks:
        for dep in task.depends_on:
            if dep not in seen:
                raise TaskFileError(f"{source}: task {task.id!r} depends on {dep!r}, which is not a task in this file")
    cycle = find_cycle(tasks)
    if cycle:
        raise TaskFileError(f"{source}: dependency cycle: {' -> '.join(cycle)}")
    patches: dict[str, str] = {}
    for task in tasks:
        literal = [f for f in task.files if not any(ch in f for ch in "*?[")]
        named = ([task.target] if task.target else []) + literal
        for rel in named:
            path = _inside(root, rel)
            if path is None:
                raise TaskFileError(f"{source}: task {task.id!r}: {rel} is outside the repository")
            if task.kind != "command" and not path.is_file():
                raise TaskFileError(f"{source}: task {task.id!r}: file {rel} does not exist")
        for rel in ([task.patch] if task.patch else []) + task.candidates:
            path = _inside(root, rel)
            if path is None or not path.is_file():
                raise TaskFileError(f"{source}: task {task.id!r}: patch file {rel} does not exist")
            try:
                text = read_regular_file(path, MAX_INPUT_BYTES, TaskFileError).decode("utf-8")
            except TaskFileError as exc:
                raise TaskFileError(f"{source}: task {task.id!r}: patch file {rel}: {exc}") from None
            except UnicodeDecodeError:
                raise TaskFileError(f"{source}: task {task.id!r}: patch file {rel} is not readable UTF-8 text") from None
            if not text.strip():
                raise TaskFileError(f"{source}: task {task.id!r}: patch file {rel} is empty")
            if rel == task.patch:
                patches[task.id] = text
    return TaskFile(source=source, tasks=tasks, patches=patches)


def load_tasks(root: Path, path: Path | None = None) -> TaskFile:
    """The given task file, else tasks.toml at the root, else truthplane.toml's [[tasks]]."""
    if path is not None:
        if not path.is_file():
            raise TaskFileError(f"task file {path} does not exist")
        data = read_toml(path, TaskFileError)
        unknown = sorted(set(data) - {"tasks"}) if path.name != "truthplane.toml" else []
        if unknown:
            raise TaskFileError(f"{path.name}: unknown top-level key {unknown[0]!r}: a task file holds [[tasks]] only")
        return validate(data.get("tasks"), path.name, root)
    for name in ("tasks.toml", "truthplane.toml"):
        candidate = root / name
        if candidate.is_file():
            data = read_toml(candidate, TaskFileError)
            if name == "tasks.toml" or "tasks" in data:
                return load_tasks(root, candidate)
    raise TaskFileError("no task file: write tasks.toml (or [[tasks]] in truthplane.toml), or name one: run-all FILE")
