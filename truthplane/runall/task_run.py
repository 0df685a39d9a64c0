"""Running one run-all task in its own tree and judging it: `command`, `patch` and `fix` kinds.

A task starts from a `Tree` (the run's snapshot of the user's working tree plus every change this run
committed before it), works in its own directory, and comes back with an `Outcome`: the verdict, the
files it changed and where their new contents are. Nothing here touches the user's checkout.
"""

from __future__ import annotations

import asyncio
import base64
import difflib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from truthplane.git.checkout import Write, link_problem
from truthplane.config import Config
from truthplane.errors import TruthplaneError
from truthplane.executors.interface import Executor
from truthplane.executors.interpreter import repository_interpreter
from truthplane.git.tree_writer import TreeWriter, UnsafeWrite
from truthplane.executors.jobs import Job, Limits
from truthplane.models import Finding, Scan, Verdict
from truthplane.runall.tasks import Task
from truthplane.git.repo import files_after

OUTPUT_TAIL = 2000
CAPTURE_FILE = ".truthplane-capture.py"
MANIFEST_FILE = ".truthplane-manifest.json"
# runs after the task's command, in the job's own copy of the tree: prints what the command changed
CAPTURE_SCRIPT = r"""
import base64, hashlib, json, os, stat, sys
manifest = json.load(open(".truthplane-manifest.json"))
before, skip = manifest["files"], set(manifest["skip"])
was_exec, links_before = set(manifest["exec"]), manifest["links"]
found, changed, executable, links = set(), {}, [], {}
for top, dirs, names in os.walk("."):
    for name in [d for d in dirs if os.path.islink(os.path.join(top, d))] + names:
        path = os.path.join(top, name)[2:].replace(os.sep, "/")
        if os.path.islink(path) and not set(path.split("/")) & skip:
            links[path] = os.readlink(path)
    dirs[:] = [d for d in dirs if d not in skip and not os.path.islink(os.path.join(top, d))]
    for name in names:
        path = os.path.join(top, name)[2:].replace(os.sep, "/")
        if path in (".truthplane-capture.py", ".truthplane-manifest.json", ".truthplane-start") or os.path.islink(path):
            continue
        found.add(path)
        data = open(path, "rb").read()
        is_exec = bool(os.stat(path).st_mode & stat.S_IXUSR)
        new_blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() != before.get(path)
        if new_blob or is_exec != (path in was_exec):
            changed[path] = base64.b64encode(data).decode()
            if is_exec:
                executable.append(path)
deleted = sorted(p for p in before if p not in found and p not in links and not set(p.split("/")) & skip)
unlinked = sorted(p for p in links_before if p not in links and p not in found)
made = {p: t for p, t in links.items() if links_before.get(p) != t}
sys.stdout.write("\n" + manifest["marker"] + "\n" + json.dumps(
    {"changed": changed, "deleted": deleted + unlinked, "executable": executable, "links": made}) + "\n")
"""
# Nothing whose status changed after the start mark (ctime: writes, renames, deletions in a directory,
# even an mtime set back) means nothing changed, and no python is started; the pause makes sure a
# change cannot share the mark's clock tick. Any doubt (find failing, no -quit) takes the full check.
WRAPPER = (': > .truthplane-start && sleep 0.02; sh -c "$TRUTHPLANE_COMMAND"; rc=$?; '
           'if found=$(find . -cnewer .truthplane-start -print -quit 2>/dev/null) && [ -z "$found" ]; '
           'then printf "\\n%s\\n%s\\n" "$TRUTHPLANE_MARKER" \'{"changed": {}, "deleted": []}\'; '
           'else python3 -I .truthplane-capture.py || exit 125; fi; exit $rc')
SEVERITY = {Verdict.APPROVE: 0, Verdict.REVIEW: 1, Verdict.UNVERIFIED: 2, Verdict.REJECT: 3}


def worst(*verdicts: Verdict) -> Verdict:
    return max(verdicts, key=SEVERITY.__getitem__)


