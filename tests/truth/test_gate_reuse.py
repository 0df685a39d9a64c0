"""A gate's head takes the base's findings for files it has unchanged, and only for those."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.config import load_config
from truthplane.truth.pipeline import ScanOptions, gate

pytestmark = [pytest.mark.tool("ruff")]

UNUSED = "import os\nimport sys\n\n\ndef main():\n    return sys.argv\n"


def run_gate(root: Path, cache: Path):  # noqa: ANN201
    options = ScanOptions(only=["ruff"], cache_dir=cache)
    return gate(root, load_config(root), options, base_ref="main")


def test_unchanged_files_reuse_the_base_and_only_the_change_is_scanned(make_repo, tmp_path: Path) -> None:
    files = {f"pkg/m{i}.py": UNUSED for i in range(5)}
    root = make_repo(files)
    git(root, "checkout", "-qb", "feature")
    (root / "pkg" / "m0.py").write_text("import json\n" + UNUSED)
    git(root, "commit", "-qam", "one more unused import")
    result = run_gate(root, tmp_path / "cache")
    (ruff,) = result.verifiers
    assert ruff.scanned_files == 1 and ruff.cached_files == 4
    assert [(f.rule_id, f.path, f.start_line) for f in result.new] == [("F401", "pkg/m0.py", 1)]
    assert sorted((f.path, f.start_line) for f in result.unchanged) == sorted(
        [("pkg/m0.py", 2)] + [(f"pkg/m{i}.py", 1) for i in range(1, 5)])
    assert result.fixed == []


def test_a_changed_tool_configuration_rescans_every_file(make_repo, tmp_path: Path) -> None:
    root = make_repo({"a.py": UNUSED, "b.py": UNUSED, "pyproject.toml": "[project]\nname = 'x'\n"})
    git(root, "checkout", "-qb", "feature")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n\n[tool.ruff.lint]\nignore = ['F401']\n")
    git(root, "commit", "-qam", "stop checking unused imports")
    result = run_gate(root, tmp_path / "cache")
    (ruff,) = result.verifiers
    # a.py and b.py are byte-identical to the base, but the base's findings no longer hold for them
    assert ruff.scanned_files == 2 and result.unchanged == []
    # the code still has them: silenced by the configuration, not fixed
    assert result.fixed == []
    assert sorted((f.rule_id, f.path) for f in result.silenced_by_config) == [("F401", "a.py"), ("F401", "b.py")]


def test_the_working_tree_over_the_merge_base_lists_what_a_full_listing_does(make_repo) -> None:
    """The gate lists the working tree as the merge-base's files plus what changed since: the same files
    and contents as listing the whole working tree, whatever kind of change is in it."""
    import os

    from truthplane.truth.sources import Excluder, commit_source, worktree_over, worktree_source
    from truthplane.git.repo import Repo

    root = make_repo({"keep.py": "a = 1\n", "edit.py": "b = 1\n", "gone.py": "c = 1\n", "old name.py": "d = 1\n" * 20,
                      "tool.sh": "echo\n", "staged.py": "e = 1\n", "vendor/lib.py": "f = 1\n", "link.py": "g = 1\n",
                      ".gitignore": "ignored.py\n", "truthplane.toml": 'exclude = ["vendor"]\n'})
    merge_base = git(root, "rev-parse", "HEAD").strip()
    git(root, "checkout", "-qb", "feature")
    (root / "branch.py").write_text("committed on the branch\n")
    (root / "edit.py").write_text("b = 2\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "on the branch")
    (root / "edit.py").write_text("b = 3\n")  # changed again, not committed
    (root / "gone.py").unlink()
    git(root, "mv", "old name.py", "new name.py")
    os.chmod(root / "tool.sh", 0o755)
    (root / "staged.py").write_text("e = 2\n")
    git(root, "add", "staged.py")
    (root / "staged.py").write_text("e = 3\n")  # staged, then changed again
    (root / "untracked dir").mkdir()
    (root / "untracked dir" / "new.py").write_text("h = 1\n")
    (root / "ignored.py").write_text("secret = 1\n")
    (root / "vendor" / "lib.py").write_text("f = 2\n")
    (root / "vendor" / "more.py").write_text("f = 3\n")
    (root / "link.py").unlink()
    (root / "link.py").symlink_to("keep.py")
    (root / ".truth-plane-results").mkdir()
    (root / ".truth-plane-results" / "baseline.json").write_text("{}")
    config = load_config(root)
    repo = Repo.require(root)
    full = worktree_source(root, config)
    changes, dirty = repo.changes_since(merge_base, Excluder(config.all_excludes()))
    over = worktree_over(commit_source(repo, merge_base, config), root, changes, commit=repo.head(), dirty=dirty)
    assert over.files == full.files and over.dirty == full.dirty is True
    assert "new name.py" in over.files and "link.py" not in over.files and "vendor/more.py" not in over.files
    git(root, "add", "-A")
    git(root, "commit", "-qm", "everything")
    changes, dirty = repo.changes_since(merge_base, Excluder(config.all_excludes()))
    assert not dirty and worktree_source(root, config).dirty is False  # only excluded or ignored files are left


def test_a_file_in_conflict_is_listed_as_it_stands(make_repo) -> None:
    from truthplane.truth.sources import Excluder, commit_source, worktree_over, worktree_source
    from truthplane.git.repo import Repo, blob_id

    root = make_repo({"a.py": "x = 0\n"})
    git(root, "checkout", "-qb", "other")
    (root / "a.py").write_text("x = 1\n")
    git(root, "commit", "-qam", "one")
    git(root, "checkout", "-q", "main")
    (root / "a.py").write_text("x = 2\n")
    git(root, "commit", "-qam", "two")
    merge_base = git(root, "merge-base", "main", "other").strip()
    subprocess.run(["git", "merge", "other"], cwd=root, capture_output=True)  # conflicts: exit 1
    config = load_config(root)
    repo = Repo.require(root)
    changes, dirty = repo.changes_since(merge_base, Excluder(config.all_excludes()))
    over = worktree_over(commit_source(repo, merge_base, config), root, changes, commit=repo.head(), dirty=dirty)
    assert over.files == worktree_source(root, config).files == {"a.py": blob_id((root / "a.py").read_bytes())}
    assert dirty and "<<<<<<<" in (root / "a.py").read_text()


def test_git_calls_started_ahead_answer_the_gate_once_and_nothing_outlives_them(make_repo, tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`truthplane gate` starts the gate's git calls before it has imported what it needs: the gate takes
    those answers instead of asking again, judges exactly as without them, and a call made after the
    block asks git afresh."""
    from truthplane.git import run as _git

    root = make_repo({"a.py": UNUSED, "b.py": UNUSED, "moved.py": UNUSED * 3})
    git(root, "checkout", "-qb", "feature")
    git(root, "mv", "moved.py", "pkg_moved.py")
    git(root, "commit", "-qm", "move")
    (root / "a.py").write_text("import json\n" + UNUSED)  # uncommitted
    expected = run_gate(root, tmp_path / "cache-plain")

    asked: list[tuple[str, ...]] = []
    real = _git.run

    def counting(cwd: Path, *args: str, **kwargs: object) -> str:
        asked.append(args)
        return real(cwd, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_git, "run", counting)
    with _git.gate_calls_ahead(root, "main", None):
        # as in the CLI, where the gate is still importing: every call has been started before it asks
        deadline = time.monotonic() + 60
        while sum(args[0] in ("ls-tree", "diff-index") for _, args in list(_git._ahead)) < 2:
            assert time.monotonic() < deadline, "the calls were never started"
            time.sleep(0.01)
        result = run_gate(root, tmp_path / "cache-ahead")
    assert _git._ahead == {}
    assert [(f.path, f.fingerprint) for f in result.new] == [(f.path, f.fingerprint) for f in expected.new]
    assert [(f.path, f.fingerprint) for f in result.unchanged] == [(f.path, f.fingerprint) for f in expected.unchanged]
    assert result.fixed == expected.fixed == []
    listings = [args for args in asked if args[0] in ("ls-tree", "diff", "diff-index", "merge-base")]
    assert len(listings) == len(set(listings)), listings  # each asked of git once: the gate took the answers
    assert any(args[0] == "ls-tree" for args in listings) and any(args[:2] == ("diff", "-M") for args in listings)

    (root / "b.py").write_text("import json\n" + UNUSED)
    after = run_gate(root, tmp_path / "cache-ahead")
    assert sorted(f.path for f in after.new) == ["a.py", "b.py"]  # not an answer left over from the block


