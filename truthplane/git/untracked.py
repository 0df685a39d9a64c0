"""The working tree's untracked files, as `git ls-files -o --exclude-standard -z` prints them, without git's walk
of every directory on each gate.

Git finds untracked files by reading every directory no ignore rule excludes: on a large repository, the longest
thing a gate of a small change waits for. A directory's entries change only when its modification and change
times do, so a snapshot is kept beside the result cache: each directory git's walk reads (the top directory and
every one below it that no ignore rule excludes), with its times and inode, each `.gitignore` among them by
content, and git's answer. The next listing stats those directories, reads only the ones that changed, and asks
git about their files alone (literal pathspecs): git still decides every file, by its own rules.

What can change git's answer without a directory's times changing is checked too:
- the ignore rules: every `.gitignore` of the walk, by content; `info/exclude` and the `core.excludesFile`, by
  content; git's configuration, environment and executable. Any change means git's full walk.
- the index's tracked paths: a path added to or removed from the index since the snapshot (the index against
  HEAD, now and then, and HEAD against the snapshot's) is asked about by name; a submodule means the full walk.
- racy times (git's word): a directory or ignore file whose change time lies within RACY_NS of the snapshot could
  change again with the same time, and is never trusted by the next listing.

A `.git` anywhere below the top (a nested repository or a submodule), a `.gitignore` that is no regular file, or
a sparse checkout makes git walk every time. A snapshot that cannot be read or written costs git's own walk, no
answer: the cache directory is trusted like the result cache.
"""

from __future__ import annotations

import _thread
import marshal
import os
import stat
import struct
import sys
import time
from _bisect import bisect_left  # bisect's own, without the module

try:
    from truthplane.git import watchman as _watchman
except ImportError:  # run as the listing's own script (no site, no project on the path): the module beside it
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    import watchman as _watchman  # type: ignore[no-redef]

try:
    from _blake2 import blake2b  # hashlib's own; importing hashlib loads OpenSSL, a tenth of the listing process's CPU
except ImportError:  # pragma: no cover - an interpreter without CPython's module
    from hashlib import blake2b

# the listing's own process imports no more than it needs: subprocess (and re, enum, locale with it) was a sixth
# of its CPU, threading and collections some more; the gate's process has them all, and imports them itself
TYPE_CHECKING = False  # typing.TYPE_CHECKING: importing typing (and re with it) costs this process 20 ms of CPU
if TYPE_CHECKING:
    import subprocess
    from collections.abc import Callable, Mapping
    from pathlib import Path
    from typing import Any

LISTING = ("ls-files", "-o", "--exclude-standard", "-z")

_VERSION = 5
RACY_NS = 3_000_000_000  # a change this close to a snapshot may leave a time as it was: file systems count coarsely
MAX_PATHSPECS = 4000  # more paths to ask about than this: git's own walk is as quick
MAX_NEW_DIRS = 2000  # more new directories than this: the same
_MAX_WATCHED = 50_000  # more paths a monitor saw change than this: every directory is statted
_CHANGED = ("A", "D", "T", "U", "X")  # statuses of a raw diff that add or remove a tracked path


class _Walk(Exception):
    """The snapshot cannot answer this listing: git walks the whole working tree."""


_Stamp = tuple[int, int, int]  # (mtime_ns, ctime_ns, inode) of a directory
_PACKED = struct.Struct("<qqQ")  # a snapshot's stamps, one bytes object (quick to load); zeros: racy, never trusted
_RACY = bytes(_PACKED.size)
_GONE = b"\xff" * _PACKED.size  # a directory's stamp now, where it is no more (told apart by identity)
_BLOCK = 512  # stamps compared at once, before one by one
_NAMED = 8  # bytes of a digest of a directory's entries (see _names)
_SMALL = 400_000  # a snapshot this small (some 5,000 directories) is quicker to check here than in a new process
_NICE = 10  # how much lower the listing process's priority is than the gate's


def untracked(root: Path, head: str | None, store: Path | None, env: Mapping[str, str],
              walk: Callable[[], str], later: list[Callable[[], None]] | None = None) -> str:
    """What `walk` (git's own `ls-files -o --exclude-standard -z` in `root`) prints, from the snapshot in `store`
    where it can answer; `head` is HEAD's commit. Without a store or a HEAD this is `walk()` itself. With `later`,
    the new snapshot is written by the callable appended there, for a caller that answers first."""
    if store is None or head is None:
        return walk()
    return _Lister(root, dict(env)).listing(head, _snapshot_file(store, root), walk, later)


