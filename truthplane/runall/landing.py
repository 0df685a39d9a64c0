"""Landing a run's approved changes in the user's repository: each approved task's commit on the checked-out
branch, and a branch of its own for every task that changed something. Everything a run committed so far is
kept here too, for the trees later tasks start from."""

from __future__ import annotations


from truthplane.errors import GitError
from truthplane.git.checkout import Write
from truthplane.git.repo import Repo
from truthplane.runall import resume
from truthplane.runall.task_run import Outcome, Tree
from truthplane.runall.tasks import Task


class Landing:
    """What this run committed so far (the files as they are now, the writes that made them, one version per
    commit), and committing or branching one more task. Its methods run in a thread under the run's git lock."""

    def __init__(self, repo: Repo, run_id: str, head: str, files: dict[str, str]) -> None:
        self.repo, self.run_id = repo, run_id
        self.changes: dict[str, Write] = {}
        self.files = dict(files)
        self.version = 0
        self.version_commits: dict[int, str] = {0: head}  # generation -> the commit it is (0: HEAD at the start)
        self.commits = 0
        self.modified: set[str] = set()

    def commit(self, task: Task, tree: Tree, outcome: Outcome) -> str | None:
        """The commit of an approved task, or why there is none: "retry" (an earlier task of this run changed
        the same files), "refused: ..." (a write through a link, into .git or outside), "error: ..."."""
        from truthplane.git.checkout import ChangedSinceSnapshot, commit_files, keep_file_form, planned_writes
        from truthplane.git.repo import files_after
        from truthplane.git.tree_writer import UnsafeWrite

        existing = resume.committed(self.repo).get((task.id, task.digest()))
        if existing:
            return existing  # committed already (an earlier run): never twice
        if any(self.files.get(rel) != tree.files.get(rel) for rel in outcome.touched):
            return "retry"
        assert outcome.after is not None
        if task.kind == "fix":  # a fix's tools may rewrite a whole file: only its approved lines change
            keep_file_form(tree.directory, outcome.after, outcome.touched)
        message = resume.commit_message(task, outcome, self.run_id)
        try:
            sha = commit_files(self.repo, tree.files, outcome.after, outcome.touched, message)
        except UnsafeWrite as exc:
            return f"refused: {exc}"
        except (ChangedSinceSnapshot, GitError) as exc:
            return f"error: {exc}"
        for write in planned_writes(outcome.after, outcome.touched):
            self.changes[write.path] = write
        self.files = files_after(self.files, outcome.after, outcome.touched)
        self.version += 1
        self.version_commits[self.version] = sha
        self.commits += 1
        self.modified |= set(outcome.touched)
        return sha

    def branch(self, task: Task, tree: Tree, outcome: Outcome, commit: str | None) -> tuple[str | None, str | None]:
        """Every task that changed something gets its own branch, truthplane/<run>/<task>: the approved
        commit, or the change on the commit its tree started from, for a person to look at or merge."""
        from truthplane.git.checkout import create_branch
        from truthplane.git.tree_writer import UnsafeWrite

        name = f"truthplane/{self.run_id}/{ref_safe(task.id)}"
        try:
            if commit:
                sha = create_branch(self.repo, name, commit=commit)
            else:
                assert outcome.after is not None
                sha = create_branch(self.repo, name, parent=self.version_commits[tree.generation], tree=outcome.after,
                                    touched=outcome.touched, message=resume.commit_message(task, outcome, self.run_id))
        except (GitError, UnsafeWrite) as exc:
            outcome.reasons.append(f"no branch for this task: {exc}")
            return None, None
        return name, sha


def ref_safe(task_id: str) -> str:
    """A task id (letters, digits, '.', '_', '-') as a ref name component: no '..', no '.lock' or '.' end."""
    safe = task_id.replace("..", "_")
    if safe.endswith(".lock"):
        safe = safe[: -len(".lock")] + "_lock"
    return safe.rstrip(".") or "task"
