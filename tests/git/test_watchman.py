"""A gate's listings of the working tree through a real watchman server (truthplane.git.watchman,
truthplane.git.monitored, the untracked listing's snapshot): the same answers as git's own passes through random
changes of real repositories, with git asked only about what watchman saw change, and git's whole passes wherever
watchman cannot answer."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git
from tests.git.test_untracked import change, files_and_dirs, seed_repo
from truthplane.git import untracked as untracked_module
from truthplane.git.changes import parse_changes
from truthplane.git.monitored import worktree_diff
from truthplane.git.run import GIT_ENV, changes_args, run
from truthplane.git.untracked import LISTING, untracked, watchman_note
from truthplane.git.watchman import Watchman, watch

pytestmark = pytest.mark.tool("watchman")


class Server:
    """A watchman server of the test's own (its socket, state and log in a directory of its own)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sockname = str(folder / "sock")
        self.start()

    def command(self, *args: str) -> str:
        return subprocess.run(
            ["watchman", f"--sockname={self.sockname}", f"--statefile={self.folder / 'state'}",
             f"--logfile={self.folder / 'log'}", f"--pidfile={self.folder / 'pid'}", "--no-save-state",
             "--no-pretty", *args], capture_output=True, check=True, timeout=60,
        ).stdout.decode()

    def start(self) -> None:
        self.command("get-sockname")  # starts the server

    def stop(self) -> None:
        subprocess.run(["watchman", f"--sockname={self.sockname}", "--no-spawn", "shutdown-server"],
                       capture_output=True, timeout=60)
        pid = int((self.folder / "pid").read_text().split()[0])
        for _ in range(200):  # until the server has ended
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    folder = Path(tempfile.mkdtemp(prefix="tpwm", dir="/tmp"))  # a socket's path is at most 107 bytes long
    monkeypatch.setenv("WATCHMAN_SOCK", str(folder / "sock"))  # what `watchman get-sockname` answers (watch())
    started = Server(folder)
    try:
        yield started
    finally:
        started.stop()
        shutil.rmtree(folder, ignore_errors=True)