def _untracked_here(root: str, head: str, store: str, walk: Callable[[], str],
                    later: list[Callable[[], None]]) -> str:
    """untracked() in the listing's own process, whose working directory is `root`: the directories are statted
    by their paths relative to it (the kernel resolves fewer components; a quarter less time for 30,000)."""
    return _Lister(root, {}, relative=True).listing(head, _snapshot_file(store, root), walk, later)


# listings started before anybody asked for them (start_early): (the store's real path, the process)
_early: list[tuple[str, subprocess.Popen[bytes]]] = []
_early_lock = _thread.allocate_lock()


def start_early(path: Path, store: Path, env: Mapping[str, str]) -> None:
    """Start the listing of the working tree that holds `path` now, in a process of its own, for untracked_apart
    to take: the command line starts it before it imports what a gate needs."""
    if not sys.executable or _small(store, path):
        return  # a small tree is listed quicker where the gate asks for it (untracked_apart)
    import subprocess

    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", __file__, os.fsdecode(path), "-", os.fsdecode(store)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, **env},
        )
    except OSError:
        return
    with _early_lock:
        _early.append((os.path.realpath(store), proc))


def lists_here(root: Path, store: Path | None) -> bool:
    """Whether untracked_apart lists the untracked files of `root` in this process (a small tree, with no listing
    started early for it), not in git or a process of its own."""
    if store is None:
        return False
    where = os.path.realpath(store)
    with _early_lock:
        if any(item[0] == where for item in _early):
            return False
    return _small(store, root) or not sys.executable


def _answer(proc: subprocess.Popen[bytes]) -> tuple[str, str, str] | None:
    """(top directory, HEAD, answer) from a listing process, which then writes its snapshot on its own."""
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read()
    # the answer's length comes first: a process that died halfway never passes for one that found nothing
    size, _, rest = out.partition(b"\0")
    head, _, rest = rest.partition(b"\0")
    root, _, answer = rest.partition(b"\0")
    if not size.isdigit() or int(size) != len(answer):
        proc.wait()
        return None
    _thread.start_new_thread(proc.wait, ())
    decode = os.fsdecode
    return decode(root), decode(head), answer.decode("utf-8", "surrogateescape")


def _take_early(root: Path, head: str, store: Path) -> str | None:
    where = os.path.realpath(store)
    with _early_lock:
        mine = [item for item in _early if item[0] == where]
        for item in mine:
            _early.remove(item)
    found = None
    for _, proc in mine:
        answer = _answer(proc)
        if found is None and answer is not None and answer[:2] == (os.fsdecode(root), head):
            found = answer[2]
    return found


def untracked_apart(root: Path, head: str | None, store: Path | None, env: Mapping[str, str],
                    walk: Callable[[], str]) -> str:
    """untracked(), for a tree of more than a few thousand directories in a Python process of its own (this file,
    run with no site and no imports of the project): a stat of every directory would otherwise hold this
    process's interpreter lock against all the rest a gate does meanwhile. It answers before it writes the new
    snapshot. Whatever goes wrong there, `walk()` answers."""
    if store is None or head is None:
        return walk()
    early = _take_early(root, head, store) if _early else None
    if early is not None:
        return early
    if _small(store, root) or not sys.executable:
        return untracked(root, head, store, env, walk)
    import subprocess

    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", __file__, os.fsdecode(root), head, os.fsdecode(store)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, **env},
        )
    except OSError:
        return walk()
    answer = _answer(proc)
    return answer[2] if answer is not None else walk()


def _small(store: Path, root: Path) -> bool:
    try:
        return os.stat(_snapshot_file(store, root)).st_size < _SMALL
    except OSError:
        return False  # no snapshot yet (or `root` is below the top directory): the whole tree is walked


