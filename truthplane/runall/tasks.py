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
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from truthplane.config import GateConfig, read_toml
from truthplane.files import MAX_INPUT_BYTES, read_regular_file
from truthplane.models import Verdict
from truthplane.config.tasks import (
    ID_PATTERN,
    AcceptanceSpec,
    TaskFileError,
    TaskSpec,
    check_tasks,
    find_cycle,
    parse_task,
)

__all__ = ["ID_PATTERN", "Acceptance", "Task", "TaskFile", "TaskFileError", "find_cycle", "load_tasks", "validate"]


class Acceptance(AcceptanceSpec):
    def policy(self, gate: GateConfig) -> GateConfig:
        return GateConfig(
            fail_on=self.fail_on or gate.fail_on, review_on=self.review_on or gate.review_on,
            max_new=self.max_new if self.max_new is not None else gate.max_new,
        )


class Task(TaskSpec):
    acceptance: Acceptance = Field(default_factory=Acceptance)

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


def _parse_one(raw: Any, index: int, source: str) -> Task:
    return parse_task(raw, index, source, Task)


def _inside(root: Path, rel: str) -> Path | None:
    path = (root / rel).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def validate(raw_tasks: Any, source: str, root: Path) -> TaskFile:
    tasks = check_tasks(raw_tasks, source, Task)
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
                raise TaskFileError(
                    f"{source}: task {task.id!r}: patch file {rel} is not readable UTF-8 text"
                ) from None
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


@dataclass
class TaskState:
    task: Task
    index: int
    status: str = "PENDING"  # PENDING, RUNNING, DONE
    verdict: Verdict | None = None
    record: dict[str, Any] | None = None
    commit: str | None = None
    carried: str | None = None  # where a result from an earlier run came from
    branch: str | None = None  # the task's own branch, when it changed something
    branch_commit: str | None = None
    worker: str | None = None
    lost_on: list[str] = field(default_factory=list)
    conflicts: int = 0
    attempts: int = 0  # submissions to the cluster (a conflict resubmits)