@dataclass
class Tree:
    """A state tasks start from: generation 0 is the snapshot, each commit of this run makes the next."""

    generation: int
    directory: Path
    files: dict[str, str]  # repo-relative path -> git blob id
    links: dict[str, str] = field(default_factory=dict)  # repo-relative path -> a symlink's target
    scan: Scan | None = None
    _executable: list[str] | None = None

    def executable(self) -> list[str]:
        """The files with the exec bit: a command that sets or clears it changed the file."""
        if self._executable is None:
            self._executable = sorted(rel for rel in self.files if os.stat(self.directory / rel).st_mode & stat.S_IXUSR)
        return self._executable
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


@dataclass
class Outcome:
    verdict: Verdict
    reasons: list[str]
    touched: list[str] = field(default_factory=list)
    after: Path | None = None  # holds the touched files' new contents
    diff: str = ""
    new: list[Finding] = field(default_factory=list)
    fixed: list[Finding] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)  # command / tests / fix: what ran and how it ended
    scanned: set[str] = field(default_factory=set)
    builds: int = 0  # test and reproduction runs that completed
    cleanup: Callable[[], None] | None = None
    title: str = ""  # the change's own title (a fix candidate's)


@dataclass
class Worker:
    """Where a task runs: the worker's name, its sandbox executor, and what it is doing now (each change is
    reported to `report`, which sends it to the client's live display)."""

    name: str
    pool: str
    executor: Executor
    executor_name: str
    config: Config
    doing: str | None = None
    alive: bool = True
    report: Callable[[str], None] | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name == "doing" and value and getattr(self, "report", None) is not None:
            self.report(value)  # type: ignore[misc]