class Gate:
    """A gate's two listings of the working tree with a store: through watchman where it answers, each answer
    checked against git's own whole passes; counting git's whole passes and the listing's stat passes."""

    def __init__(self, root: Path, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.store = root, store
        self.whole_diffs = self.diffs = self.whole_stats = self.listings = 0
        self.asked: list[str] = []
        update = untracked_module._Lister.update
        gate = self

        def counted(lister, old, started, staged, touched=None):  # type: ignore[no-untyped-def]
            gate.whole_stats += touched is None
            return update(lister, old, started, staged, touched)

        monkeypatch.setattr(untracked_module._Lister, "update", counted)
        monkeypatch.setattr(untracked_module, "RACY_NS", 10_000_000)  # trust what changed 10 ms before

    def run(self, cwd: Path, *args: str, input_bytes: bytes | None = None) -> str:
        if args[0] == "diff-index" and "--cached" not in args:
            self.diffs += 1
            if args[-1] == "--":
                self.whole_diffs += 1
            else:
                self.asked.extend(a.removeprefix(":(literal)") for a in args[args.index("--") + 1:])
        return run(cwd, *args, input_bytes=input_bytes)

    def check(self) -> None:
        head = git(self.root, "rev-parse", "HEAD")
        diff_args = changes_args(head, head)[0]
        raw = worktree_diff(self.root, head, self.store, diff_args, self.run)
        assert parse_changes(self.root, raw, "") == parse_changes(self.root, run(self.root, *diff_args), "")
        listed = untracked(self.root, head, self.store, GIT_ENV, lambda: run(self.root, *LISTING))
        self.listings += 1
        assert sorted(listed.split("\0")) == sorted(run(self.root, *LISTING).split("\0"))
        time.sleep(0.02)  # past the file system's clock tick


def watched(root: Path, store: Path) -> Path:
    note = Path(watchman_note(store, root))
    assert watch(str(root), str(note)) == 0
    return note


def started(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Gate:
    """A Gate of `root`, whose tree watchman watches, after its first check (git's whole passes, the clocks)."""
    store = tmp_path / "cache"
    watched(root, store)
    gate = Gate(root, store, monkeypatch)
    gate.check()
    return gate


@pytest.mark.parametrize("seed", range(4))
def test_a_watched_tree_lists_as_git_does_through_random_changes(seed, server, make_repo, tmp_path,
                                                                  monkeypatch) -> None:
    rng = random.Random(seed)
    root = seed_repo(make_repo, rng)
    gate = started(root, tmp_path, monkeypatch)
    kinds = []
    for _ in range(40):
        kinds.append(change(rng, root))
        files = [p for p in files_and_dirs(root)[0] if p.is_file() and not p.is_symlink()]
        if files and rng.random() < 0.3:
            os.chmod(rng.choice(files), rng.choice([0o755, 0o644]))  # a mode git tells apart
            kinds.append("chmod")
        gate.check()
    # watchman answered most: git's whole diff and the listing's stat of every directory were the exception
    assert gate.whole_diffs < gate.diffs / 3, (gate.whole_diffs, gate.diffs, kinds)
    assert gate.whole_stats < gate.listings / 3, (gate.whole_stats, gate.listings, kinds)


def test_git_is_asked_about_the_changed_file_alone(server, make_repo, tmp_path, monkeypatch) -> None:
    root = make_repo({f"pkg{i}/m{j}.py": f"x = {i}{j}\n" for i in range(20) for j in range(5)})
    gate = started(root, tmp_path, monkeypatch)  # the first check: git's whole pass, and watchman's clock
    assert (gate.whole_diffs, gate.whole_stats) == (1, 0)
    (root / "pkg3" / "m1.py").write_text("x = 'changed'\n")
    (root / "pkg7" / "new.py").write_text("y = 1\n")
    gate.check()
    # the two files, not their directories (whose names would have git compare every file below them)
    assert gate.asked == ["pkg3/m1.py", "pkg7/new.py"]
    gate.check()
    assert gate.asked[2:] == ["pkg3/m1.py"]  # what the last answer named is asked again
    assert gate.whole_diffs == 1 and gate.whole_stats == 0
    os.chmod(root / "pkg5" / "m0.py", 0o755)
    git(root, "add", "pkg7/new.py")
    gate.check()
    assert set(gate.asked[3:]) == {"pkg3/m1.py", "pkg5/m0.py", "pkg7/new.py"}
    git(root, "commit", "-qam", "all of it")
    gate.check()
    assert gate.whole_diffs == 1 and gate.whole_stats == 0


def test_a_changed_gitattributes_or_configuration_asks_git_about_everything(server, make_repo, tmp_path,
                                                                            monkeypatch) -> None:
    root = make_repo({"a.txt": "one\r\ntwo\r\n", "b.py": "x = 1\n"})
    gate = started(root, tmp_path, monkeypatch)
    (root / ".gitattributes").write_text("*.txt text eol=lf\n")
    gate.check()
    assert gate.whole_diffs == 2
    git(root, "config", "core.filemode", "false")
    gate.check()
    assert gate.whole_diffs == 3
    gate.check()
    assert gate.whole_diffs == 3


def test_a_server_gone_or_started_again_costs_the_whole_passes_not_an_answer(server, make_repo, tmp_path,
                                                                             monkeypatch) -> None:
    root = make_repo({"pkg/a.py": "x = 1\n", "pkg/b.py": "y = 2\n"})
    gate = started(root, tmp_path, monkeypatch)
    server.stop()
    (root / "pkg" / "a.py").write_text("x = 'gone'\n")
    (root / "pkg" / "c.py").write_text("new\n")
    gate.check()
    assert (gate.whole_diffs, gate.whole_stats) == (2, 1)
    server.start()  # a new server: it watches nothing until asked
    assert Watchman(server.sockname, str(root), "").ask(["watch-project", str(root)])["watch"] == str(root)
    (root / "pkg" / "b.py").write_text("y = 'restarted'\n")
    gate.check()  # the kept clocks are another server's: a fresh instance
    assert (gate.whole_diffs, gate.whole_stats) == (3, 2)
    (root / "pkg" / "d.py").write_text("d\n")
    gate.check()
    assert (gate.whole_diffs, gate.whole_stats) == (3, 2)


def test_a_last_answer_whose_commit_is_gone_costs_git_s_whole_pass(server, make_repo, tmp_path,
                                                                   monkeypatch) -> None:
    import marshal

    root = make_repo({"pkg/a.py": "x = 1\n"})
    gate = started(root, tmp_path, monkeypatch)
    note = Path(watchman_note(gate.store, root))
    kept = note.with_suffix(".diff")
    state = marshal.loads(kept.read_bytes())
    kept.write_bytes(marshal.dumps({**state, "head": "1" * 40}))  # a commit the repository no longer has
    (root / "pkg" / "a.py").write_text("x = 2\n")
    gate.check()
    assert gate.whole_diffs == 2
    (root / "pkg" / "a.py").write_text("x = 3\n")
    gate.check()
    assert gate.whole_diffs == 2


def test_a_tree_whose_watchmanconfig_ignores_directories_is_statted(server, make_repo, tmp_path) -> None:
    """watchman reports nothing of the directories a `.watchmanconfig` has it ignore: it cannot say what changed."""
    root = make_repo({"build/a.py": "x = 1\n", ".watchmanconfig": '{"ignore_dirs": ["build"]}'})
    store = tmp_path / "cache"
    note = watched(root, store)
    assert Watchman.noted(str(note), str(root)) is None
    (root / ".watchmanconfig").write_text('{"settle": 20}')
    assert Watchman.noted(str(note), str(root)) is not None


def test_a_note_for_another_tree_is_not_used(server, make_repo, tmp_path, monkeypatch) -> None:
    root = make_repo({"a.py": "x = 1\n"}, name="one")
    other = make_repo({"a.py": "x = 1\n"}, name="two")
    store = tmp_path / "cache"
    note = watched(other, store)
    shutil.copy(note, watchman_note(store, root))
    assert Watchman.noted(watchman_note(store, root), str(root)) is None
    assert Watchman.noted(str(note), str(other)) is not None


def test_the_setting_has_watchman_watch_the_tree_and_gates_judge_as_without(server, make_repo, tmp_path) -> None:
    """`[gate] watchman = true`: the first gate has the server watch the tree (in a process of its own), the next
    ones ask it what changed, with the verdicts of gates that stat everything; `false` forgets the note."""
    import json
    import sys

    root = make_repo({"pkg/a.py": "import os\n", "pkg/b.py": "x = 1\n", "truthplane.toml": "verifiers = ['ruff']\n"
                      "[gate]\nwatchman = true\n"})
    git(root, "checkout", "-q", "-b", "work")
    cache = tmp_path / "cache"
    cache.mkdir()
    note = Path(watchman_note(cache, root))

    def gate(config: str | None = None) -> dict:
        extra = ["--config", config] if config else []
        proc = subprocess.run([sys.executable, "-m", "truthplane", "gate", ".", "--base", "main", "--cache-dir",
                               str(cache), "--format", "json", *extra], cwd=root, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode in (0, 1, 3), proc.stderr
        found = json.loads(proc.stdout)
        return {key: found[key] for key in ("verdict", "new", "fixed")}

    assert gate()["verdict"] == "APPROVE"
    for _ in range(600):
        if note.exists():
            break
        time.sleep(0.05)
    assert Watchman.noted(str(note), str(root)) is not None
    assert json.loads(server.command("watch-list"))["roots"] == [str(root)]
    plain = tmp_path / "plain.toml"
    plain.write_text("verifiers = ['ruff']\n")
    saved = note.read_bytes()
    edits = [("pkg/b.py", "import sys\n"), ("pkg/new.py", "import json\n"), ("pkg/b.py", "x = 2\n")]
    verdicts = []
    for rel, content in edits:
        (root / rel).write_text(content)
        watched_gate = gate()
        assert note.with_suffix(".diff").exists()  # the watched diff's answer and clock
        assert watched_gate == gate(str(plain))  # the same verdict and findings, every file statted
        assert not note.exists()  # a gate without the setting forgets the note
        note.write_bytes(saved)
        verdicts.append((watched_gate["verdict"], len(watched_gate["new"])))
    assert verdicts == [("REVIEW", 1), ("REVIEW", 2), ("REVIEW", 1)], verdicts