def _main(argv: list[str]) -> int:
    root, head, store = argv[0], argv[1], argv[2]
    # a gate waits for its tools far more often than for this listing, which shares the machine with them from the
    # start: at a lower priority, this process (and the git it runs) takes the CPU the tools leave
    if hasattr(os, "nice"):
        os.nice(_NICE)
    if head == "-":  # started early: the top directory and HEAD are this process's to find
        try:
            code, out = _run(["git", "-C", root, "rev-parse", "--show-toplevel", "HEAD"], os.environ)
        except (OSError, TimeoutError):
            return 1
        found = out.decode("utf-8", "surrogateescape").splitlines()
        if code != 0 or len(found) != 2:
            return 1
        root, head = found[0], found[1]
    os.chdir(root)

    def walk() -> str:
        try:
            code, out = _run(["git", "-C", root, *LISTING], os.environ)
        except (OSError, TimeoutError):
            code, out = 1, b""
        if code != 0:
            raise SystemExit(1)  # the caller walks, and says what git said
        return out.decode("utf-8", "surrogateescape")

    later: list[Callable[[], None]] = []
    answer = _untracked_here(root, head, store, walk, later)
    encoded = answer.encode("utf-8", "surrogateescape")
    sys.stdout.buffer.write(b"%d\0%s\0%s\0%s" % (len(encoded), head.encode(), os.fsencode(root), encoded))
    sys.stdout.buffer.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the caller has its answer: the pipe ends
    for work in later:
        work()
    return 0


def _snapshot_path(store: Path, root: Path) -> Path:
    from pathlib import Path

    return Path(_snapshot_file(store, root))