class Runner:
    """What every task needs: the configuration, a bound on concurrent scans, the patch and candidate files.

    `candidates_root` holds a fix task's candidate patch files at their repository paths; `interpreter_root`, the
    user's checkout when it is on this machine, whose own Python (its .venv) runs the acceptance tests."""

    def __init__(self, config: Config, scan_executor: str, scans: int, patches: dict[str, str],
                 candidates_root: Path, interpreter_root: Path | None) -> None:
        from truthplane.truth.sources import Excluder

        self.config = config
        self.scan_executor = scan_executor
        self.scan_gate = asyncio.Semaphore(max(1, scans))
        self.patches = patches
        self.candidates_root = candidates_root
        self.interpreter_root = interpreter_root
        self.excluded = Excluder(config.all_excludes())

    def scan_now(self, directory: Path, files: dict[str, str], label: str) -> Scan:
        from truthplane.truth.pipeline import ScanOptions, run_scan
        from truthplane.truth.sources import Source

        kept = {p: b for p, b in files.items() if not self.excluded(p)}
        source = Source(kept, lambda: nullcontext(directory), label=label)
        return run_scan(source, self.config, ScanOptions(executor=self.scan_executor))

    async def scan(self, directory: Path, files: dict[str, str], label: str) -> Scan:
        async with self.scan_gate:
            return await asyncio.to_thread(self.scan_now, directory, files, label)

    async def tree_scan(self, tree: Tree) -> Scan:
        async with tree.lock:
            if tree.scan is None:
                tree.scan = await self.scan(tree.directory, tree.files, f"generation {tree.generation}")
            return tree.scan

    async def run(self, task: Task, tree: Tree, worker: Worker, taskdir: Path) -> Outcome:
        if task.kind == "command":
            return await self._command(task, tree, worker, taskdir)
        if task.kind == "patch":
            return await self._patch(task, tree, worker, taskdir)
        return await self._fix(task, tree, worker)

    # ---- kinds -----------------------------------------------------------------------------

    async def _command(self, task: Task, tree: Tree, worker: Worker, taskdir: Path) -> Outcome:
        assert task.command is not None
        marker = "truthplane-capture-" + secrets.token_hex(8)
        skip = [name for name in self.config.all_excludes() if not any(ch in name for ch in "*?[/")]
        manifest = json.dumps({"files": tree.files, "skip": skip, "marker": marker, "exec": tree.executable(),
                               "links": tree.links}).encode()
        job = Job(command=["sh", "-c", WRAPPER], env={"TRUTHPLANE_COMMAND": task.command, "TRUTHPLANE_MARKER": marker},
                  files={CAPTURE_FILE: CAPTURE_SCRIPT.encode(), MANIFEST_FILE: manifest},
                  source_dir=str(tree.directory), label=f"{task.id}: command",
                  limits=Limits(timeout_s=task.timeout_s, network=task.network, max_output_bytes=256_000_000))
        worker.doing = f"{task.id}: running {task.command[:40]}"
        result = await worker.executor.run(job)
        output, _, captured = result.stdout.rpartition("\n" + marker + "\n")
        if not _:
            output = result.stdout
        tail = (output + result.stderr)[-OUTPUT_TAIL:]
        check = {"command": task.command, "returncode": result.returncode, "timed_out": result.timed_out,
                 "node": result.node, "attempts": result.attempts, "duration_s": round(result.duration_s, 3),
                 "output_tail": tail, "notes": result.notes}
        if result.timed_out:
            return Outcome(
                Verdict.UNVERIFIED, [f"the command timed out after {task.timeout_s:g} s"], checks={"command": check}
            )
        if not _ or result.stdout_truncated:
            why = "the output was too large" if result.stdout_truncated else f"exit {result.returncode}"
            reason = f"could not collect the files the command changed ({why}): does the executor have python3?"
            return Outcome(Verdict.UNVERIFIED, [reason], checks={"command": check})
        if result.returncode != 0:
            return Outcome(
                Verdict.REJECT, [f"the command failed (exit {result.returncode})"], checks={"command": check}
            )
        try:
            writes = captured_writes(json.loads(captured))
        except (ValueError, TypeError, KeyError, AttributeError):
            return Outcome(Verdict.UNVERIFIED, ["the list of files the command changed could not be read"],
                           checks={"command": check})
        writes = [write for write in writes if not self.excluded(write.path)]
        after = taskdir / "after"
        touched = sorted(write.path for write in writes)
        try:
            if writes:
                await asyncio.to_thread(_materialise, tree.directory, after, writes)
        except UnsafeWrite as exc:  # a path or a link the checkout could never take: nothing else to judge
            return Outcome(Verdict.REJECT, [f"the command's change cannot be carried: {exc}"], touched=touched,
                           checks={"command": check})
        diff = await asyncio.to_thread(unified_diff, tree.directory, after, touched)
        outcome = await self._judge(task, tree, worker, after if writes else tree.directory, touched, diff)
        outcome.checks["command"] = check
        return outcome

    async def _patch(self, task: Task, tree: Tree, worker: Worker, taskdir: Path) -> Outcome:
        from truthplane.change.candidates import CandidateError, apply_candidate, check_patch
        from truthplane.change.fixes import Candidate

        text = self.patches[task.id]
        candidate = Candidate(id=task.patch or task.id, source="patch", title=task.label, diff=text)
        worker.doing = f"{task.id}: applying {task.patch}"
        problems = await asyncio.to_thread(check_patch, tree.directory, candidate)
        if problems:
            return Outcome(Verdict.REJECT, problems, diff=text)
        after = taskdir / "after"
        await asyncio.to_thread(shutil.copytree, tree.directory, after, symlinks=True)
        try:
            touched = await asyncio.to_thread(apply_candidate, after, candidate)
        except CandidateError as exc:
            return Outcome(Verdict.REJECT, [str(exc)], diff=text)
        return await self._judge(task, tree, worker, after, sorted(touched), text)

    async def _fix(self, task: Task, tree: Tree, worker: Worker) -> Outcome:
        from truthplane.change.fixes import FixRequest
        from truthplane.change.loop import run_fix
        from truthplane.truth.pipeline import ScanOptions

        target = task.fix_target()
        assert target is not None
        request = FixRequest(
            root=tree.directory, target=target, finding=task.finding, providers=list(task.providers),
            patches=[self.candidates_root / rel for rel in task.candidates], autofix=task.autofix,
            test_cmd=task.acceptance.test_cmd, executor=worker.executor_name, timeout_s=task.timeout_s,
        )
        config = worker.config.model_copy(update={"gate": task.acceptance.policy(self.config.gate)})

        def say(line: str) -> None:
            worker.doing = f"{task.id}: {line[:60]}"

        worker.doing = f"{task.id}: fixing {target}"
        run = await run_fix(request, config, ScanOptions(executor=self.scan_executor), say, worker.executor)
        result = run.result
        baseline_tests = 1 if task.acceptance.test_cmd and run.base is not None else 0  # the loop tests the tree first
        builds = baseline_tests + sum(1 for r in result.candidates if r.tests is not None) + sum(
            len(r.repro.after_rc) for r in result.candidates if r.repro)
        scanned = set(run.base.scan.files) if run.base else set()
        checks = {"fix": {"candidates": [{"id": r.id, "source": r.source, "verdict": r.verdict.value,
                                          "reasons": r.reasons} for r in result.candidates]}}
        winner = next((r for r in result.candidates if r.id == result.winner), None)
        if winner is None:
            reasons = result.reasons + [f"{r.id}: {'; '.join(r.reasons)}" for r in result.candidates]
            verdict = result.verdict if result.candidates else Verdict.REJECT
            return Outcome(verdict, reasons or ["no candidate was approved"], checks=checks, scanned=scanned,
                           builds=builds, cleanup=run.cleanup)
        outside = [p for p in winner.touched if not task.may_touch(p)]
        candidate = run.candidates[winner.id]
        outcome = Outcome(Verdict.APPROVE, winner.reasons, touched=sorted(winner.touched), after=run.trees[winner.id],
                          diff=candidate.diff, new=winner.new, fixed=winner.fixed, checks=checks, scanned=scanned,
                          builds=builds, cleanup=run.cleanup, title=candidate.title)
        if outside:
            outcome.verdict = Verdict.REJECT
            outcome.reasons = [f"the fix touches {', '.join(outside[:3])}, which the task may not touch"]
        if winner.tests is not None:
            outcome.checks["tests"] = winner.tests.model_dump()
        return outcome

    # ---- the common judgement of a change ---------------------------------------------------

    async def _judge(
        self, task: Task, tree: Tree, worker: Worker, after: Path, touched: list[str], diff: str
    ) -> Outcome:
        from truthplane.change.candidates import CandidateError
        from truthplane.truth.verdict import compare, judge
        from truthplane.change.tamper import tamper_reasons

        outcome = Outcome(Verdict.APPROVE, [], touched=touched, after=after if touched else None, diff=diff)
        rejects: list[str] = []
        if task.allowed():
            outside = [p for p in touched if not task.may_touch(p)]
            if outside:
                rejects.append(f"changed {', '.join(outside[:3])}, which the task may not touch (files = {task.files})")
        elif task.kind == "command" and touched:
            rejects.append(f"changed {', '.join(touched[:3])}, but the task lists no files it may touch")
        if diff and touched:
            try:
                rejects += tamper_reasons(diff, root=tree.directory)
            except CandidateError:
                pass  # a binary or unparsable change: the scan still judges it
        if touched:
            worker.doing = f"{task.id}: scanning"
            after_files = files_after(tree.files, after, touched)
            before, after_scan = await asyncio.gather(self.tree_scan(tree), self.scan(after, after_files, task.id))
            gate_diff, problems = compare(before, after_scan)
            verdict, reasons = judge(gate_diff, problems, task.acceptance.policy(self.config.gate))
            outcome.verdict, outcome.reasons = verdict, reasons
            outcome.new, outcome.fixed = gate_diff.new, gate_diff.fixed
            outcome.scanned = set(before.files) | set(after_scan.files)
        else:
            outcome.reasons = ["no file changed"]
        if task.acceptance.test_cmd:
            verdict, reason = await self._tests(task, worker, after if touched else tree.directory, outcome)
            outcome.verdict = worst(outcome.verdict, verdict)
            outcome.reasons.append(reason)
        if rejects:
            outcome.verdict = Verdict.REJECT
            outcome.reasons = rejects + outcome.reasons
        return outcome

    async def _tests(self, task: Task, worker: Worker, directory: Path, outcome: Outcome) -> tuple[Verdict, str]:
        command = task.acceptance.test_cmd
        assert command is not None
        worker.doing = f"{task.id}: testing"
        # the repository's own Python (its .venv first), as `fix` runs tests, where the executor runs this machine's
        root = self.interpreter_root if worker.executor.runs_host_interpreter else None
        job = Job(
            command=["sh", "-c", command],
            source_dir=str(directory),
            label=f"{task.id}: tests",
            limits=Limits(timeout_s=task.timeout_s, network=task.network),
            origin=str(root) if root else None,
            interpreter=repository_interpreter(root) if root else None,
        )
        result = await worker.executor.run(job)
        outcome.checks["tests"] = {"command": command, "returncode": result.returncode, "timed_out": result.timed_out,
                                   "node": result.node, "interpreter": result.interpreter,
                                   "output_tail": (result.stdout + result.stderr)[-OUTPUT_TAIL:]}
        if result.timed_out:
            return Verdict.UNVERIFIED, f"the tests timed out after {task.timeout_s:g} s"
        outcome.builds += 1
        if result.returncode != 0:
            return Verdict.REJECT, f"the tests fail (exit {result.returncode}): {command}"
        return Verdict.APPROVE, f"the tests pass: {command}"


