"""After the verdict: the winner written into the working tree (`fix --apply`) or committed with its evidence
(`fix --commit`), a snippet's fix written back to it alone, and the fix's execution record written.

Every write into the user's checkout goes through truthplane.git.checkout, which refuses links, git's own
directory and anything outside the repository before the first byte is written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from truthplane.change.fixes import CandidateResult
from truthplane.change.loop import FixRun
from truthplane.change.record import fix_record, write_execution
from truthplane.errors import UsageError
from truthplane.git.checkout import apply_files, commit_files, keep_file_form
from truthplane.git.repo import Repo
from truthplane.leftovers import owned_prefix


def record_fix(run: FixRun, repo: Repo, target: str, run_id: str | None, *, apply: bool, commit: bool,
               snippet_home: Path | None) -> None:
    """Apply or commit the winner when asked and there is one, then write the fix's execution record (into
    the repository's results, or the snippet's directory); `run.result` says what was done and where."""
    root = repo.root.resolve()
    applied, sha = False, None
    winner = next((r for r in run.result.candidates if r.id == run.result.winner), None)
    if winner is not None and (apply or commit) and run.base is not None:
        tree = run.trees[winner.id]
        keep_file_form(run.base.snapshot, tree, winner.touched)
        if commit:
            message = commit_message(run, winner)
            sha = commit_files(repo, run.base.files, tree, winner.touched, message)
        elif snippet_home is not None:
            if winner.touched != [target]:
                raise UsageError(f"the winner also touches {winner.touched}: only {target} can be written back")
            apply_files(snippet_home, run.base.files, tree, winner.touched)
        else:
            apply_files(root, run.base.files, tree, winner.touched)
        applied = True
    run.result.applied, run.result.commit = applied, sha
    record = {"run_id": run_id, **fix_record(run, applied=applied, commit=sha)}
    home = snippet_home or root
    run.result.evidence = str(write_execution(home, record).relative_to(home))


def temporary_repo(file: Path) -> Repo:
    """A standalone snippet judged in a repository of its own (a temporary one, removed by the caller)."""
    home = Path(tempfile.mkdtemp(prefix=owned_prefix("snippet")))
    shutil.copy2(file, home / file.name)
    env = {"GIT_AUTHOR_NAME": "truthplane", "GIT_AUTHOR_EMAIL": "truthplane@localhost",
           "GIT_COMMITTER_NAME": "truthplane", "GIT_COMMITTER_EMAIL": "truthplane@localhost"}
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "snippet"]):
        subprocess.run(["git", *args], cwd=home, check=True, capture_output=True, env={**os.environ, **env})
    return Repo(home)


def commit_message(run: FixRun, winner: CandidateResult) -> str:
    """The commit of a fix: its title and rationale, and trailers saying what the evidence showed."""
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
