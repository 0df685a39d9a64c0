"""The evidence-first patch loop: snapshot -> baseline -> candidates -> evaluate in parallel -> judge.

Every candidate is applied to its own copy of a snapshot of the user's working tree; the user's files
are read once (the snapshot) and written only when an approved winner is applied (workspace.py).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from truthplane.config import Config
from truthplane.errors import ProviderError, UsageError
from truthplane.executors.interface import Executor
from truthplane.executors.interpreter import describe_interpreter, repository_job
from truthplane.executors.preflight import preflight_change, preflight_files
from truthplane.change.fixes import Candidate, CandidateResult, FixResult, RunCheck
from truthplane.change.fixes import Baseline, FixRequest
from truthplane.change.judge import NEEDS_PROVIDER, choose_winner, describe_target, judge, target_kind
from truthplane.leftovers import owned_prefix
from truthplane.models import Verdict
from truthplane.truth.pipeline import ScanOptions, run_scan
from truthplane.truth.sources import Source
from truthplane.git.repo import Repo, blob_id, files_after

REPRO_FILE = ".truthplane_repro.py"
OUTPUT_TAIL = 2000


def snapshot_tree(root: Path, dest: Path) -> dict[str, str]:
    """Copy the user's working tree (tracked and untracked, not ignored; dirty files as they are)."""
    from truthplane.git.repo import directory_files

    repo = Repo.discover(root)
    files = (
        {f.path: f.blob for f in repo.worktree_files()}
        if repo and repo.root.resolve() == root.resolve()
        else directory_files(root)
    )
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    return {rel: blob_id((dest / rel).read_bytes()) for rel in files}


async def _nothing() -> None:
    return None


def _source(directory: Path, files: dict[str, str], label: str) -> Source:
    return Source(dict(files), lambda: nullcontext(directory), label=label)


async def _run(executor, directory: Path, command: str, *, extra: dict[str, bytes] | None = None,  # noqa: ANN001
               timeout_s: float, origin: Path) -> tuple[int | None, str]:
    rc, tail, _ = await _run_where(executor, directory, command, extra=extra, timeout_s=timeout_s, origin=origin)
    return rc, tail


async def _run_where(executor, directory: Path, command: str, *,  # noqa: ANN001
                     extra: dict[str, bytes] | None = None, timeout_s: float,
                     origin: Path) -> tuple[int | None, str, str]:
    """The exit code, the output's tail, and where it ran (executor and node)."""
    job = repository_job(command, directory, origin, files=extra, timeout_s=timeout_s)
    result = await executor.run(job)
    tail = (result.stdout + result.stderr)[-OUTPUT_TAIL:]
    where = f"{result.executor} on {result.node}"
    if result.timed_out:
        return None, f"timed out after {timeout_s:g}s\n{tail}", where
    return result.returncode, tail, where