def captured_writes(data: dict[str, Any]) -> list[Write]:
    """The capture script's report as writes: files (with their exec bit), symlinks, deletions."""
    executable = set(data.get("executable", []))
    writes = [Write(rel, "file", base64.b64decode(b64), rel in executable) for rel, b64 in data["changed"].items()]
    writes += [
        Write(rel, "symlink", str(target).encode("utf-8", "surrogateescape"))
        for rel, target in data.get("links", {}).items()
    ]
    writes += [Write(rel, "absent") for rel in data["deleted"]]
    return writes


def _materialise(source: Path, dest: Path, writes: list[Write]) -> None:
    """`source` copied to `dest` with the writes made: paths and link targets held to the checkout's rules
    (the list comes from the job's output, which the command could have forged)."""
    shutil.copytree(source, dest, symlinks=True)
    writer = TreeWriter(dest)
    problems = [p for w in writes if (p := link_problem(w) if w.kind == "symlink" else None)]
    if problems:
        raise UnsafeWrite("; ".join(problems))
    for write in writes:
        if write.kind == "file":
            if (dest / write.path).is_symlink():
                writer.remove(write.path)  # a link the command replaced with a file
            writer.write(write.path, write.data, executable=write.executable)
        elif write.kind == "symlink":
            writer.symlink(write.path, write.data.decode("utf-8", "surrogateescape"))
        else:
            writer.remove(write.path)


