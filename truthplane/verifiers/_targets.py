"""Which files semgrep's own walk of a repository scans, learned from semgrep itself.

semgrep applies `.semgrepignore` files (and its default ignores, where the repository has none at its root) to
the files it finds under a directory, but not to a file named on its command line. A gate on a few changed files
must agree with a whole scan, so it cannot simply name them: it hands semgrep their directories with an
`--include` per file. semgrep then walks the whole project (it looks for a `.semgrepignore` in every directory)
to scan one file: 0.65 s on a repository of 28,000 Python files, where the file named directly takes 0.15 s.

So truthplane remembers what semgrep decided. Whether semgrep's walk selects a file depends on its path, on the
`.semgrepignore` files in the directories above it (and what they `:include`), and on semgrep itself: its
version, its options and its rules. A decision is kept under a digest of exactly these, its "context"
(`.gitignore` files above the file count too, though semgrep ignores them for tracked files: a changed one costs
a walk, never a wrong decision). A file whose decision is known is named directly when semgrep's walk scans it
and left out when it does not; only the others go through the walk, which teaches their decisions for next time.

A decision is learned only from what semgrep reported: the files its walk scanned, and those it skipped for a
path rule (never for size, binary content or an error: those are no property of the path, and a file named
directly is held to the size limit anyway). Nothing here changes what semgrep reports; the memo only ever
spares it a walk. It lives beside the result cache (`semgrep-targets.sqlite3`); a memo that cannot be read or
written costs a walk, never a result.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

IGNORE_FILES = (".semgrepignore", ".gitignore")
# the reasons semgrep gives for a file its walk found and did not scan that depend on the path alone
PATH_REASONS = frozenset({"semgrepignore_patterns_match", "cli_include_flags_do_not_match", "cli_exclude_flags_match"})
DEFAULT_MAX_TARGET_BYTES = 1_000_000
KEPT_DECISIONS = 500_000
# options under which what semgrep selects depends on more than a path and the ignore files above it (a file's
# content, the directory its ignore files are read from, untracked files' .gitignore): no decision is kept
_UNKEYED_OPTIONS = ("--exclude-minified-files", "--scan-unknown-extensions", "--no-git-ignore", "--project-root")
_BATCH = 500
# the answers a process has read, by the contexts asked about: a gate's launch ahead and its verifier asking the
# same question get the same answer (and so the same command line), until the memo learns something new
_memo_lock = threading.Lock()
_DECIDED: dict[tuple[str, tuple[bytes, ...]], dict[bytes, bool]] = {}


def max_target_bytes(args: list[str]) -> int | None:
    """The size limit semgrep's options set (its default if none); None: not readable from them."""
    limit: int | None = DEFAULT_MAX_TARGET_BYTES
    for n, arg in enumerate(args):
        value: str | None = None
        if arg.startswith("--max-target-bytes="):
            value = arg.split("=", 1)[1]
        elif arg == "--max-target-bytes":
            value = args[n + 1] if n + 1 < len(args) else None
        else:
            continue
        try:
            limit = int(value) if value is not None else None
        except ValueError:
            limit = None
    return limit