def watchman_note(store: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """Where the note of the watchman server that watches the working tree at `root` is kept (watchman.watch)."""
    return _watchman.note_file(_snapshot_file(store, root))


def _snapshot_file(store: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    digest = blake2b(os.fsencode(os.path.realpath(root)), digest_size=12).hexdigest()
    return os.path.join(os.fsdecode(store), "worktrees", f"{digest}.snapshot")


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


class Later:
    """A call on a thread of its own (or its answer, known already), with concurrent.futures.Future's done() and
    result(), importing neither concurrent.futures nor threading: the listing's process runs its git calls beside
    each other with it, and a gate its first git calls (truthplane.git.run) before its tools start."""

    def __init__(self, call: Callable[[], Any] | None = None, known: Any = None) -> None:
        self._value = known
        self._error: BaseException | None = None
        self._done = _thread.allocate_lock()  # held while the call runs
        if call is not None:
            self._done.acquire()
            try:
                _thread.start_new_thread(self._run, (call,))
            except BaseException:
                self._done.release()
                raise

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self._value = call()
        except BaseException as exc:  # noqa: BLE001 -- raised again where the answer is taken
            self._error = exc
        finally:
            self._done.release()

    def done(self) -> bool:
        return not self._done.locked()

    def wait(self) -> None:
        with self._done:
            pass

    def result(self) -> Any:
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value


def _run(argv: list[str], env: Mapping[str, str], stdin: bytes | None = None,
         timeout: float = 300.0) -> tuple[int, bytes]:
    """(exit code, standard output) of `argv`, whose first item is found on the PATH of `env`; standard error
    discarded. subprocess.run's answer without importing subprocess; OSError if it cannot start, TimeoutError
    (the process killed) after `timeout` seconds."""
    executable = _watchman.which(argv[0], env.get("PATH")) if os.sep not in argv[0] else argv[0]
    if executable is None:
        raise FileNotFoundError(f"{argv[0]} is not on the PATH")
    out, into = os.pipe()
    feed, fed = os.pipe() if stdin is not None else (-1, -1)
    if not hasattr(os, "posix_spawn") or min(out, into, *(fd for fd in (feed, fed) if fd >= 0)) <= 2:
        for fd in (out, into, feed, fed):
            if fd >= 0:
                os.close(fd)
        return _run_subprocess([executable, *argv[1:]], env, stdin, timeout)
    actions = [
        (os.POSIX_SPAWN_DUP2, into, 1),
        (os.POSIX_SPAWN_DUP2, feed, 0) if stdin is not None else (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
    ]
    try:
        pid = os.posix_spawn(executable, argv, dict(env), file_actions=actions)  # the pipes' ends close on exec
    except BaseException:
        for fd in (out, fed):
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        for fd in (into, feed):
            if fd >= 0:
                os.close(fd)
    if stdin is not None:
        _thread.start_new_thread(_feed, (fed, stdin))
    chunks: list[bytes] = []
    try:
        chunks = _read_until(out, time.monotonic() + timeout)
    except BaseException:  # timed out (or interrupted): nothing left running
        os.kill(pid, 9)
        raise
    finally:
        os.close(out)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks)


def _feed(fd: int, data: bytes) -> None:
    """Write `data` to a child's standard input and close it (what the child does not read is dropped)."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        pass  # it ended without reading it all: its exit code says how it went
    finally:
        os.close(fd)


def _read_until(fd: int, deadline: float) -> list[bytes]:
    import select  # an extension module of its own: nothing else to import

    poller = select.poll()
    poller.register(fd, select.POLLIN)
    chunks: list[bytes] = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not poller.poll(left * 1000):
            raise TimeoutError
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return chunks
        chunks.append(chunk)


def _run_subprocess(argv: list[str], env: Mapping[str, str], stdin: bytes | None, timeout: float
                    ) -> tuple[int, bytes]:
    """_run where there is no posix_spawn."""
    import subprocess

    try:
        proc = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              stdin=None if stdin is not None else subprocess.DEVNULL, env=dict(env), timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TimeoutError from None
    return proc.returncode, proc.stdout


class _Lister:
    def __init__(self, root: str | os.PathLike[str], env: dict[str, str], relative: bool = False) -> None:
        self.root = os.fsdecode(root)
        self.git_dir = ""  # known once key() has asked git
        # what a directory's path relative to the top is joined to: nothing when the working directory is the top
        self.prefix = "" if relative else os.path.join(self.root, "")
        self.env = {**os.environ, **env}

    def at(self, rel: str) -> str:
        """The path of `rel` (relative to the top directory) to give the system."""
        return self.prefix + rel if rel or self.prefix else "."

    # --- the answer -------------------------------------------------------------------------------------

    def listing(self, head: str, path: str, walk: Callable[[], str],
                later: list[Callable[[], None]] | None) -> str:
        started = time.time_ns()
        try:
            key = self.key(started)
        except _Walk:
            return walk()  # nothing to keep a snapshot for (a sparse checkout, or git cannot say)
        old = _load(path, key)
        if old is not None and old.get("opaque"):
            if any(os.path.lexists(self.at(p)) for p in old["opaque"]):
                return walk()  # still a nested repository (or the like): git walks, nothing to learn
            old = None
        # with a watchman that watches this tree (truthplane.git.watchman), the directories it saw change since
        # the snapshot's clock are the only ones statted; its clock now (taken before anything is read) is the
        # new snapshot's. Whatever it cannot answer: every directory is statted, as without it
        monitor = _watchman.Watchman.noted(_watchman.note_file(path), self.root)
        clock, touched = None, None
        if monitor is not None:
            try:
                if old is not None and isinstance(old.get("clock"), str):
                    try:
                        clock, names, _kept = monitor.since(old["clock"])
                    except _watchman.Unanswered:
                        pass  # a server started again since, say: a clock of its own, below
                    else:
                        touched = _touched(names) if len(names) <= _MAX_WATCHED else None
                if touched is None:
                    clock = monitor.clock()
            except _watchman.Unanswered:
                clock, touched = None, None

        def keep(snapshot: dict) -> None:
            snapshot["version"] = _VERSION
            if clock is not None:
                snapshot["clock"] = clock
            if snapshot == old or (
                    touched is not None and old is not None and {**snapshot, "clock": old.get("clock")} == old):
                # nothing changed since (the same directories, index and answer): nothing to write. With a
                # watchman, the snapshot's clock stays (what changed since it is asked again next time)
                return
            if later is None:
                _save(path, snapshot)
            else:
                later.append(lambda: _save(path, snapshot))

        calls: list[Later] = []

        def beside(call: Callable[[], Any]) -> Later:
            calls.append(Later(call))
            return calls[-1]

        try:
            index = self.index_stamp(started)
            if old is not None:
                # what the index tracks against the snapshot's commit, and what it tracked then, say which paths
                # came into the index or left it since: the snapshot keeps its commit, whatever HEAD is now. git
                # writes a new index file for every change: the same file tracks the same paths
                if index is not None and old.get("index") == index:
                    staged = Later(known=old["staged"])
                else:
                    staged = beside(lambda: self.staged(old["head"]))
                try:
                    answer, snapshot = self.update(old, started, staged, touched)
                except (_Walk, OSError):
                    pass
                else:
                    snapshot.update(key=key, head=old["head"], index=index)
                    keep(snapshot)
                    return answer
            staged = beside(lambda: self.staged(head))
            listed = beside(walk)  # git's own walk, while the snapshot is taken beside it
            fresh: dict | None
            try:
                fresh = self.snapshot(started, staged)
            except (_Walk, OSError):
                fresh = None
            answer = listed.result()
        finally:
            for call in calls:  # none left running behind the answer (nor git)
                call.wait()
        if fresh is not None:
            fresh.update(key=key, head=head, index=index, untracked=[p for p in answer.split("\0") if p])
            keep(fresh)
        return answer

    def key(self, started: int) -> bytes:
        """A digest of everything besides the directories that decides what git ignores."""
        dirs = self.git("rev-parse", "--absolute-git-dir", "--git-common-dir").decode("utf-8", "surrogateescape")
        self.git_dir = dirs.splitlines()[0]
        common_dir = os.path.join(self.root, dirs.splitlines()[1])  # relative to the top directory, or absolute
        config = self.git("config", "-z", "--list")
        settings: dict[str, str] = {}
        for item in config.split(b"\0"):
            name, _, value = item.decode("utf-8", "surrogateescape").partition("\n")
            settings[name.lower()] = value
        if settings.get("core.sparsecheckout", "false").lower() in ("true", "yes", "on", "1"):
            raise _Walk("a sparse checkout reads ignore rules from the index")
        excludes = settings.get("core.excludesfile")
        if excludes is None:
            xdg = self.env.get("XDG_CONFIG_HOME") or os.path.join(self.env.get("HOME", ""), ".config")
            excludes = os.path.join(xdg, "git", "ignore")
        elif excludes.startswith("%(prefix)"):
            raise _Walk("an excludes file relative to git's installation")
        else:
            excludes = os.path.join(self.root, os.path.expanduser(excludes))
        digest = blake2b(b"truthplane untracked %d\0" % _VERSION, digest_size=32)
        executable = _watchman.which("git", self.env.get("PATH"))
        if executable is None:
            raise _Walk("no git")
        found = os.stat(executable)
        digest.update(f"{os.path.realpath(self.root)}\0{dirs}\0{executable}\0{found.st_ino} {found.st_size} "
                      f"{found.st_mtime_ns}\0".encode("utf-8", "surrogateescape") + config + b"\0")
        for name in sorted(self.env):
            if name.startswith("GIT_") or name in ("HOME", "XDG_CONFIG_HOME"):
                digest.update(f"{name}={self.env[name]}\0".encode("utf-8", "surrogateescape"))
        for rules in (os.path.join(common_dir, "info", "exclude"), excludes):
            content, racy = _read(rules, started)
            digest.update(b"%d\0%s\0" % (len(content), content) if content is not None else b"-\0")
            if racy:
                digest.update(b"racy %d\0" % started)  # never matched again: the next listing walks
        return digest.digest()

    def index_stamp(self, started: int) -> tuple[int, int, int, int] | None:
        """(mtime_ns, ctime_ns, size, inode) of the index file; None without one, or when it changed too close
        to `started` to be told from a later change."""
        if "GIT_INDEX_FILE" in self.env:
            return None  # another index than the repository's own: asked of git every time
        try:
            found = os.stat(os.path.join(self.git_dir, "index"))
        except OSError:
            return None
        if found.st_ctime_ns >= started - RACY_NS:
            return None
        return found.st_mtime_ns, found.st_ctime_ns, found.st_size, found.st_ino

    def staged(self, commit: str) -> list[str]:
        """Paths the index adds to `commit`'s tree or removes from it (or holds unmerged)."""
        raw = self.git("diff-index", "--cached", "--raw", "-z", "--no-renames", commit, "--")
        fields = raw.split(b"\0")
        paths = []
        for meta, name in zip(fields[0::2], fields[1::2]):
            src_mode, dst_mode, *_, status = meta.decode("ascii", "replace").lstrip(":").split()
            if "160000" in (src_mode, dst_mode):
                raise _Walk("a submodule")
            if status[:1] in _CHANGED:
                paths.append(name.decode("utf-8", "surrogateescape"))
        return paths

    # --- the snapshot -----------------------------------------------------------------------------------

    def update(self, old: dict, started: int, staged: Later, touched: set[str] | None = None) -> tuple[str, dict]:
        """The answer from `old` and git's answer about what changed since it; the snapshot that answer makes.
        With `touched` (the paths a file-system monitor saw change since the snapshot, and their parents), only
        the snapshot's directories among them are statted: the others are as the snapshot has them."""
        dirs: list[str] = old["dirs"]
        stamps: bytes = old["stamps"]
        listed: bytes = old["names"]
        lstat, prefix, pack, width, is_dir = os.lstat, self.prefix, _PACKED.pack, _PACKED.size, stat.S_ISDIR
        # every directory's stamp now, packed as the snapshot's are (_GONE: no directory there any more); the
        # one loop a large tree's listing spends its time in, so it does nothing else
        now: list[bytes] = []
        if touched is not None:
            now = [stamps[at:at + width] for at in range(0, len(stamps), width)]
            for rel in touched:
                at = bisect_left(dirs, rel)
                if at < len(dirs) and dirs[at] == rel:
                    try:
                        found = lstat(self.at(rel))
                    except OSError:
                        now[at] = _GONE
                        continue
                    now[at] = pack(found.st_mtime_ns, found.st_ctime_ns, found.st_ino) if is_dir(
                        found.st_mode) else _GONE
        elif dirs:
            note = now.append
            paths = dirs[1:] if not prefix else [prefix + rel for rel in dirs[1:]]
            for where in [self.at(dirs[0]), *paths]:
                try:
                    found = lstat(where)
                except OSError:
                    note(_GONE)
                    continue
                note(pack(found.st_mtime_ns, found.st_ctime_ns, found.st_ino) if is_dir(found.st_mode) else _GONE)
        changed: list[int] = []
        joined, size = b"".join(now), _BLOCK * width
        for start in range(0, len(joined), size) if joined != stamps else ():
            if joined[start:start + size] != stamps[start:start + size]:
                for at in range(start // width, min(len(now), (start + size) // width)):
                    if now[at] is not _GONE and now[at] != stamps[at * width:(at + 1) * width]:
                        changed.append(at)
        known_files: dict[str, bytes | None] = old["ignore_files"]
        # a directory whose ignore rules changed is read again with all below it, as a new directory is
        rescan = {_parent(rel) for rel, digest in known_files.items()
                  if digest is None or _digest(prefix + rel) != digest}
        gone = {rel for rel, found in zip(dirs, now) if found is _GONE}
        known = set(dirs) if changed else set()
        ignored = {rel for rel in old["ignored"] if _parent(rel) not in gone}
        scoped = set(gone)  # directories whose untracked files git is asked about again (or that are no more)
        names: dict[int, bytes] = {}
        specs: list[str] = []
        for at in changed:
            rel = dirs[at]
            try:
                entries = list(os.scandir(self.at(rel)))
            except (FileNotFoundError, NotADirectoryError):
                gone.add(rel)
                scoped.add(rel)
                now[at] = _GONE
                continue
            names[at] = _names(entries)
            if names[at] == listed[at * _NAMED:(at + 1) * _NAMED]:
                # the same entries (a file rewritten, say): its untracked files are as they were, and only a
                # directory its stat missed (gone, and back since) is new
                rescan.update(p for p in (_join(rel, e.name) for e in entries) if p in gone and p not in ignored)
                continue
            scoped.add(rel)
            present = {entry.name for entry in entries}
            if rel and ".git" in present:
                raise _Walk(f"{rel} holds a repository")
            if (".gitignore" in present) != (_join(rel, ".gitignore") in known_files):
                rescan.add(rel)
            for entry in entries:
                path = _join(rel, entry.name)
                if not rel and entry.name == ".git":
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if (path not in known or path in gone) and path not in ignored:
                        rescan.add(path)  # new here (or back since its stat found nothing)
                else:
                    specs.append(path)
            ignored -= {p for p in ignored if _parent(p) == rel and p.rpartition("/")[2] not in present}
        if "" in rescan:
            raise _Walk("the top directory's ignore rules changed")
        tops = sorted(p for p in rescan if not p.startswith(tuple(q + "/" for q in rescan)))
        below = tuple(p + "/" for p in tops)
        top_set = set(tops)

        def under(path: str) -> bool:
            return path in top_set or path.startswith(below)

        files = {rel: digest for rel, digest in known_files.items() if _parent(rel) not in gone and not under(rel)}
        walked: dict = {"dirs": {}, "names": {}}
        if tops:
            ignored = {rel for rel in ignored if not under(rel)}
            walked = self.walk(tops, started, ignored)
            files.update(walked["ignore_files"])
            specs += [p for p in tops if p not in ignored]
        reasked = set(staged.result()) | set(old["staged"])
        specs += sorted(reasked)
        if len(specs) > MAX_PATHSPECS:
            raise _Walk("too many paths to ask about")
        reasked_below = tuple(p + "/" for p in reasked)
        kept = {p for p in old["untracked"]
                if _parent(p) not in scoped and not under(p) and p not in reasked and not p.startswith(reasked_below)}
        if specs:
            asked = self.git(*LISTING, "--", *(":(literal)" + p for p in specs))
            kept.update(p for p in asked.decode("utf-8", "surrogateescape").split("\0") if p)
        answer = sorted(kept, key=os.fsencode)
        # the latest change time of any directory: the snapshot's for those that did not change, else now's
        latest = max([_latest(stamps, started),
                      *(_PACKED.unpack(now[at])[1] for at in changed if now[at] is not _GONE)])
        racy = min(started, latest) - RACY_NS
        if not tops and not gone:
            # the same directories: the snapshot's stamps and names, those that changed written over
            fresh, named = bytearray(stamps), bytearray(listed)
            for at in changed:
                seen = now[at]
                assert seen is not _GONE
                fresh[at * width:(at + 1) * width] = seen if _PACKED.unpack(seen)[1] < racy else _RACY
                named[at * _NAMED:(at + 1) * _NAMED] = names[at]
            snapshot = {"dirs": dirs, "stamps": bytes(fresh), "names": bytes(named), "ignored": sorted(ignored),
                        "ignore_files": files, "untracked": answer, "staged": staged.result()}
        else:
            # directories came or went: the snapshot is made again from what is known of each
            stamped: dict[str, _Stamp] = {}
            digests: dict[str, bytes] = {}
            for at, (rel, known_stamp) in enumerate(zip(dirs, now)):
                if known_stamp is not _GONE and not under(rel):
                    stamped[rel] = _PACKED.unpack(known_stamp)
                    digests[rel] = names.get(at, listed[at * _NAMED:(at + 1) * _NAMED])
            stamped.update(walked["dirs"])
            digests.update(walked["names"])
            snapshot = _snapshot(stamped, digests, started, sorted(ignored), files, answer, staged.result())
        return "".join(p + "\0" for p in answer), snapshot

    def snapshot(self, started: int, staged: Later) -> dict:
        """A snapshot of the whole working tree's directories (git's answer is added by the caller)."""
        ignored: set[str] = set()
        walked = self.walk([""], started, ignored)
        if walked.get("opaque"):
            return {"opaque": walked["opaque"]}
        return _snapshot(walked["dirs"], walked["names"], started, sorted(ignored), walked["ignore_files"], [],
                         staged.result())

    def walk(self, tops: list[str], started: int, ignored: set[str]) -> dict:
        """The directories under `tops` that no ignore rule excludes (each statted before it is read, and its
        entries' names digested), the `.gitignore` files among them by content, and any `.git` below the top
        directory; excluded directories are added to `ignored`, and not read."""
        dirs: dict[str, _Stamp] = {}
        names: dict[str, bytes] = {}
        files: dict[str, bytes | None] = {}
        opaque: list[str] = []
        excluded = self.excluded([p for p in tops if p])  # the top directory is never excluded
        ignored.update(excluded)
        level = [p for p in tops if p not in excluded]
        while level:
            below: list[str] = []
            for rel in level:
                found = os.lstat(self.at(rel))
                if not stat.S_ISDIR(found.st_mode):
                    continue  # no directory any more: its parent's times say so next time
                dirs[rel] = (found.st_mtime_ns, found.st_ctime_ns, found.st_ino)
                with os.scandir(self.at(rel)) as listing:
                    entries = list(listing)
                names[rel] = _names(entries)
                for entry in entries:
                    path = _join(rel, entry.name)
                    if entry.name == ".git" and rel:
                        opaque.append(path)
                    elif entry.name == ".gitignore":
                        if not entry.is_file(follow_symlinks=False):
                            opaque.append(path)
                            continue
                        content, racy = _read(self.prefix + path, started)
                        files[path] = None if racy or content is None else _content_digest(content)
                    elif entry.is_dir(follow_symlinks=False) and not (entry.name == ".git" and not rel):
                        below.append(path)
                if len(dirs) > MAX_NEW_DIRS and tops != [""]:
                    raise _Walk("too many new directories")
            if opaque:
                if tops != [""]:
                    raise _Walk("a repository or an unreadable .gitignore among the new directories")
                return {"opaque": opaque}
            excluded = self.excluded(below)
            ignored.update(excluded)
            level = [p for p in below if p not in excluded]
        return {"dirs": dirs, "names": names, "ignore_files": files}

    def excluded(self, paths: list[str]) -> set[str]:
        """Which of `paths` (directories) git's ignore rules exclude."""
        if not paths:
            return set()
        out = self.git("check-ignore", "-z", "--stdin", "--no-index",
                       stdin=b"".join(os.fsencode(p) + b"\0" for p in paths), ok=(0, 1))
        return {p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p}

    def git(self, *args: str, stdin: bytes | None = None, ok: tuple[int, ...] = (0,)) -> bytes:
        try:
            code, out = _run(["git", "-C", self.root, *args], self.env, stdin)
        except (OSError, TimeoutError):
            raise _Walk(f"git {args[0]} did not answer") from None
        if code not in ok:
            raise _Walk(f"git {args[0]} failed")
        return out


def _touched(names: list[str]) -> set[str]:
    """The directories whose entries or times may have changed, from the paths a monitor saw change: each path
    (a directory itself) and its parent."""
    found = {""}
    for name in names:
        found.add(name)
        found.add(_parent(name))
    return found


def _read(path: str, started: int) -> tuple[bytes | None, bool]:
    """A file's content (None: there is none) and whether its change time is too close to `started` to trust."""
    try:
        with open(path, "rb") as handle:
            found = os.fstat(handle.fileno())
            return handle.read(), found.st_ctime_ns >= started - RACY_NS
    except (FileNotFoundError, NotADirectoryError):
        return None, False


def _digest(path: str) -> bytes | None:
    content, _racy = _read(path, 0)
    return None if content is None else _content_digest(content)


def _content_digest(content: bytes) -> bytes:
    return blake2b(content, digest_size=20).digest()


def _latest(stamps: bytes, default: int) -> int:
    """The latest change time among packed stamps."""
    if sys.byteorder == "little":
        return max(memoryview(stamps).cast("q")[1::3], default=default)  # read in place, no tuple per stamp
    return max((ctime for _, ctime, _ in _PACKED.iter_unpack(stamps)), default=default)


def _names(entries: list[os.DirEntry[str]]) -> bytes:
    """A digest of a directory's entries: their names, and which are directories."""
    listed = sorted(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name for e in entries)
    return blake2b("\0".join(listed).encode("utf-8", "surrogateescape"), digest_size=_NAMED).digest()


def _snapshot(dirs: Mapping[str, _Stamp], names: Mapping[str, bytes], started: int, ignored: list[str],
              ignore_files: dict[str, bytes | None], untracked: list[str], staged: list[str]) -> dict:
    # a directory changed close to now (or to the latest change any directory shows, for a file system whose
    # clock is not this machine's) may change again without its times moving: it is read again next time
    latest = max((found[1] for found in dirs.values()), default=started)
    racy = min(started, latest) - RACY_NS
    listed = sorted(dirs)
    return {
        "dirs": listed,
        "stamps": b"".join(_PACKED.pack(*dirs[rel]) if dirs[rel][1] < racy else _RACY for rel in listed),
        "names": b"".join(names[rel] for rel in listed),
        "ignored": ignored,
        "ignore_files": ignore_files,
        "untracked": untracked,
        "staged": staged,
    }


def _load(path: str, key: bytes) -> dict | None:
    try:
        with open(path, "rb") as handle:
            snapshot = marshal.loads(handle.read())  # load() reads the file piece by piece: four times slower
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(snapshot, dict) or snapshot.get("version") != _VERSION or snapshot.get("key") != key:
        return None
    return snapshot


def _save(path: str, snapshot: dict) -> None:
    """Best effort: a snapshot not written costs the next listing git's walk."""
    snapshot["version"] = _VERSION
    _watchman.keep(path, snapshot)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
