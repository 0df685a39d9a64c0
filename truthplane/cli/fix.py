"""`truthplane fix`: judge candidate fixes in sandboxes; apply or commit the winner only on evidence."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def fix(
    file: Path = typer.Argument(..., help="The file to fix (in a repository, or a standalone snippet).", dir_okay=False),
    finding: str = typer.Option(None, "--finding", help="Fix only the finding with this fingerprint (the target)."),
    error: str = typer.Option(None, "--error", help="Fix this error (a traceback): its reproduction (--repro-cmd, or "
                              "one an LLM writes) is the target; with no LLM provider, give --candidate patches. "
                              "'-' reads stdin."),
    error_file: Path = typer.Option(None, "--error-file", help="Read the error text from a file.", dir_okay=False),
    candidates: int = typer.Option(3, "--candidates", min=1, max=10, help="How many LLM candidates to ask for."),
    provider: list[str] = typer.Option(None, "--provider", help="LLM provider to ask (repeatable; default: [llm] with keys set)."),
    candidate: list[Path] = typer.Option(None, "--candidate", help="A patch file to judge as a candidate (repeatable).", dir_okay=False),
    autofix: bool = typer.Option(True, "--autofix/--no-autofix", help="Judge the analysers' own autofixes too."),
    test_cmd: str = typer.Option(None, "--test-cmd", help="Tests to run before and after each candidate."),
    repro_cmd: str = typer.Option(None, "--repro-cmd", help="A command that fails while the bug is present: the "
                                  "target (it must pass after the fix, every run); the file's findings are not."),
    repro_runs: int = typer.Option(3, "--repro-runs", min=1, max=20, help="Runs of the reproduction per candidate."),
    executor: str = typer.Option(None, "--executor", help="Where candidates run: local, docker, lambda, ssh."),
    jobs: int = typer.Option(None, "--jobs", "-j", min=1, help="Candidates judged at once (default: all)."),
    apply: bool = typer.Option(False, "--apply", help="Write the winner into the working tree."),
    commit: bool = typer.Option(False, "--commit", help="Apply the winner and commit just its files with evidence."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report only (the default)."),
    allow: list[str] = typer.Option(None, "--allow", help="Allow what the tamper check rejects: suppressions, tests, config."),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> int:
    """Find the fix the evidence approves: candidates from patches, autofixes and LLMs, judged in parallel.

    The target is what you ask for: with --repro-cmd or --error, the reproduction (fail before, pass after,
    every run); with --finding, that finding; otherwise the file's findings. No candidate may add a
    finding or break a test, and one that looks like a reward hack is held for review.
    """
    import asyncio

    from truthplane.git.checkout import apply_files, commit_files, keep_file_form, recover_pending, refuse_busy
    from truthplane.cli.fix_report import print_report
    from truthplane.config import load_config
    from truthplane.errors import UsageError
    from truthplane.change.record import fix_record, write_execution
    from truthplane.evidence.ledger import new_run_id
    from truthplane.change.fixes import FixRequest
    from truthplane.change.loop import run_fix
    from truthplane.truth.pipeline import ScanOptions
    from truthplane.git.repo import Repo

    if sum([apply, commit, dry_run]) > 1:
        raise UsageError("choose one of --apply, --commit, --dry-run")
    if fmt not in ("text", "json"):
        raise UsageError("--format must be text or json")
    bad = sorted(set(allow or []) - {"suppressions", "tests", "config"})
    if bad:
        raise UsageError(f"--allow takes suppressions, tests or config, not {bad[0]!r}")
    if not file.is_file():
        raise UsageError(f"{file} does not exist" if not file.exists() else f"{file} is not a file")
    error_text = _error_text(error, error_file)
    repo = Repo.discover(file.resolve().parent)
    snippet_home = None
    if repo is None:  # a standalone snippet: judged in a temporary repository, written back only itself
        if commit:
            raise UsageError(f"{file} is not in a git repository: --commit needs one (use --apply)")
        snippet_home = file.resolve().parent
        repo = _temporary_repo(file)
    root = repo.root.resolve()
    note = recover_pending(root)
    if note:
        sys.stderr.write(f"truthplane: {note}\n")
    if commit and repo.head() is None:
        raise UsageError("--commit needs a repository with at least one commit")
    if commit:
        refuse_busy(repo)  # before any candidate runs; commit_files asks again when it commits
    config = load_config(snippet_home or root)
    target = file.name if snippet_home else file.resolve().relative_to(root).as_posix()
    request = FixRequest(
        root=root, target=target, finding=finding, error=error_text, candidates=candidates,
        providers=list(provider or []), patches=list(candidate or []), autofix=autofix, test_cmd=test_cmd,
        repro_cmd=repro_cmd, repro_runs=repro_runs, executor=executor or config.executors.default,
        allow=frozenset(allow or []), jobs=jobs, run_id=new_run_id(), home=snippet_home,
    )

    def say(line: str) -> None:
        sys.stderr.write(f"truthplane: {line}\n")

    run = None
    try:
        run = asyncio.run(run_fix(request, config, ScanOptions(executor=request.executor), say))
        applied, sha = False, None
        winner = next((r for r in run.result.candidates if r.id == run.result.winner), None)
        if winner is not None and (apply or commit) and run.base is not None:
            tree = run.trees[winner.id]
            keep_file_form(run.base.snapshot, tree, winner.touched)
            if commit:
                message = _commit_message(run, winner)
                sha = commit_files(repo, run.base.files, tree, winner.touched, message)
            elif snippet_home is not None:
                if winner.touched != [target]:
                    raise UsageError(f"the winner also touches {winner.touched}: only {target} can be written back")
                apply_files(snippet_home, run.base.files, tree, winner.touched)
            else:
                apply_files(root, run.base.files, tree, winner.touched)
            applied = True
        run.result.applied, run.result.commit = applied, sha
        record = {"run_id": request.run_id, **fix_record(run, applied=applied, commit=sha)}
        home = snippet_home or root
        run.result.evidence = str(write_execution(home, record).relative_to(home))
        if fmt == "json":
            sys.stdout.write(run.result.model_dump_json(indent=2) + "\n")
        else:
            print_report(run, sys.stdout)
    finally:
        if run is not None:
            run.cleanup()
        if snippet_home is not None:  # the temporary repository goes whatever happened
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    return run.result.verdict.exit_code


def _temporary_repo(file: Path):  # noqa: ANN202
    import shutil
    import subprocess
    import tempfile

    from truthplane.leftovers import owned_prefix
    from truthplane.git.repo import Repo

    home = Path(tempfile.mkdtemp(prefix=owned_prefix("snippet")))
    shutil.copy2(file, home / file.name)
    env = {"GIT_AUTHOR_NAME": "truthplane", "GIT_AUTHOR_EMAIL": "truthplane@localhost",
           "GIT_COMMITTER_NAME": "truthplane", "GIT_COMMITTER_EMAIL": "truthplane@localhost"}
    import os

    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "snippet"]):
        subprocess.run(["git", *args], cwd=home, check=True, capture_output=True, env={**os.environ, **env})
    return Repo(home)


def _error_text(error: str | None, error_file: Path | None) -> str | None:
    from truthplane.errors import UsageError
    from truthplane.files import MAX_INPUT_BYTES, read_regular_file

    if error and error_file:
        raise UsageError("give --error or --error-file, not both")
    if error == "-":
        return sys.stdin.read()
    if error_file is not None:  # a FIFO or /dev/zero is refused before a byte is read
        return read_regular_file(error_file, MAX_INPUT_BYTES, UsageError).decode("utf-8", errors="replace")
    return error


def _commit_message(run, winner) -> str:  # noqa: ANN001
    candidate = run.candidates[winner.id]
    title = candidate.title or f"fix {run.base.targets[0].rule_id if run.base and run.base.targets else 'findings'}"
    lines = [f"truthplane: {title}", "", candidate.rationale or "", "",
             f"Truthplane-Verdict: {winner.verdict.value}",
             f"Truthplane-Candidate: {winner.id} ({winner.source})",
             f"Truthplane-Fixed: {len(winner.fixed)}",
             f"Truthplane-New: {len(winner.new)}"]
    if winner.tests is not None:
        lines.append(f"Truthplane-Tests: {winner.tests.command} -> exit {winner.tests.after_rc}")
    if winner.repro is not None:
        lines.append(f"Truthplane-Reproduction: {winner.repro.command} -> exit {winner.repro.after_rc}")
    return "\n".join(line for line in lines if line is not None).replace("\n\n\n", "\n\n") + "\n"


def register(app: typer.Typer) -> None:
    app.command()(fix)