class Loop:
    def __init__(self, request: FixRequest, config: Config, options: ScanOptions,
                 say: Callable[[str], None] = lambda line: None, executor: Executor | None = None) -> None:
        """`executor`: where candidates' jobs run, if not the one `request.executor` names (a test's in-process
        executor)."""
        from truthplane.executors.loader import create_executor

        self.request = request
        self.config = config
        self.options = options
        self.say = say
        self.owns_executor = executor is None  # one handed in is closed by whoever made it
        self.executor = executor or create_executor(request.executor, config)
        self.interpreter = describe_interpreter(self.executor, request.root)

    # ---- before any candidate ------------------------------------------------------------

    async def baseline(self, workdir: Path) -> Baseline:
        snapshot = workdir / "snapshot"
        snapshot.mkdir()
        files = snapshot_tree(self.request.root, snapshot)
        if self.request.target not in files:
            raise UsageError(f"{self.request.target} is not a file of this repository (or it is ignored by git)")
        self.say("baseline: scanning the snapshot and running its tests")
        if self.request.test_cmd or self.request.repro_cmd or self.request.error:
            self.say(f"tests and reproductions run with {self.interpreter}")
        # the scan, the tests and a given reproduction do not depend on each other; candidates need only the
        # scan, so the tests and the reproduction run on beside the candidates' own runs
        before = asyncio.ensure_future(asyncio.gather(
            self._baseline_tests(snapshot),
            self._repro_before(snapshot, None) if self.request.repro_cmd else _nothing(),
        ))
        try:
            scan = await asyncio.to_thread(run_scan, _source(snapshot, files, "snapshot"), self.config, self.options)
            targets = [f for f in scan.findings if f.path == self.request.target]
            if target_kind(self.request) == "reproduction" and not self.request.finding:
                targets = []  # the reproduction is the target; the file's findings are listed as remaining
            if self.request.finding:
                targets = [
                    f
                    for f in targets
                    if f.fingerprint == self.request.finding or f.fingerprint.split(":")[0] == self.request.finding
                ]
                if not targets:
                    raise UsageError(
                        f"no finding {self.request.finding} in {self.request.target}: run `truthplane scan --format "
                        f"json` for fingerprints"
                    )
        except BaseException:
            before.cancel()
            await asyncio.gather(before, return_exceptions=True)
            raise
        base = Baseline(snapshot, files, scan, targets, None, "", None, None, [])
        if self.request.home is not None:  # a snippet: no history holds it
            base.preflight += preflight_files(
                {self.request.target: (snapshot / self.request.target).read_bytes()}
            ).findings

        async def settle() -> None:
            (base.tests_before, base.tests_output), repro_before = await before
            if base.tests_before is not None and base.tests_before != 0:
                base.notes.insert(0, f"the tests fail before any patch (exit {base.tests_before})")
            if self.request.repro_cmd:
                base.repro_before = repro_before
                self._check_repro_before(base)

        base.pending = asyncio.ensure_future(settle())
        return base

    async def settled(self, base: Baseline) -> None:
        """The baseline's tests and reproduction have finished (their results are in `base`)."""
        if base.pending is not None:
            await asyncio.shield(base.pending)

    async def _baseline_tests(self, snapshot: Path) -> tuple[int | None, str]:
        if not self.request.test_cmd:
            return None, ""
        return await _run(
            self.executor, snapshot, self.request.test_cmd, timeout_s=self.request.timeout_s, origin=self.request.root
        )

    async def _repro_before(self, snapshot: Path, script: str | None) -> int | None:
        command = self.request.repro_cmd or f"python {REPRO_FILE}"
        extra = {REPRO_FILE: script.encode()} if script else None
        rc, _ = await _run(
            self.executor, snapshot, command, extra=extra, timeout_s=self.request.timeout_s, origin=self.request.root
        )
        return rc

    def _check_repro_before(self, base: Baseline) -> None:
        """The reproduction must fail while the bug is present, or it proves nothing."""
        if base.repro_before == 0:
            base.notes.append("the reproduction passes without any patch: it does not reproduce the problem")

    async def reproduction(self, base: Baseline, script: str | None) -> None:
        """A generated reproduction script is run on the snapshot once it exists."""
        if self.request.repro_cmd or script is None:
            return
        base.repro_script = script
        base.preflight += preflight_files({REPRO_FILE: script.encode()}).findings
        base.repro_before = await self._repro_before(base.snapshot, script)
        self._check_repro_before(base)

    # ---- one candidate ---------------------------------------------------------------------

    async def evaluate(self, base: Baseline, candidate: Candidate, workdir: Path) -> CandidateResult:
        from truthplane.change.candidates import CandidateError, apply_candidate, check_patch, diff_size
        from truthplane.truth.verdict import compare
        from truthplane.change.hacks import hack_flags
        from truthplane.change.tamper import tamper_reasons

        started = time.monotonic()
        result = CandidateResult(id=candidate.id, source=candidate.source, verdict=Verdict.REJECT)
        problems = await asyncio.to_thread(check_patch, base.snapshot, candidate)
        if problems:
            result.reasons = problems
            return result
        tampering = tamper_reasons(candidate.diff, allow=self.request.allow, root=base.snapshot)
        result.diff_lines = diff_size(candidate.diff)
        directory = workdir / tree_name(candidate.id)
        await asyncio.to_thread(shutil.copytree, base.snapshot, directory, symlinks=True)
        try:
            touched = await asyncio.to_thread(apply_candidate, directory, candidate)
        except CandidateError as exc:
            result.reasons = [str(exc)]
            return result
        result.touched = touched
        result.preflight = list(base.preflight)
        if candidate.source != "autofix":  # an analyser's own fix is not generated code
            result.preflight += await asyncio.to_thread(preflight_change, base.snapshot, directory, touched)
        files = files_after(base.files, directory, touched)
        scan_task = asyncio.to_thread(run_scan, _source(directory, files, candidate.id), self.config, self.options)
        tests_task = self._tests(directory)
        repro_task = self._repro(base, directory)
        after, tests, repro = await asyncio.gather(scan_task, tests_task, repro_task)
        await self.settled(base)  # the verdict compares with how the tests and reproduction did before
        if repro is not None:
            repro.before_rc = base.repro_before
        if tests is not None:
            tests.before_rc = base.tests_before
            if base.tests_before != 0:
                tests.before_output_tail = base.tests_output
        diff, problems = compare(base.scan, after)
        result.new, result.fixed, result.tests, result.repro = diff.new, diff.fixed, tests, repro
        result.updated = diff.updated
        result.flags = await asyncio.to_thread(hack_flags, base.snapshot, directory, touched)
        result.verdict, result.reasons = judge(self.request, self.config.gate, base, result, problems, tampering)
        severe = [f for f in diff.updated if f.severity.at_least(self.config.gate.fail_on)]
        if severe and result.verdict is Verdict.APPROVE:  # as in the gate: an edited line never rejects by itself
            result.verdict = Verdict.REVIEW
            result.reasons.insert(0, f"{len(severe)} updated finding(s) at or above {self.config.gate.fail_on.value} "
                                     "on lines the patch edited need review")
        result.duration_s = round(time.monotonic() - started, 3)
        return result

    async def _tests(self, directory: Path) -> RunCheck | None:
        if not self.request.test_cmd:
            return None
        rc, tail, where = await _run_where(
            self.executor, directory, self.request.test_cmd, timeout_s=self.request.timeout_s, origin=self.request.root
        )
        return RunCheck(command=self.request.test_cmd, after_rc=[rc], passed=rc == 0, output_tail=tail,
                        interpreter=self.interpreter, ran_on=[where])

    async def _repro(self, base: Baseline, directory: Path) -> RunCheck | None:
        command = self.request.repro_cmd or (f"python {REPRO_FILE}" if base.repro_script else None)
        if command is None:
            return None
        extra = {REPRO_FILE: base.repro_script.encode()} if base.repro_script else None
        runs = await asyncio.gather(
            *(
                _run_where(
                    self.executor,
                    directory,
                    command,
                    extra=extra,
                    timeout_s=self.request.timeout_s,
                    origin=self.request.root,
                )
                for _ in range(max(1, self.request.repro_runs))
            )
        )  # each repetition in its own sandbox: nothing carries over from one to the next
        codes = [rc for rc, _, _ in runs]
        tail = runs[-1][1]
        passed = all(rc == 0 for rc in codes)
        flaky = not passed and any(rc == 0 for rc in codes)
        return RunCheck(command=command, before_rc=base.repro_before, after_rc=codes, passed=passed,
                        flaky=flaky, output_tail=tail, interpreter=self.interpreter,
                        ran_on=[where for _, _, where in runs])