def unified_diff(before: Path, after: Path, touched: list[str]) -> str:
    """A git-style diff of the touched paths (a/ b/ paths, /dev/null for created and deleted ones, mode lines
    for a changed exec bit, a symlink as its target), as `git diff` would show the change."""
    parts = []
    for rel in touched:
        old_mode, old_bytes = _side(before / rel)
        new_mode, new_bytes = _side(after / rel)
        try:
            old_lines = _lines(old_bytes)
            new_lines = _lines(new_bytes)
        except UnicodeDecodeError:
            parts.append(f"diff --git a/{rel} b/{rel}\nBinary files differ\n")
            continue
        head = [f"diff --git a/{rel} b/{rel}\n"]
        if old_mode is None and new_mode is not None:
            head.append(f"new file mode {new_mode}\n")
        elif new_mode is None and old_mode is not None:
            head.append(f"deleted file mode {old_mode}\n")
        elif old_mode != new_mode:
            head.append(f"old mode {old_mode}\nnew mode {new_mode}\n")
        header_old = f"a/{rel}" if old_bytes is not None else "/dev/null"
        header_new = f"b/{rel}" if new_bytes is not None else "/dev/null"
        body = []
        for line in difflib.unified_diff(old_lines, new_lines, header_old, header_new, n=3):
            body.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
        parts.append("".join(head + body) if body or len(head) > 1 else "")
    return "".join(parts)


def _side(path: Path) -> tuple[str | None, bytes | None]:
    """(git mode, content) of one side of a change: a symlink's content is its target; (None, None) if absent."""
    if path.is_symlink():
        return "120000", os.readlink(path).encode("utf-8", "surrogateescape")
    if path.is_file():
        return ("100755" if path.stat().st_mode & stat.S_IXUSR else "100644"), path.read_bytes()
    return None, None


def _lines(content: bytes | None) -> list[str]:
    return [] if content is None else content.decode("utf-8").splitlines(keepends=True)


def describe(exc: BaseException) -> str:
    if isinstance(exc, TruthplaneError):
        return str(exc)
    return f"unexpected {type(exc).__name__}: {exc}"
