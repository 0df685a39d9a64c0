"""`truthplane fix`: judge candidate fixes in sandboxes; apply or commit the winner only on evidence."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def fix(
    file: Path = typer.Argument(
        ..., help="The file to fix (in a repository, or a standalone snippet).", dir_okay=False
    ),
    finding: str = typer.Option(None, "--finding", help="Fix only the finding with this fingerprint (the target)."),
    error: str = typer.Option(
        None,
        "--error",
        help="Fix this error (a traceback): its reproduction (--repro-cmd, or "
        "one an LLM writes) is the target; with no LLM provider, give --candidate patches. "
        "'-' reads stdin.",
    ),
    error_file: Path = typer.Option(None, "--error-file", help="Read the error text from a file.", dir_okay=False),
    candidates: int = typer.Option(3, "--candidates", min=1, max=10, help="How many LLM candidates to ask for."),
    provider: list[str] = typer.Option(
        None, "--provider", help="LLM provider to ask (repeatable; default: [llm] with keys set)."
    ),
    candidate: list[Path] = typer.Option(
        None, "--candidate", help="A patch file to judge as a candidate (repeatable).", dir_okay=False
    ),
    autofix: bool = typer.Option(True, "--autofix/--no-autofix", help="Judge the analysers' own autofixes too."),
    test_cmd: str = typer.Option(None, "--test-cmd", help="Tests to run before and after each candidate."),
    repro_cmd: str = typer.Option(
        None,
        "--repro-cmd",
        help="A command that fails while the bug is present: the "
        "target (it must pass after the fix, every run); the file's findings are not.",
    ),
    repro_runs: int = typer.Option(3, "--repro-runs", min=1, max=20, help="Runs of the reproduction per candidate."),
    executor: str = typer.Option(None, "--executor", help="Where candidates run: local, docker, lambda, ssh."),
    jobs: int = typer.Option(None, "--jobs", "-j", min=1, help="Candidates judged at once (default: all)."),
    apply: bool = typer.Option(False, "--apply", help="Write the winner into the working tree."),
    commit: bool = typer.Option(False, "--commit", help="Apply the winner and commit just its files with evidence."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report only (the default)."),
    allow: list[str] = typer.Option(
        None, "--allow", help="Allow what the tamper check rejects: suppressions, tests, config."
    ),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> int:
    """Find the fix the evidence approves: candidates from patches, autofixes and LLMs, judged in parallel.

    The target is what you ask for: with --repro-cmd or --error, the reproduction (fail before, pass after,
    every run); with --finding, that finding; otherwise the file's findings. No candidate may add a
    finding or break a test, and one that looks like a reward hack is held for review.
    """
    import asyncio

    from truthplane.change.apply import record_fix, temporary_repo
    from truthplane.change.fixes import FixRequest
    from truthplane.change.loop import run_fix
    from truthplane.cli.fix_report import print_report
    from truthplane.config import load_config
    from truthplane.errors import UsageError
    from truthplane.evidence.ledger import new_run_id
    from truthplane.git.checkout import recover_pending, refuse_busy
    from truthplane.git.repo import Repo
    from truthplane.truth.pipeline import ScanOptions

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
        repo = temporary_repo(file)
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
        record_fix(run, repo, target, request.run_id, apply=apply, commit=commit, snippet_home=snippet_home)
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


def register(app: typer.Typer) -> None:
    app.command()(fix)