async def gather_candidates(loop: Loop, base: Baseline, patches: list[Candidate]) -> tuple[list[Candidate], list[str]]:
    """Patch files, the analysers' autofixes and LLM proposals, duplicates merged."""
    from truthplane.change.autofix import autofix_candidates
    from truthplane.change.candidates import dedupe

    request = loop.request
    notes: list[str] = []
    found: list[Candidate] = list(patches)
    if request.autofix:
        rules = sorted({f.rule_id for f in base.targets if f.verifier == "ruff"}) or None
        eslint = loop.config.options_for("eslint")
        found += await asyncio.to_thread(
            autofix_candidates, base.snapshot, [request.target], rules=rules,
            ruff_args=loop.config.options_for("ruff").args, problems=notes,
            # the snapshot has no node_modules: eslint is found in the repository's; an untrusted config runs sandboxed
            eslint_args=eslint.args, node_root=loop.config.root or request.root,
            eslint_executor=request.executor if eslint.sandbox else None,
        )
    from truthplane.change.llm_candidates import LLMAsk, llm_candidates

    ask = LLMAsk(
        snapshot=base.snapshot, target=request.target, finding=base.targets[0] if base.targets else None,
        error=request.error, repro_cmd=request.repro_cmd, candidates=request.candidates,
        providers=tuple(request.providers), history_root=request.home or request.root, run_id=request.run_id,
    )
    llm_found, llm_notes, script = await llm_candidates(loop.config.llm, ask)
    found += llm_found
    notes += llm_notes
    await loop.reproduction(base, script)
    return dedupe(found), notes