def test_the_gates_own_listings_wait_for_the_calls_started_ahead(make_repo, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A gate that asks for a listing before the calls ahead have started it waits for them: git's stat pass and
    walk of the working tree, run twice at once, would cost a large repository both its cores."""
    from truthplane.git import run as _git

    root = make_repo({"a.py": UNUSED, "b.py": UNUSED})
    git(root, "checkout", "-qb", "feature")
    (root / "a.py").write_text("import json\n" + UNUSED)
    (root / "new.py").write_text("import json\n")
    asked: list[tuple[str, ...]] = []
    askers: list[str] = []
    real_run, real_kept = _git.run, _git.listing_kept

    def counting(cwd: Path, *args: str, **kwargs: object) -> str:
        asked.append(args)
        askers.append(threading.current_thread().name)
        return real_run(cwd, *args, **kwargs)  # type: ignore[arg-type]

    def slow(store: Path | None, commit: str) -> bool:
        time.sleep(0.5)  # the calls ahead, slow to start the listings: the gate is there first
        return real_kept(store, commit)

    monkeypatch.setattr(_git, "run", counting)
    monkeypatch.setattr(_git, "listing_kept", slow)
    with _git.gate_calls_ahead(root, "main", None):
        result = run_gate(root, tmp_path / "cache")
    assert sorted(f.path for f in result.new) == ["a.py", "new.py"]
    listings = [(args, by) for args, by in zip(asked, askers) if args[0] in ("ls-tree", "diff-index", "diff-tree")]
    # made by the calls ahead (threads of their own), not by the gate's own (the main thread, its pools' threads)
    assert len(listings) == 2 and not any(by.startswith(("MainThread", "gate", "verifier")) for _, by in listings), \
        listings


def test_a_commits_listing_kept_in_the_cache_is_read_back(make_repo, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A base listed once is read back from the cache directory by the next gate's process, under the same
    excludes only; the calls ahead do not list it again either."""
    from truthplane.git import run as _git
    from truthplane.git.repo import Repo
    from truthplane.truth import sources

    root = make_repo({"a.py": UNUSED, "vendor/v.py": UNUSED})
    repo = Repo.require(root)
    head = repo.head()
    assert head is not None
    store = tmp_path / "cache"
    first = sources.commit_source(repo, head, load_config(root), store)
    sources._LISTED.clear()  # as in a new process
    monkeypatch.setattr(Repo, "tree_blobs", lambda self, commit: pytest.fail("listed again"))
    again = sources.commit_source(repo, head, load_config(root), store)
    assert again.files == first.files and sorted(again.files) == ["a.py", "vendor/v.py"]

    asked: list[tuple[str, ...]] = []
    real_run = _git.run
    monkeypatch.setattr(_git, "run", lambda cwd, *args, **kw: asked.append(args) or real_run(cwd, *args, **kw))
    sources._LISTED.clear()
    with _git.gate_calls_ahead(root, "main", None, store=store):
        assert run_gate(root, store).new == []
    assert asked and not [args for args in asked if args[0] == "ls-tree"]

    monkeypatch.undo()
    sources._LISTED.clear()
    (root / "truthplane.toml").write_text('exclude = ["vendor"]\n')
    assert sorted(sources.commit_source(repo, head, load_config(root), store).files) == ["a.py"]
    for kept in (store / "listings").iterdir():
        kept.write_bytes(b"\x00not a listing")
    sources._LISTED.clear()
    assert sorted(sources.commit_source(repo, head, load_config(root), store).files) == ["a.py"]


def test_a_call_that_failed_ahead_fails_the_gate_as_it_would_have(make_repo, tmp_path: Path) -> None:
    from truthplane.errors import GitError
    from truthplane.git.run import gate_calls_ahead

    root = make_repo({"a.py": UNUSED})
    with gate_calls_ahead(root, "origin/main", None), pytest.raises(GitError, match="base ref 'origin/main' not found"):
        gate(root, load_config(root), ScanOptions(only=["ruff"], cache_dir=tmp_path / "cache"), base_ref="origin/main")


def test_a_head_verifier_that_cannot_run_never_leaves_the_base_waiting(make_repo, tmp_path: Path) -> None:
    """The base waits for the head's tools to start; a head verifier that never starts one (not installed)
    must still let the base go on, and the gate says it could not verify."""
    config = ('[verifiers]\nenabled = ["ruff", "gone"]\n[verifiers.gone]\ntype = "command"\ncommand = ["no-such-tool", '
              '"{files}"]\n')
    root = make_repo({"a.py": UNUSED, "truthplane.toml": config})
    git(root, "checkout", "-qb", "feature")
    (root / "a.py").write_text("import json\n" + UNUSED)
    result = gate(root, load_config(root), ScanOptions(cache_dir=tmp_path / "cache"), base_ref="main")
    assert result.verdict.value == "UNVERIFIED"
    assert any("gone" in reason and "not installed" in reason for reason in result.reasons)
    assert [(f.rule_id, f.path) for f in result.new] == [("F401", "a.py")]


def test_a_listing_laid_over_another_names_the_files_a_full_listing_does(make_repo) -> None:
    """Which files configure a verifier is asked of both states of every gate: the working tree answers from
    the merge-base's answer and what changed since, and must answer as a listing of its own would."""
    from truthplane.truth.sources import Excluder, commit_source, worktree_over, worktree_source
    from truthplane.git.repo import Repo

    root = make_repo({"pyproject.toml": "[project]\nname = 'x'\n", "sub/pyproject.toml": "", "sub/ruff.toml": "",
                      ".semgrep/rules.yml": "rules: []\n", "deep/er/.ruff.toml": "", "a.py": "x = 1\n",
                      "ruff.toml/odd.py": "y = 1\n"})
    merge_base = git(root, "rev-parse", "HEAD").strip()
    (root / "sub" / "ruff.toml").unlink()
    (root / "pyproject.toml").write_text("[project]\nname = 'y'\n")
    (root / "new" / ".semgrep").mkdir(parents=True)
    (root / "new" / ".semgrep" / "more.yml").write_text("rules: []\n")
    (root / "deep" / "ruff.toml").write_text("")
    config = load_config(root)
    repo = Repo.require(root)
    changes, dirty = repo.changes_since(merge_base, Excluder(config.all_excludes()))
    base = commit_source(repo, merge_base, config)
    over = worktree_over(base, root, changes, commit=repo.head(), dirty=dirty)
    full = worktree_source(root, config)
    for names in ({"pyproject.toml", "ruff.toml", ".ruff.toml"}, {".semgrep", ".semgrepignore"}, {"a.py"}, set()):
        assert over.named(frozenset(names)) == full.named(frozenset(names)), names
    assert [p for p, _ in base.named(frozenset({"ruff.toml"}))] == ["ruff.toml/odd.py", "sub/ruff.toml"]


def test_a_listing_laid_over_another_answers_as_a_full_listing_from_its_changes_alone(
        make_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The files of some suffixes, the names asked of a commit's listing (kept in the cache directory for the next
    process), and the files both states have alike: each computed from the base's answer and what changed since,
    each as a full listing would."""
    from truthplane.git.repo import Repo
    from truthplane.truth import sources
    from truthplane.truth.pipeline import _alike
    from truthplane.truth.sources import Excluder, Source, commit_source, worktree_over, worktree_source

    root = make_repo({"pyproject.toml": "[project]\nname = 'x'\n", "a.py": "x = 1\n", "b.py": "y = 1\n",
                      "c.pyi": "z: int\n", "doc.md": "d\n", "sub/ruff.toml": "", "sub/d.py": "d = 1\n"})
    merge_base = git(root, "rev-parse", "HEAD").strip()
    (root / "a.py").write_text("x = 2\n")
    (root / "b.py").unlink()
    (root / "new.py").write_text("n = 1\n")
    (root / "doc.md").write_text("e\n")
    (root / "sub" / "d.py").rename(root / "sub" / "moved.py")
    config = load_config(root)
    repo = Repo.require(root)
    changes, dirty = repo.changes_since(merge_base, Excluder(config.all_excludes()))
    store = tmp_path / "cache"
    base = commit_source(repo, merge_base, config, store)
    over = worktree_over(base, root, changes, commit=repo.head(), dirty=dirty)
    full = worktree_source(root, config)
    for suffixes in ((".py",), (".py", ".pyi"), (".md",), ()):
        assert over.suffixed(suffixes) == full.suffixed(suffixes) == {
            p: b for p, b in full.files.items() if p.endswith(suffixes) or not suffixes}, suffixes
    plain = Source(dict(over.files), over.open_tree, label="plain")
    assert _alike(base, over, []) == _alike(base, plain, []) == frozenset({"c.pyi", "pyproject.toml", "sub/ruff.toml"})
    relevant = over.suffixed((".py", ".pyi"))
    assert over.same_as(base.files, relevant) == plain.same_as(base.files, relevant) == {"c.pyi"}
    # what the change adds or alters: from the paths that differ, as from every path
    assert over.changed_from(base) == plain.changed_from(base) == ["a.py", "doc.md", "new.py", "sub/moved.py"]
    assert over.changed_from(plain) == [] and base.changed_from(over) == ["a.py", "b.py", "doc.md", "sub/d.py"]

    names = frozenset({"pyproject.toml", "ruff.toml"})
    asked = base.named(names)
    sources._LISTED.clear()  # as in a new process: the answer is read back, no path indexed again
    again = commit_source(repo, merge_base, config, store)
    monkeypatch.setattr(again, "_components", {})
    assert again.named(names) == asked == [(p, base.files[p]) for p in ("pyproject.toml", "sub/ruff.toml")]
    assert again.named(frozenset({"a.py"})) == []  # not kept: computed (here from an index made empty)


@pytest.mark.parametrize("change", ["clean", "edit", "delete", "untracked", "excluded only", "touched"])
def test_what_changed_since_heads_own_commit_takes_one_listing_less_and_says_the_same(make_repo, change: str) -> None:
    from truthplane.truth.sources import Excluder
    from truthplane.git.repo import Repo

    root = make_repo({"a.py": "a = 1\n", "b.py": "b = 1\n", "truthplane.toml": 'exclude = ["vendor"]\n',
                      "vendor/v.py": "v = 1\n"})
    if change == "edit":
        (root / "a.py").write_text("a = 2\n")
    elif change == "delete":
        (root / "b.py").unlink()
    elif change == "untracked":
        (root / "c.py").write_text("c = 1\n")
    elif change == "excluded only":
        (root / "vendor" / "v.py").write_text("v = 2\n")
    elif change == "touched":
        import os

        os.utime(root / "a.py", (1, 1))  # stat-dirty, same content
    repo = Repo.require(root)
    head = repo.head()
    assert head is not None
    skip = Excluder(load_config(root).all_excludes())
    assert repo.changes_since(head, skip, head) == repo.changes_since(head, skip)
    assert repo.changes_since(head, skip, head)[1] is (change in ("edit", "delete", "untracked"))


@pytest.mark.parametrize("change", ["clean", "revert", "edit again", "delete", "restore deleted", "untracked",
                                    "chmod", "staged", "touched", "symlink"])
def test_a_branch_with_commits_and_a_working_tree_lists_as_a_full_listing(make_repo, change: str) -> None:
    """HEAD is ahead of the merge-base: the commits' trees are compared in git's objects and the working tree
    against HEAD, and together they say what a full listing of the working tree says."""
    import os

    from truthplane.truth.sources import Excluder, commit_source, worktree_over, worktree_source
    from truthplane.git.repo import Repo

    root = make_repo({"a.py": "a = 1\n", "b.py": "b = 1\n", "c.py": "c = 1\n", "truthplane.toml": 'exclude = ["v"]\n',
                      "v/x.py": "x = 1\n"})
    merge_base = git(root, "rev-parse", "HEAD").strip()
    git(root, "checkout", "-qb", "feature")
    (root / "a.py").write_text("a = 2\n")
    (root / "b.py").unlink()
    (root / "d.py").write_text("d = 1\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "branch")
    if change == "revert":
        (root / "a.py").write_text("a = 1\n")  # as the merge-base has it
    elif change == "edit again":
        (root / "a.py").write_text("a = 3\n")
    elif change == "delete":
        (root / "d.py").unlink()
    elif change == "restore deleted":
        (root / "b.py").write_text("b = 1\n")  # untracked, as the merge-base had it
    elif change == "untracked":
        (root / "e.py").write_text("e = 1\n")
    elif change == "chmod":
        os.chmod(root / "c.py", 0o755)
    elif change == "staged":
        (root / "c.py").write_text("c = 2\n")
        git(root, "add", "c.py")
        (root / "c.py").write_text("c = 3\n")
    elif change == "touched":
        os.utime(root / "d.py", (1, 1))
    elif change == "symlink":
        (root / "c.py").unlink()
        (root / "c.py").symlink_to("a.py")
    config = load_config(root)
    repo = Repo.require(root)
    changes, dirty = repo.changes_since(merge_base, Excluder(config.all_excludes()))
    over = worktree_over(commit_source(repo, merge_base, config), root, changes, commit=repo.head(), dirty=dirty)
    full = worktree_source(root, config)
    assert over.files == full.files
    assert dirty is (change not in ("clean", "touched"))
    assert dirty == full.dirty


def test_a_commits_listing_is_read_once_per_set_of_excludes(make_repo, monkeypatch: pytest.MonkeyPatch) -> None:
    from truthplane.truth.sources import commit_source
    from truthplane.git.repo import Repo

    root = make_repo({"a.py": "a = 1\n", "vendor/v.py": "v = 1\n"})
    repo = Repo.require(root)
    head = repo.head()
    assert head is not None
    read = []
    real = Repo.tree_blobs

    def counting(self: Repo, commit: str) -> dict[str, str]:
        read.append(commit)
        return real(self, commit)

    monkeypatch.setattr(Repo, "tree_blobs", counting)
    plain = load_config(root)
    first = commit_source(repo, head, plain)
    first.files["added by a caller.py"] = "0" * 40  # a caller's change stays its own
    again = commit_source(repo, head, plain)
    (root / "truthplane.toml").write_text('exclude = ["vendor"]\n')
    excluding = commit_source(repo, head, load_config(root))
    assert read == [head, head]
    assert sorted(again.files) == ["a.py", "vendor/v.py"] and sorted(excluding.files) == ["a.py"]


def test_a_commit_laid_over_the_merge_base_lists_what_its_full_listing_does(make_repo) -> None:
    """A gate of a commit (--head) lists it as the merge-base's files plus what the commit changed since, compared in
    git's objects: the same files as listing the commit's whole tree, whatever kind of change is in it."""
    import os

    from truthplane.git.repo import Repo
    from truthplane.truth.sources import Excluder, commit_over, commit_source

    root = make_repo({"keep.py": "a = 1\n", "edit.py": "b = 1\n", "gone.py": "c = 1\n", "old name.py": "d = 1\n" * 20,
                      "tool.sh": "echo\n", "vendor/lib.py": "f = 1\n", "link.py": "g = 1\n",
                      "truthplane.toml": 'exclude = ["vendor"]\n'})
    merge_base = git(root, "rev-parse", "HEAD").strip()
    git(root, "checkout", "-qb", "feature")
    (root / "branch dir").mkdir()
    (root / "branch dir" / "new.py").write_text("h = 1\n")
    (root / "edit.py").write_text("b = 2\n")
    (root / "gone.py").unlink()
    git(root, "mv", "old name.py", "new name.py")
    os.chmod(root / "tool.sh", 0o755)
    (root / "vendor" / "more.py").write_text("f = 3\n")
    (root / "link.py").unlink()
    (root / "link.py").symlink_to("keep.py")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "every kind of change")
    git(root, "checkout", "-q", "main")  # a gate of a commit reads no working tree
    config = load_config(root)
    repo = Repo.require(root)
    head = repo.resolve("feature")
    changes = repo.commit_changes(merge_base, head, Excluder(config.all_excludes()))
    over = commit_over(commit_source(repo, merge_base, config), repo, head, changes)
    assert over.files == commit_source(repo, head, config).files
    assert "new name.py" in over.files and "link.py" not in over.files and "vendor/more.py" not in over.files
    assert over.changed_from(commit_source(repo, merge_base, config)) == ["branch dir/new.py", "edit.py",
                                                                          "new name.py"]


_LAYOUT = {
    "pyproject.toml": "[project]\nname = 'x'\n\n[tool.ruff.lint]\nselect = ['F', 'I', 'INP']\n",
    "pkg/__init__.py": "",
    "pkg/sub/__init__.py": "",
    "pkg/sub/mod.py": "import os\n\nimport requests\n\nimport tools.helpers\n\nprint(os, requests, tools.helpers)\n",
    "tools/__init__.py": "",
    "tools/helpers.py": "x = 1\n",
    **{f"docs/example{i}.py": "import os\n" for i in range(20)},
}


def _found(result) -> dict[str, list[tuple[str, str, int | None]]]:  # noqa: ANN001
    return {kind: sorted((f.rule_id, f.path, f.start_line) for f in getattr(result, kind))
            for kind in ("new", "fixed", "unchanged", "updated")}


def _commit_and_checkout(root: Path, cache: Path, only: list[str]):  # noqa: ANN202
    """The gate of branch `feature` as a commit (--head, from a checkout of main), and as the working tree."""
    git(root, "checkout", "-q", "main")
    by_commit = gate(root, load_config(root), ScanOptions(only=only, cache_dir=cache / "commit"), base_ref="main",
                     head_ref="feature")
    git(root, "checkout", "-q", "feature")
    by_checkout = gate(root, load_config(root), ScanOptions(only=only, cache_dir=cache / "checkout"), base_ref="main")
    return by_commit, by_checkout


@pytest.mark.tool("bandit")
def test_a_gate_of_a_commit_writes_only_the_files_a_tool_reads(make_repo, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Judging a commit (--head) writes its files to a temporary directory for the tools. For one that reads only the
    files it is given and its configuration (bandit), only those are written, never the whole tree, and the verdict
    is the one a checkout of the commit gets."""
    from truthplane.git.repo import TreeExport

    root = make_repo({**_LAYOUT, ".bandit": "[bandit]\nskips = B101\n"})
    git(root, "checkout", "-qb", "feature")
    (root / "pkg" / "sub" / "mod.py").write_text(_LAYOUT["pkg/sub/mod.py"] + "eval(input())\n")
    git(root, "commit", "-qam", "an eval")
    head = git(root, "rev-parse", "HEAD").strip()
    written: list[str] = []  # of the head's commit (the base, scanned afresh, is written too)
    whole: list[bool] = []
    add, everything = TreeExport.add, TreeExport.whole

    def spy_add(self: TreeExport, paths) -> None:  # noqa: ANN001
        paths = list(paths)
        if self.commit == head:
            written.extend(paths)
        add(self, paths)

    def spy_whole(self: TreeExport) -> None:
        if self.commit == head:
            whole.append(True)
        everything(self)

    monkeypatch.setattr(TreeExport, "add", spy_add)
    monkeypatch.setattr(TreeExport, "whole", spy_whole)
    by_commit, by_checkout = _commit_and_checkout(root, tmp_path, ["bandit"])
    assert not whole and sorted(written) == [".bandit", "pkg/sub/mod.py", "pyproject.toml"]
    assert _found(by_commit) == _found(by_checkout)
    assert [(f.rule_id, f.path) for f in by_commit.new] == [("B307", "pkg/sub/mod.py")]
    assert by_commit.verdict == by_checkout.verdict


def test_a_tool_that_looks_at_the_layout_judges_a_commit_as_a_checkout_of_it(make_repo, tmp_path: Path) -> None:
    """ruff's isort rules tell first-party modules by the files they find in the tree, and its namespace-package rule
    looks for `__init__.py`: written the commit's whole tree, ruff finds on a commit what it finds in its checkout."""
    root = make_repo(_LAYOUT)
    git(root, "checkout", "-qb", "feature")
    (root / "pkg" / "sub" / "mod.py").write_text(_LAYOUT["pkg/sub/mod.py"] + "import sys\n")
    git(root, "commit", "-qam", "one unused import")
    by_commit, by_checkout = _commit_and_checkout(root, tmp_path, ["ruff"])
    assert _found(by_commit) == _found(by_checkout)
    assert _found(by_commit)["new"] == [("F401", "pkg/sub/mod.py", 8)]


def test_a_gate_of_a_commit_lists_no_tree_in_full_but_the_merge_base_s(make_repo, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A gate of a commit (--head) takes the commit as the merge-base's listing plus what changed since: neither the
    calls started ahead nor the gate list the commit's whole tree (on a large repository a tenth of a second of
    git's CPU, and megabytes through a pipe, for nobody)."""
    from truthplane.git import run as _git

    root = make_repo({"a.py": UNUSED, "b.py": UNUSED})
    git(root, "checkout", "-qb", "feature")
    (root / "a.py").write_text("import json\n" + UNUSED)
    git(root, "commit", "-qam", "one more unused import")
    git(root, "checkout", "-q", "main")
    head = git(root, "rev-parse", "feature").strip()
    asked: list[tuple[str, ...]] = []
    askers: list[str] = []
    real_run = _git.run

    def counting(cwd: Path, *args: str, **kwargs: object) -> str:
        asked.append(args)
        askers.append(threading.current_thread().name)
        return real_run(cwd, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_git, "run", counting)
    options = ScanOptions(only=["ruff"], cache_dir=tmp_path / "cache")
    with _git.gate_calls_ahead(root, "main", "feature"):
        result = gate(root, load_config(root), options, base_ref="main", head_ref="feature")
    assert [(f.rule_id, f.path) for f in result.new] == [("F401", "a.py")]
    assert any(args[0] == "ls-tree" for args in asked)  # the merge-base's
    assert not [args for args in asked if args[0] == "ls-tree" and head in args], asked
    listings = [(args, by) for args, by in zip(asked, askers) if args[0] in ("ls-tree", "diff-tree", "diff")]
    # each once, by the calls ahead (threads of their own), its answer taken by the gate
    assert len(listings) == 3 and not any(by.startswith(("MainThread", "gate", "verifier")) for _, by in listings), \
        listings
