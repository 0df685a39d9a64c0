"""The shape of a `[[tasks]]` table: checked whenever the configuration is read, whichever command runs.

truthplane.config checks the tables in truthplane.toml with these models; truthplane.runall.tasks extends them
(gate policy, digest, allowed paths) and adds the checks that need the repository (files, patches).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from truthplane.errors import ConfigError
from truthplane.models import MAX_TIMEOUT_S, Severity

# a time limit in seconds: positive, finite, at most MAX_TIMEOUT_S (truthplane.config.SECONDS)
Seconds = Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
# the fields that belong to one kind only
KIND_FIELDS = {"command": ("command", "network"), "patch": ("patch",),
               "fix": ("target", "finding", "autofix", "candidates", "providers")}


class TaskFileError(ConfigError):
    """The task file is invalid: nothing was run."""


class AcceptanceSpec(BaseModel):
    """What a task's result must satisfy: its tests pass, and the gate with these thresholds approves."""

    model_config = ConfigDict(extra="forbid")

    test_cmd: str | None = Field(default=None, description="run through the executor on the changed tree; must exit 0")
    fail_on: Severity | None = Field(default=None, description="default: [gate] fail_on")
    review_on: Severity | None = Field(default=None, description="default: [gate] review_on")
    max_new: int | None = Field(default=None, ge=0, description="default: [gate] max_new")


class TaskSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str = Field(pattern=ID_PATTERN)
    title: str = ""
    kind: Literal["fix", "command", "patch"]
    files: list[str] = Field(default_factory=list, description="what the task may touch; globs allowed")
    acceptance: AcceptanceSpec = Field(default_factory=AcceptanceSpec)
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


SpecT = TypeVar("SpecT", bound=TaskSpec)


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


def parse_task(raw: Any, index: int, source: str, model: type[SpecT]) -> SpecT:
    """One `[[tasks]]` table as `model`; the first problem is one line naming the task."""
    if not isinstance(raw, dict):
        raise TaskFileError(f"{source}: tasks[{index}] is not a table: write it as [[tasks]]")
    name = repr(raw["id"]) if isinstance(raw.get("id"), str) else f"#{index + 1}"
    try:
        task = model.model_validate(raw)
    except ValidationError as exc:
        raise TaskFileError(f"{source}: task {name}: {_describe(exc.errors()[0])}") from None
    except RecursionError:
        raise TaskFileError(f"{source}: task {name}: tables or arrays are nested too deeply") from None
    for kind, fields in KIND_FIELDS.items():
        stray = [f for f in fields if f in raw and kind != task.kind]
        if stray:
            raise TaskFileError(f"{source}: task {name}: {stray[0]!r} is for kind = \"{kind}\", not \"{task.kind}\"")
    if task.kind == "command" and not (task.command or "").strip():
        raise TaskFileError(f"{source}: task {name}: kind = \"command\" needs command = \"...\"")
    if task.kind == "patch" and not task.patch:
        raise TaskFileError(f"{source}: task {name}: kind = \"patch\" needs patch = \"path/to/change.diff\"")
    if task.kind == "fix" and not (task.target or task.files):
        raise TaskFileError(f"{source}: task {name}: kind = \"fix\" needs target = \"file\" (or files = [...])")
    return task


def find_cycle(tasks: list[SpecT]) -> list[str] | None:
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


def check_tasks(raw_tasks: Any, source: str, model: type[SpecT]) -> list[SpecT]:
    """Every table parsed, ids unique, dependencies known and acyclic; the first problem is one line."""
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise TaskFileError(f"{source}: no tasks: add [[tasks]] tables with id, kind and what to do")
    tasks = [parse_task(raw, i, source, model) for i, raw in enumerate(raw_tasks)]
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
    return tasks