@dataclass
class FixRun:
    """A judged fix: the result, the candidates, and their trees (until cleanup)."""

    result: FixResult
    candidates: dict[str, Candidate]
    trees: dict[str, Path]
    base: Baseline | None
    workdir: Path
    started_at: str
    providers_used: list[str] = field(default_factory=list)

    def cleanup(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


def tree_name(candidate_id: str) -> str:
    import hashlib

    return "candidate-" + hashlib.sha256(candidate_id.encode()).hexdigest()[:12]


async def run_fix(request: FixRequest, config: Config, options: ScanOptions,
                  say: Callable[[str], None] = lambda line: None, executor: Executor | None = None) -> FixRun:
    """Judge every candidate. The caller applies the winner (or not) and then calls cleanup(). `executor`: where
    the jobs run, if not the one `request.executor` names."""
    from datetime import UTC, datetime

    started_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    from truthplane.change.candidates import patch_file_candidates

    patches = patch_file_candidates(request.patches) if request.patches else []  # bad paths fail first
    loop = Loop(request, config, options, say, executor)
    workdir = Path(tempfile.mkdtemp(prefix=owned_prefix("fix")))
    base: Baseline | None = None
    try:
        if request.error and not request.patches:
            from truthplane.change.llm_candidates import usable_providers

            if not usable_providers(config.llm, request.providers):
                raise ProviderError(NEEDS_PROVIDER)
        base = await loop.baseline(workdir)
        target = describe_target(request, base.targets)
        candidates, notes = await gather_candidates(loop, base, patches)
        by_id = {c.id: c for c in candidates}
        if not candidates:
            await loop.settled(base)
            reasons = base.notes + notes + ["no candidate to judge: give one with --candidate, or use an LLM provider"]
            return FixRun(FixResult(verdict=Verdict.UNVERIFIED, target=target, reasons=reasons), by_id, {}, base,
                          workdir, started_at)
        say(f"evaluating {len(candidates)} candidate(s) in parallel on the {request.executor} executor")
        gate = asyncio.Semaphore(request.jobs or len(candidates))

        async def judged(candidate: Candidate) -> CandidateResult:
            async with gate:
                return await loop.evaluate(base, candidate, workdir)

        results = list(await asyncio.gather(*(judged(c) for c in candidates)))
        await loop.settled(base)  # also when every candidate was turned away before running anything
        winner = choose_winner(results)
        verdict = Verdict.APPROVE if winner else (
            Verdict.REVIEW if any(r.verdict is Verdict.REVIEW for r in results) else Verdict.REJECT)
        result = FixResult(verdict=verdict, target=target, winner=winner.id if winner else None,
                           candidates=results, reasons=base.notes + notes)
        trees = {r.id: workdir / tree_name(r.id) for r in results if r.touched}
        return FixRun(result, by_id, trees, base, workdir, started_at,
                      sorted({c.provider for c in candidates if c.provider}))
    except BaseException:
        if base is not None and base.pending is not None and not base.pending.done():
            base.pending.cancel()
            await asyncio.gather(base.pending, return_exceptions=True)
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    finally:
        if loop.owns_executor:
            await loop.executor.close()
