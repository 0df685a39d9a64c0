"""Analysers started ahead: a gate's tools on the changed files start while truthplane is still starting.

A gate on a large repository spends its first few hundred milliseconds importing its modules, reading its
configuration and listing both states, while the tools that scan the change could already be running. So the
last working-tree gate of a repository leaves a launch plan beside the result cache: per verifier, the values
its command line is made of (verifiers._commands.Recipe), the files it looks at, its cache key and the
excludes. The next gate of that repository reads the plan as soon as git has said what changed, works out
which changed files the cache does not hold, and starts each tool on them at once.

The plan is only a guess. A verifier takes a tool started ahead only when it would start the very same process
itself: the same executable, arguments, directory and environment (run_tool asks `take`). A wrong guess (the
configuration changed, the cache held the file after all) costs one run of a tool on the changed files, never
a wrong result: whatever nobody took is killed when the gate ends (`stop_all`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from truthplane.verifiers import started
from truthplane.verifiers._commands import Recipe, exec_form, select_files, tool_identity, which

PLAN_VERSION = 1


@dataclass(frozen=True)
class LaunchPlans:
    """Where a gate keeps its launch plans, and the options of this gate that a plan depends on."""

    cache_dir: Path
    config_path: Path | None = None
    only: tuple[str, ...] | None = None

    def path(self, root: Path) -> Path:
        """One plan per repository and truthplane installation (two installations spell different paths to
        their shipped rules: sharing a cache, they would spoil each other's plans)."""
        install = os.path.dirname(os.path.abspath(__file__))
        digest = hashlib.sha256(os.fsencode(os.path.realpath(root)) + b"\0" + os.fsencode(install)).hexdigest()[:24]
        return self.cache_dir / "launch-plans" / f"{digest}.json"

    def config_digest(self, root: Path) -> str:
        """Everything the configuration is read from (a changed configuration makes the plan a bad guess)."""
        from truthplane import __version__

        digest = hashlib.sha256(__version__.encode())
        candidates = [Path(os.path.abspath(self.config_path))] if self.config_path else []
        for path in [*candidates, root / "truthplane.toml", root / "pyproject.toml"]:
            try:
                content = path.read_bytes()
            except OSError:
                content = b"\0absent"
            digest.update(os.fsencode(path) + b"\0" + content + b"\0")
        return digest.hexdigest()

    def _read(self, root: Path) -> dict[str, Any] | None:
        try:
            plan = json.loads(self.path(root).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(plan, dict) or plan.get("version") != PLAN_VERSION:
            return None
        return plan

    def keep(self, root: Path, entries: list[dict[str, Any]], excludes: list[str], cache_db: Path) -> None:
        """Remember how this gate's verifiers ran on the working tree (written only when it changed: tools' times by
        more than SECONDS_KEPT), in the
        order the next gate starts them: the slowest first (each entry's "seconds", this gate's run time, is
        averaged with the plan's: one gate's timing alone would reorder tools of about the same speed at random)."""
        from truthplane.files import atomic_write

        for entry in entries:
            command = Recipe.from_json(entry["recipe"])
            executable = which(command.command(root, None).argv[0]) if command else None
            entry["tool"] = tool_identity(executable) if executable else None
        previous = self._read(root)
        entries = slowest_first(entries, previous.get("verifiers") if previous is not None else None)
        plan = {
            "version": PLAN_VERSION, "config": self.config_digest(root), "cache": str(cache_db.resolve()),
            "excludes": excludes, "verifiers": entries,
        }
        if self.only is not None and previous is not None and all(
            previous.get(field) == plan[field] for field in ("config", "cache", "excludes")
        ):
            # a gate of some verifiers (--verifier) keeps the plan's others for the next gate of them all
            fresh = {entry["name"]: entry for entry in entries}
            merged = [
                fresh.pop(entry["name"], None) if entry.get("name") in self.only else entry
                for entry in previous.get("verifiers", []) if isinstance(entry, dict)
            ]
            plan["verifiers"] = slowest_first([entry for entry in merged if entry is not None] + list(fresh.values()))
        if _same_plan(previous, plan):
            return  # the same plan but for tools' times within SECONDS_KEPT of the kept ones: nothing to write
        try:
            atomic_write(self.path(root), json.dumps(plan, indent=1))
        except OSError:
            pass  # only costs time next run

    def launch(self, root: Path, diff: str | None, untracked: str | None, trees: str | None = None) -> int:
        """Start the tools the plan says this gate's working tree needs, on the changed files the cache does
        not hold; how many run now. `diff` and `untracked` are what git's first two calls of
        _git.changes_args printed (`trees`: the third, if any); `diff` or `untracked` None: not known yet (the
        tools start on what is, and a later launch that knows more replaces each whose files it changes). Best
        effort: anything unexpected starts nothing, and stops what an earlier launch of this gate started."""
        plan = self._read(root)
        launches: list[tuple[str, list[str], dict[str, str], bool]] = []
        if plan is not None and plan.get("config") == self.config_digest(root):
            try:
                launches = self._launches(root, plan, diff or "", untracked or "", trees)
            except (KeyError, TypeError, ValueError, AttributeError, OSError):
                launches = []
        return started.hold_only(launches, root)

    def _launches(self, root: Path, plan: dict[str, Any], diff: str, untracked: str, trees: str | None) -> list[
            tuple[str, list[str], dict[str, str], bool]]:
        from truthplane.git.changes import parse_changes
        from truthplane.truth.cache import ResultCache, held_keys
        from truthplane.truth.excludes import Excluder

        excluded = Excluder(list(plan["excludes"]))
        changes, _dirty = parse_changes(root, diff, untracked, trees, excluded)
        changed = {p: b for p, b in changes.items() if b is not None}
        touched_names = {part for path in changes for part in path.split("/")}
        wanted: list[tuple[dict[str, Any], Recipe, dict[str, str]]] = []
        for entry in plan["verifiers"]:
            recipe = Recipe.from_json(entry["recipe"])
            if recipe is None or (self.only is not None and entry["name"] not in self.only):
                continue
            if touched_names & set(entry["config_files"]):
                continue  # the verifier's cache key changes with its configuration: the plan's key is stale
            suffixes = tuple(entry["suffixes"])
            keys = {
                path: ResultCache.key("file", entry["config_hash"], path, blob)
                for path, blob in changed.items() if not suffixes or path.endswith(suffixes)
            }
            wanted.append((entry, recipe, keys))
        held = held_keys(Path(plan["cache"]), [key for *_, keys in wanted for key in keys.values()])
        launches = []
        for entry, recipe, keys in wanted:
            files = select_files(root, sorted(p for p, k in keys.items() if k not in held), tuple(entry["suffixes"]))
            files = recipe.narrow(root, files) if files else files
            if not files:
                continue
            command = recipe.command(root, files)
            executable = which(command.argv[0])
            if executable is None or tool_identity(executable) != entry["tool"]:
                continue  # not installed any more, or another version: its cache key is stale too
            launches.append((*exec_form(executable, command.argv, started.tool_env(command.env)),
                             entry.get("warm") is True))
        return launches


SECONDS_KEPT = 0.05  # a tool's time that moved less than this since the plan was written does not rewrite it


def _same_plan(previous: dict[str, Any] | None, plan: dict[str, Any]) -> bool:
    """Whether `plan` is `previous` in every field and order, each tool's time within SECONDS_KEPT."""
    if previous is None or {**previous, "verifiers": None} != {**plan, "verifiers": None}:
        return False
    before, now = previous.get("verifiers"), plan["verifiers"]
    if not isinstance(before, list) or len(before) != len(now):
        return False
    for old, new in zip(before, now):
        if not isinstance(old, dict) or {**old, "seconds": None} != {**new, "seconds": None}:
            return False
        if not isinstance(old.get("seconds"), (int, float)) or abs(old["seconds"] - new["seconds"]) > SECONDS_KEPT:
            return False
    return True


def slowest_first(entries: list[dict[str, Any]], previous: object = None) -> list[dict[str, Any]]:
    """Plan entries ordered by their "seconds", each averaged with the same verifier's in `previous` (the plan's
    entries) first, to a hundredth of a second: the slowest first, the order given among equals."""
    before = {entry.get("name"): entry.get("seconds") for entry in previous if isinstance(entry, dict)} \
        if isinstance(previous, list) else {}
    for entry in entries:
        seconds, earlier = entry.get("seconds"), before.get(entry.get("name"))
        if not isinstance(seconds, (int, float)):
            seconds = 0.0
        if isinstance(earlier, (int, float)) and earlier >= 0:
            seconds = (seconds + earlier) / 2
        entry["seconds"] = round(max(seconds, 0.0), 2)
    return sorted(entries, key=lambda entry: -entry["seconds"])


@contextmanager
def tools_ahead(
    plans: LaunchPlans | None,
) -> Iterator[Callable[[tuple[Path, str | None, str | None, str | None] | None], None] | None]:
    """For git's calls ahead (truthplane.git.run.gate_calls_ahead): what to do once git has listed what changed
    in the working tree, which is to start the planned tools on it. Until then a verifier that asks for a tool
    started ahead waits; a tool nobody took is killed when the block ends."""
    if plans is None:
        yield None
        return

    def listed(listing: tuple[Path, str | None, str | None, str | None] | None) -> None:
        if listing is not None and listing[2] is None:  # not all known yet: the untracked files come last
            plans.launch(*listing)
            return
        try:
            if listing is not None:
                plans.launch(*listing)
            else:
                started.stop_all()  # git failed: whatever started on the tracked changes is no guess at all
        finally:
            started.launch_over()

    started.launching()
    try:
        yield listed
    finally:
        started.launch_over()
        started.stop_all()