class TargetMemo:
    """semgrep's decisions on files of a repository, kept in `path` (SQLite), under one semgrep setup: `inputs`, its
    command line's values (verifiers._commands.Recipe), and `tool`, the installed semgrep (tool_identity)."""

    def __init__(self, path: Path, inputs: dict[str, Any], tool: str | None) -> None:
        self.path = path
        self.tool = tool
        self.inputs = inputs
        self.args = [str(a) for a in inputs.get("args", [])]
        self.limit = max_target_bytes(self.args)
        self.usable = not any(a.split("=", 1)[0] in _UNKEYED_OPTIONS for a in self.args)

    def salt(self) -> str | None:
        """semgrep's side of a context: the executable (its version), engine, options and rules; None when
        semgrep is not installed."""
        if self.tool is None:
            return None
        digest = hashlib.sha256(self.tool.encode())
        digest.update(repr((bool(self.inputs.get("native")), self.args)).encode())
        for rule in self.inputs.get("rules", []):
            for path in _rule_files(Path(rule)):
                # by content: a repository's own rules sit at another path in a commit's exported tree
                digest.update(b"\0rule\0" + _content_digest(path))
        return digest.hexdigest()

    def contexts(self, root: Path, files: Iterable[str], salt: str) -> dict[str, bytes]:
        """Each file's context: a digest of the salt, the file's path (and whether it is a symbolic link) and the
        ignore files above it."""
        chains: dict[str, bytes] = {}

        def chain(directory: str) -> bytes:
            found = chains.get(directory)
            if found is not None:
                return found
            parent = b"" if directory == "." else chain(str(PurePosixPath(directory).parent))
            digest = hashlib.sha256(parent or salt.encode())
            digest.update(b"\0dir\0" + os.fsencode(directory))
            folder = root / directory
            for name in IGNORE_FILES:
                content = _read(folder / name)
                digest.update(f"\0{name}\0".encode() + (b"-" if content is None else b"+" + content))
                if name == ".semgrepignore" and content:
                    for included in _includes(content):
                        for base in (folder, root):
                            extra = _read(base / included)
                            digest.update(b"\0include\0" + (b"-" if extra is None else b"+" + extra))
            chains[directory] = found = digest.digest()
            return found

        contexts = {}
        for rel in files:
            digest = hashlib.sha256(chain(str(PurePosixPath(rel).parent)))
            # a symbolic link is followed when named, and not where a walk finds it
            digest.update(b"\0file\0" + os.fsencode(rel) + (b"\0link" if os.path.islink(root / rel) else b""))
            contexts[rel] = digest.digest()
        return contexts

    def decided(self, root: Path, files: list[str]) -> dict[str, bool]:
        """What semgrep's walk decided for those of `files` it has been seen to decide: True scanned, False not."""
        if not self.usable or not files:
            return {}
        salt = self.salt()
        if salt is None:
            return {}
        contexts = self.contexts(root, files, salt)
        key = (str(self.path), tuple(sorted(contexts.values())))
        with _memo_lock:
            known = _DECIDED.get(key)
        if known is None:
            known = self._read(list(key[1]))
            with _memo_lock:
                if len(_DECIDED) > 16:
                    _DECIDED.clear()
                _DECIDED[key] = known
        return {rel: known[context] for rel, context in contexts.items() if context in known}

    def _read(self, contexts: list[bytes]) -> dict[bytes, bool]:
        known: dict[bytes, bool] = {}
        if not self.path.exists():
            return known
        try:
            with _connect(self.path) as conn:
                for start in range(0, len(contexts), _BATCH):
                    batch = contexts[start:start + _BATCH]
                    rows = conn.execute(
                        f"SELECT context, scanned FROM decided WHERE context IN ({','.join('?' * len(batch))})",
                        batch,
                    ).fetchall()
                    known.update((bytes(context), bool(scanned)) for context, scanned in rows)
        except sqlite3.Error:
            return {}
        return known

    def learn(self, root: Path, decisions: dict[str, bool]) -> None:
        """Keep what semgrep's walk decided for these files (their ignore files as they are now)."""
        if not self.usable or not decisions:
            return
        salt = self.salt()
        if salt is None:
            return
        contexts = self.contexts(root, decisions, salt)
        rows = [(contexts[rel], int(scanned)) for rel, scanned in decisions.items()]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _connect(self.path) as conn:
                conn.executemany("INSERT OR REPLACE INTO decided (context, scanned) VALUES (?, ?)", rows)
                newest = conn.execute("SELECT max(rowid) FROM decided").fetchone()[0] or 0
                if newest > KEPT_DECISIONS:
                    conn.execute("DELETE FROM decided WHERE rowid <= ?", (newest - KEPT_DECISIONS,))
        except (OSError, sqlite3.Error):
            return
        finally:
            with _memo_lock:
                _DECIDED.clear()

    def learn_from_walk(self, root: Path, walked: list[str], scanned: set[str], troubled: set[str]) -> None:
        """What a run that walked for `walked` (an --include each) says of them: scanned, or skipped. A file not
        scanned counts as skipped by a path rule only when it is within the size limit and no error names it."""
        decisions: dict[str, bool] = {}
        for rel in walked:
            if rel in scanned:
                decisions[rel] = True
            elif self.limit is not None and rel not in troubled:
                try:
                    size = (root / rel).stat().st_size
                except OSError:
                    continue
                if size <= self.limit:
                    decisions[rel] = False
        self.learn(root, decisions)


def _connect(path: Path) -> _Closing:
    conn = sqlite3.connect(path, timeout=2.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS decided (context BLOB NOT NULL UNIQUE, scanned INTEGER NOT NULL)")
    return _Closing(conn)


class _Closing:
    """A connection whose `with` block commits (autocommit here) and closes it."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _read(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:  # absent (the usual case), a directory, unreadable
        return None


def _includes(content: bytes) -> list[str]:
    """The files a .semgrepignore pulls in (`:include PATH`)."""
    found = []
    for line in content.decode("utf-8", "replace").splitlines():
        if line.startswith(":include"):
            name = line[len(":include"):].strip()
            if name:
                found.append(name)
    return found


_DIGESTS: dict[tuple[str, int, int, int], bytes] = {}


def _content_digest(path: Path) -> bytes:
    """A file's content digest, read again only when its size or modification time changes."""
    try:
        stat = path.stat()
    except OSError:
        return b"-"
    key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    found = _DIGESTS.get(key)
    if found is None:
        content = _read(path)
        found = b"-" if content is None else hashlib.sha256(content).digest()
        with _memo_lock:
            if len(_DIGESTS) > 256:
                _DIGESTS.clear()
            _DIGESTS[key] = found
    return found


def _rule_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    return [path]
