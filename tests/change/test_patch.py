"""A patch that git applies, truthplane applies: generated multi-file diffs, compared against real `git apply`."""

from __future__ import annotations

import difflib
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truthplane.change.candidates import apply_candidate, check_patch
from truthplane.change.fixes import Candidate

GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}

pytestmark = pytest.mark.tool("git")


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=cwd, input=stdin, capture_output=True, env=GIT_ENV, check=False)


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def candidate(diff: str) -> Candidate:
    return Candidate(id="generated", source="patch", diff=diff)


def agree_with_git(before: dict[str, bytes], diff: str) -> None:
    """If `git apply --check` takes the diff on `before`, truthplane takes it too and makes the same files."""
    with tempfile.TemporaryDirectory(prefix="truthplane-apply-") as tmp:
        by_git, ours = Path(tmp) / "git", Path(tmp) / "ours"
        for home in (by_git, ours):
            for rel, content in before.items():
                (home / rel).parent.mkdir(parents=True, exist_ok=True)
                (home / rel).write_bytes(content)
        if git(by_git, "apply", "--check", "-", stdin=diff.encode()).returncode != 0:
            return
        assert git(by_git, "apply", "-", stdin=diff.encode()).returncode == 0
        assert check_patch(ours, candidate(diff)) == [], diff
        apply_candidate(ours, candidate(diff))
        assert files_of(ours) == files_of(by_git), diff


# blank lines are drawn often: hunks that begin and end on blank context are the case to get right
LINES = st.sampled_from(["", "", "", "x = 1", "y = 2", "z = 3", "    pass", "def f():", " "])


@st.composite
def text_file(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(LINES, min_size=1, max_size=14))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    body = ending.join(lines)
    return (body + ending if draw(st.booleans()) else body).encode()


@st.composite
def edited(draw: st.DrawFn, content: bytes) -> bytes:
    ending = b"\r\n" if b"\r\n" in content else b"\n"
    lines = content.split(ending)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(lines)))
        kind = draw(st.sampled_from(["insert", "replace", "delete"]))
        new = draw(LINES).encode()
        if kind == "insert" or not lines or at == len(lines):
            lines.insert(at, new)
        elif kind == "replace":
            lines[at] = new
        else:
            del lines[at]
    return ending.join(lines)


@st.composite
def change(draw: st.DrawFn) -> tuple[dict[str, bytes], dict[str, bytes], dict[str, str]]:
    """(files before, files after, renames old -> new) of one to three files."""
    names = draw(st.lists(st.sampled_from(["a.py", "b.py", "pkg/c.py", "d.txt"]), min_size=1, max_size=3, unique=True))
    before = {name: draw(text_file()) for name in names}
    after = {name: draw(edited(content)) for name, content in before.items()}
    renames = {}
    if draw(st.booleans()):
        old = names[0]
        renames[old] = "moved/" + old.rsplit("/", 1)[-1]
        after[renames[old]] = after.pop(old)
    return before, after, renames


def git_diff(before: dict[str, bytes], after: dict[str, bytes]) -> str:
    """The diff as `git diff` writes it (rename detection on), made with --no-index: no repository needed."""
    with tempfile.TemporaryDirectory(prefix="truthplane-diff-") as tmp:
        for side, files in (("old", before), ("new", after)):
            for rel, content in files.items():
                (Path(tmp) / side / rel).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / side / rel).write_bytes(content)
        out = git(Path(tmp), "diff", "--no-index", "-M", "--no-color", "old", "new").stdout.decode()
    return out.replace(" a/old/", " a/").replace(" b/new/", " b/").replace("rename from old/", "rename from ").replace(
        "rename to new/", "rename to ")


def difflib_diff(before: dict[str, bytes], after: dict[str, bytes]) -> str:
    """The diff as Python's difflib writes it (what scripts and many models produce): no `diff --git` lines."""
    parts = []
    for rel in sorted(before):
        old = before[rel].decode().splitlines(keepends=True)
        new = after.get(rel, b"").decode().splitlines(keepends=True)
        for line in difflib.unified_diff(old, new, f"a/{rel}", f"b/{rel}"):
            parts.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(parts)


@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(change())
def test_a_diff_git_applies_applies_the_same(generated) -> None:  # noqa: ANN001
    before, after, renames = generated
    agree_with_git(before, git_diff(before, after))
    if not renames:
        agree_with_git(before, difflib_diff(before, after))


TWO_FILES = """--- a/a.py
+++ b/a.py
@@ -1,5 +1,5 @@
 x = 1
 
-y = 2
+y = 3
 
 z = 3
--- a/b.py
+++ b/b.py
@@ -2,4 +2,4 @@
 
 p = 1
-q = 2
+q = 3
 
"""


def test_a_last_hunk_ending_on_a_blank_context_line_applies() -> None:
    """As difflib and git write it: the final " " line is context, not trailing whitespace to strip."""
    before = {"a.py": b"x = 1\n\ny = 2\n\nz = 3\n", "b.py": b"o = 0\n\np = 1\nq = 2\n\nr = 4\n"}
    with tempfile.TemporaryDirectory(prefix="truthplane-apply-") as tmp:
        root = Path(tmp)
        for rel, content in before.items():
            (root / rel).write_bytes(content)
        assert git(root, "apply", "--check", "-", stdin=TWO_FILES.encode()).returncode == 0
        assert check_patch(root, candidate(TWO_FILES)) == []
        apply_candidate(root, candidate(TWO_FILES))
        assert (root / "b.py").read_bytes() == b"o = 0\n\np = 1\nq = 3\n\nr = 4\n"
