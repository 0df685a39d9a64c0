"""What changed in a working tree since a gate, as a running watchman server (facebook/watchman) saw it.

Without a file-system monitor a gate stats every tracked file (git's `diff-index`) and every directory (the
untracked listing, truthplane.git.untracked) to know what changed: on a large repository most of what a one-file
gate costs beyond its tools. With `[gate] watchman = true` and watchman installed, the first such gate asks the
watchman server to watch the working tree (`watch-project`, in a process of its own: watchman reads the whole tree
once) and, once it does, leaves a note of the server's socket in the cache directory. From then on each gate asks
watchman what changed since the clock it kept, and stats, reads or asks git about only that.

Whatever watchman cannot vouch for costs the stat passes, never an answer: no note, a server that is gone, slow
(WAIT) or restarted since the clock (a "fresh instance"), or an answer this module cannot read.

Imports only what the standard library has built in (the untracked listing's own process loads this file by
path): JSON is read and written with the `_json` accelerator, not the json package (which imports re).
"""

from __future__ import annotations

import _json
import _socket  # socket's own: the socket module imports enum and selectors (collections with it)
import _thread
import marshal
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

WAIT = 1.0  # seconds a gate waits for watchman (its own sync included) before it stats the tree itself
_NOTE_VERSION = 1


class Unanswered(Exception):
    """Watchman did not answer, or not in a way this module can trust."""


