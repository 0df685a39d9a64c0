"""What a gate reads of the change itself, besides the findings: the changed files' contents on both sides,
the suppressions the change adds to them (truthplane.truth.suppressions), and the verifiers whose configuration
files it changes, with a tree of the head's code under the base's configuration to tell their effect apart."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from truthplane.config import Config, parse_config
from truthplane.errors import ConfigError, GitError
from truthplane.models import Finding
from truthplane.truth.sources import Source
from truthplane.truth.suppressions import added_directives, added_suppressions, normal_code, silenced_code
from truthplane.verifiers.interface import Verifier
from truthplane.git.repo import Repo

MAX_READ_BYTES = 4 * 1024 * 1024  # a larger file is data, not code someone annotates


def changed_paths(base: Source, head: Source) -> list[str]:
    """Files the head adds or whose content differs from the base's."""
    return head.changed_from(base)


def read_blobs(repo: Repo, blobs: list[str]) -> dict[str, bytes]:
    """The content of each blob git has (one `git cat-file --batch` for all); a missing one is left out."""
    wanted = sorted(set(blobs))
    if not wanted:
        return {}
    try:
        proc = subprocess.run(["git", "cat-file", "--batch"], cwd=repo.root, input="\n".join(wanted).encode() + b"\n",
                              capture_output=True, check=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitError(f"cannot read the changed files from git: {exc}") from None
    out, found, at = proc.stdout, {}, 0
    for blob in wanted:
        end = out.index(b"\n", at)
        header = out[at:end].split()
        at = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            found[blob] = out[at:at + size]
            at += size + 1
    return found


def _text(content: bytes | None) -> str | None:
    if content is None or len(content) > MAX_READ_BYTES or b"\0" in content:
        return None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _texts(repo: Repo, base: Source, head: Source, worktree: Path | None,
           paths: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """path -> (base text, head text) for `paths`; None for a side without the file, or not text there."""
    blobs = [base.files[p] for p in paths if p in base.files]
    if worktree is None:
        blobs += [head.files[p] for p in paths if p in head.files]
    contents = read_blobs(repo, blobs)
    texts = {}
    for path in paths:
        after: str | None = None
        if path in head.files:
            if worktree is None:
                after = _text(contents.get(head.files[path]))
            else:
                full = worktree / path
                try:
                    after = None if full.is_symlink() else _text(full.read_bytes())
                except OSError:
                    after = None
        before = _text(contents.get(base.files[path])) if path in base.files else None
        texts[path] = (before, after)
    return texts


def changed_contents(
    repo: Repo, base: Source, head: Source, worktree: Path | None
) -> list[tuple[str, str | None, str]]:
    """(path, base text or None for a new file, head text) of each changed text file. `worktree` is where the
    head's files are when the head is the working tree (its changed files are not in git's objects)."""
    texts = _texts(repo, base, head, worktree, changed_paths(base, head))
    return [(path, before, after) for path, (before, after) in texts.items() if after is not None]


class _EitherListing:
    """Every path of the base or the head, gone through by the verifiers that ask (audits) and by nobody else:
    a large tree's listings are not joined for a gate with no audit."""

    def __init__(self, base: Source, head: Source) -> None:
        self._base, self._head = base, head

    def __iter__(self) -> Iterator[str]:
        yield from self._base.files
        yield from (p for p in self._head.changed_from(self._base) if p not in self._base.files)


def unchanged_audits(repo: Repo, verifiers: list[Verifier], base: Source, head: Source,
                     worktree: Path | None) -> dict[str, list[str]]:
    """The audits (Verifier.dependency_files) whose dependency declarations the change leaves as they were,
    with the files they read: a gate need not run them."""
    unchanged = {}
    paths = _EitherListing(base, head)
    for verifier in verifiers:
        declaring = verifier.dependency_files(paths)
        if declaring is None:
            continue
        touched = [p for p in declaring if base.files.get(p) != head.files.get(p)]
        texts = _texts(repo, base, head, worktree, touched) if touched else {}
        if all(verifier.dependency_state(p, before) == verifier.dependency_state(p, after)
               for p, (before, after) in texts.items()):
            unchanged[verifier.instance_name] = declaring
    return unchanged


def suppressed_by_change(changed: list[tuple[str, str | None, str]]) -> Callable[[Finding], bool]:
    """Whether a base finding's flagged line is one the change put a suppression directive on: then the tool
    (ruff, bandit, semgrep report no such results at all) no longer reports it, but the code still has it."""
    silenced: dict[str, tuple[list[str], set[str]]] = {}
    for path, before, after in changed:
        lines = [number for _, number in added_directives(path, before, after)]
        if lines and before is not None:
            silenced[path] = (before.splitlines(), silenced_code(path, after, lines))

    def is_silenced(finding: Finding) -> bool:
        base_lines, codes = silenced.get(finding.path, ([], set()))
        line = finding.start_line or 0
        suffix = PurePosixPath(finding.path).suffix
        return 0 < line <= len(base_lines) and normal_code(base_lines[line - 1], suffix) in codes

    return is_silenced


def suppression_reasons(changed: list[tuple[str, str | None, str]]) -> list[str]:
    """One reason per suppression the change adds, naming file and line."""
    return [reason for path, before, after in changed for reason in added_suppressions(path, before, after)]


def config_changes(repo: Repo, verifiers: list[Verifier], base: Source, head: Source,
                   worktree: Path | None) -> dict[str, list[str]]:
    """Verifier name -> the files configuring it (Verifier.configured_by) whose settings the change alters."""
    changed: dict[str, list[str]] = {}
    for verifier in verifiers:
        names = frozenset(verifier.configured_by())
        before, after = set(base.named(names)), set(head.named(names))
        touched = sorted({path for path, _ in before ^ after})
        texts = _texts(repo, base, head, worktree, touched) if touched else {}
        # a file that is text on neither side (binary, huge) cannot be read for settings: changed is changed
        altered = [p for p, (old, new) in texts.items() if (old is None and new is None)
                   or verifier.settings_state(p, old) != verifier.settings_state(p, new)]
        if altered:
            changed[verifier.instance_name] = altered
    return changed


def with_base_config(repo: Repo, base: Source, head: Source, config_paths: set[str], worktree: Path | None) -> Source:
    """The head's files with the base's version of `config_paths`: what the head's code gives under the
    configuration it came from. Built in a temporary directory from the base's tree and the head's changes."""
    files = {p: b for p, b in head.files.items() if p not in config_paths}
    files.update({p: base.files[p] for p in config_paths if p in base.files})
    to_write = sorted(p for p, b in files.items() if base.files.get(p) != b)
    to_remove = sorted(p for p in base.files if p not in files)
    base_commit = base.commit
    if base_commit is None:
        raise GitError("the base of a gate is a commit")

    @contextmanager
    def tree() -> Iterator[Path]:
        contents = {} if worktree is not None else read_blobs(repo, [files[p] for p in to_write])
        with repo.exported(base_commit) as directory:
            for path in to_remove:
                (directory / path).unlink(missing_ok=True)
            for path in to_write:
                target = directory / path
                target.parent.mkdir(parents=True, exist_ok=True)
                if worktree is not None:
                    shutil.copyfile(worktree / path, target, follow_symlinks=False)
                else:
                    target.write_bytes(contents.get(files[path], b""))
            yield directory

    return Source(dict(sorted(files.items())), tree, label="head with the base's configuration", commit=head.commit)


_GATE_SETTINGS = ("exclude", "severity", "verifiers")


def _truthplane_settings(path: str, text: str | None) -> dict[str, object] | None:
    """The settings of truthplane.toml or pyproject's [tool.truthplane] that decide what is judged."""
    if text is None:
        return {}
    try:
        raw: object = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    if path == "pyproject.toml":
        raw = raw.get("tool", {}).get("truthplane", {}) if isinstance(raw, dict) else {}
    return {key: raw.get(key) for key in _GATE_SETTINGS if key in raw} if isinstance(raw, dict) else {}


def _settings_changes(changed: list[tuple[str, str | None, str]]) -> list[tuple[str, dict[str, object], list[str]]]:
    """(file, the base's settings, the keys the change alters) for truthplane.toml, then [tool.truthplane]."""
    found = []
    for path, before, after in sorted(changed, key=lambda item: item[0] != "truthplane.toml"):
        if path not in ("truthplane.toml", "pyproject.toml"):
            continue
        old, new = _truthplane_settings(path, before), _truthplane_settings(path, after)
        if old is None or new is None:
            continue
        keys = [key for key in _GATE_SETTINGS if old.get(key) != new.get(key)]
        if keys:
            found.append((path, old, keys))
    return found


def gate_settings_reasons(changed: list[tuple[str, str | None, str]]) -> list[str]:
    """A change to how truthplane rates findings re-rates both sides alike, so no list shows it: it is named.
    (What a change to `exclude` or `verifiers` silences is counted: base_settings.)"""
    return [f"changes truthplane's `severity` in {path}: the gate rated both sides with the new ratings"
            for path, _, keys in _settings_changes(changed) if "severity" in keys]


def base_settings(changed: list[tuple[str, str | None, str]], config: Config) -> tuple[Config, str] | None:
    """`config` with the base's `exclude` and `verifiers` where the change alters them, and the file that
    says so; None when it alters neither (or the base's settings do not validate)."""
    for path, old, keys in _settings_changes(changed):
        keys = [key for key in keys if key != "severity"]
        if not keys:
            continue
        try:
            parsed = parse_config(dict(old), f"the base's {path}")
        except ConfigError:
            return None
        return config.model_copy(update={key: getattr(parsed, key) for key in keys}), path
    return None


@dataclass(frozen=True)
class ChangeReview:
    """What the change does besides its findings: `reasons` that hold it for REVIEW (suppressions added,
    truthplane's own settings changed), which base findings it put under a directive, and which verifiers'
    configuring files it alters (verifier -> files)."""

    reasons: list[str]
    suppressed: Callable[[Finding], bool]
    config: dict[str, list[str]]
    settings: tuple[Config, str] | None = None  # the base's own exclude/verifiers, where the change alters them


def review_change(repo: Repo, verifiers: list[Verifier], base: Source, head: Source,
                  worktree: Path | None, config: Config) -> ChangeReview:
    changed = changed_contents(repo, base, head, worktree)
    return ChangeReview(
        suppression_reasons(changed) + gate_settings_reasons(changed), suppressed_by_change(changed),
        config_changes(repo, verifiers, base, head, worktree), base_settings(changed, config),
    )