class _Reading:
    """What json.JSONDecoder gives the C scanner: strict JSON, plain dicts and numbers."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = None
    memo: dict = {}


_scan = _json.make_scanner(_Reading())  # type: ignore[arg-type]  # a context, as JSONDecoder is


def _encoded(value: Any) -> str:
    """JSON for a request: strings, lists, dicts, numbers and booleans (what watchman's commands take)."""
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_encoded(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_encoded(k)}:{_encoded(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no JSON for {type(value).__name__}")


def note_file(snapshot_file: str) -> str:
    """Where the note of a working tree's watchman lives: beside its untracked listing's snapshot."""
    return snapshot_file.removesuffix(".snapshot") + ".watchman"


class Watchman:
    """The watchman server that watches a working tree: its socket, the root it watches, and where the working
    tree's top directory lies below that root ("" when it is the root)."""

    def __init__(self, sockname: str, watch: str, relative: str) -> None:
        self.sockname = sockname
        self.watch = watch
        self.relative = relative

    @classmethod
    def noted(cls, note: str, root: str) -> Watchman | None:
        """The server a note names for the working tree whose top directory is `root`; None without a note."""
        try:
            with open(note, "rb") as handle:
                found = marshal.loads(handle.read())
        except (OSError, EOFError, ValueError, TypeError):
            return None
        if not isinstance(found, dict) or found.get("version") != _NOTE_VERSION:
            return None
        if found.get("root") != os.path.realpath(root):
            return None
        sockname, watch, relative = found.get("sockname"), found.get("watch"), found.get("relative")
        if not (isinstance(sockname, str) and isinstance(watch, str) and isinstance(relative, str)):
            return None
        if _ignores_dirs(watch):
            return None
        return cls(sockname, watch, relative)

    def ask(self, request: list, wait: float = WAIT) -> dict:
        """Watchman's answer to one request (a command and its arguments); Unanswered if it gives none in `wait`
        seconds, or an error."""
        chunks: list[bytes] = []
        try:
            conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            try:
                conn.settimeout(wait)
                conn.connect(self.sockname)
                conn.sendall(_encoded(request).encode("ascii") + b"\n")
                while not chunks or not chunks[-1].endswith(b"\n"):
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        raise Unanswered("watchman closed the connection")
                    chunks.append(chunk)
            finally:
                conn.close()
        except OSError as exc:  # no server, refused, timed out
            raise Unanswered(str(exc)) from None
        try:
            answer, _end = _scan(b"".join(chunks).decode("utf-8"), 0)
        except (UnicodeDecodeError, ValueError, StopIteration):
            raise Unanswered("an answer that is no JSON") from None
        if not isinstance(answer, dict) or "error" in answer or "unilateral" in answer:
            raise Unanswered(str(answer.get("error") if isinstance(answer, dict) else "no object"))
        return answer

    def _query(self, expression: dict) -> dict:
        if self.relative:
            expression["relative_root"] = self.relative
        expression["sync_timeout"] = int(WAIT * 1000)
        return self.ask(["query", self.watch, expression])

    def clock(self) -> str:
        """The server's clock for the watched root now, once it has seen every change made before this call."""
        answer = self.ask(["clock", self.watch, {"sync_timeout": int(WAIT * 1000)}])
        found = answer.get("clock")
        if not isinstance(found, str):
            raise Unanswered("no clock")
        return found

    def since(self, clock: str) -> tuple[str, list[str], set[str]]:
        """(the clock now, every path below the top directory that was created, changed or removed since `clock`,
        directories included, and which of those are directories now). Unanswered where watchman cannot say: a
        server started again since, for one."""
        answer = self._query({"since": clock, "fields": ["name", "type", "exists"], "empty_on_fresh_instance": True})
        now, found = answer.get("clock"), answer.get("files")
        if answer.get("is_fresh_instance") or not isinstance(now, str) or not isinstance(found, list):
            raise Unanswered("watchman cannot say what changed since that clock")
        names: list[str] = []
        dirs: set[str] = set()
        for item in found:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                raise Unanswered("a path that is no string")
            if name == ".git" or name.startswith(".git/") or "/.git/" in name:
                continue  # a repository's own files (its index, say): no path of the working tree
            names.append(name)
            if item.get("type") == "d" and item.get("exists") is True:
                dirs.add(name)
        return now, names, dirs


def _ignores_dirs(watch: str) -> bool:
    """Whether the watched root's `.watchmanconfig` has watchman ignore directories (`ignore_dirs`), whose
    changes it would then not report: such a server cannot say what changed (or its configuration cannot be
    read)."""
    try:
        with open(os.path.join(watch, ".watchmanconfig"), "rb") as handle:
            content = handle.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    try:
        found, _end = _scan(content.decode("utf-8"), 0)
    except (UnicodeDecodeError, ValueError, StopIteration):
        return True
    return not isinstance(found, dict) or bool(found.get("ignore_dirs"))


def which(name: str, path: str | None = None) -> str | None:
    """shutil.which(name, path=path) for a plain command name (importing shutil costs the listing's process)."""
    for folder in (path if path is not None else os.environ.get("PATH", os.defpath)).split(os.pathsep):
        candidate = os.path.join(folder, name)
        if os.path.exists(candidate) and os.access(candidate, os.F_OK | os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def installed() -> bool:
    return which("watchman") is not None


def watch(root: str, note: str) -> int:
    """Have a watchman server (started if none runs) watch the working tree at `root`, wait for it to have read the
    tree, and leave the note gates use. Run by start_watching in a process of its own: 0 once the note is written."""
    import json
    import subprocess

    executable = which("watchman")
    if executable is None:
        return 1
    try:
        # a client of the server in WATCHMAN_SOCK (as watchman's own clients are), else of the user's own
        sockname = os.environ.get("WATCHMAN_SOCK") or json.loads(subprocess.run(
            [executable, "--no-pretty", "get-sockname"], capture_output=True, timeout=60).stdout)["sockname"]
        # watch-project answers once the server has read the whole tree: gates before then stat it themselves
        watched = Watchman(sockname, "", "").ask(["watch-project", os.path.realpath(root)], wait=3600)
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError, Unanswered):
        return 1
    where, relative = watched.get("watch"), watched.get("relative_path", "")
    if not isinstance(where, str) or not isinstance(relative, str):
        return 1
    keep(note, {"version": _NOTE_VERSION, "root": os.path.realpath(root), "sockname": sockname,
                      "watch": where, "relative": relative})
    return 0


def keep(path: str, content: dict) -> None:
    """Write `content` (marshalled) to `path` whole or not at all, through a file of this process and thread that
    is never a link. Best effort: what is not written costs the next gate the stat passes (or git's walk)."""
    folder = os.path.dirname(path)
    tmp = os.path.join(folder, f".{os.path.basename(path)}-{os.getpid()}-{_thread.get_ident()}")
    try:
        os.makedirs(folder, exist_ok=True)
        try:
            os.unlink(tmp)  # left by a process of the same number, killed while it wrote
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                marshal.dump(content, handle)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


def follow(root: str, note: str, wanted: bool) -> None:
    """What a gate does about `[gate] watchman` for the working tree at `root`: wanted, and no note yet, start
    watching it (once: a marker stands while it starts, PENDING seconds at most); not wanted, forget the note
    (watchman itself goes on watching: `watchman watch-del` ends that)."""
    if not wanted:
        for stale in (note, note + ".pending"):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
            except OSError:
                pass
        return
    if os.path.exists(note) or not installed():
        return
    import time

    marker = note + ".pending"
    try:
        if time.time() - os.stat(marker).st_mtime < PENDING:
            return
        os.unlink(marker)
    except FileNotFoundError:
        pass
    except OSError:
        return
    try:
        os.makedirs(os.path.dirname(note), exist_ok=True)
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        return  # another gate is starting it
    start_watching(root, note)


PENDING = 600.0


def start_watching(root: str, note: str) -> None:
    """Start watch() for `root` in a process of its own that outlives the caller (watchman's first read of a large
    tree takes seconds); nothing if watchman is not installed."""
    if not installed():
        return
    import subprocess

    try:
        subprocess.Popen(
            [sys.executable, "-I", "-S", __file__, "watch", root, note], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
    except OSError:
        pass


def _watch_main(root: str, note: str) -> int:
    try:
        return watch(root, note)
    finally:
        try:
            os.unlink(note + ".pending")
        except OSError:
            pass


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "watch":
        sys.exit(_watch_main(sys.argv[2], sys.argv[3]))
    sys.exit(2)
