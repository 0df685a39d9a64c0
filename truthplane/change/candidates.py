"""Candidate patches: dedupe, check and apply them.

Parsing and normalising live in unified_diff.py. Applying is `git apply` (atomic: all files or none),
never with --unsafe-paths, and only after truthplane's own checks of every path the patch touches.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path, PurePosixPath

from truthplane.errors import ExitCode
from truthplane.change.fixes import Candidate
from truthplane.files import MAX_INPUT_BYTES, read_regular_file
from truthplane.change.patch import (
    DEV_NULL,
    CandidateError,
    FilePatch,
    Hunk,
    HunkLine,
    ParsedDiff,
    code_part,
    diff_size,
    normalise_diff,
    parse_diff,
    strip_level,
    strip_prefix,
    touched_paths,
)

__all__ = [
    "DEV_NULL", "CandidateError", "FilePatch", "Hunk", "HunkLine", "PatchFileError", "apply_candidate", "check_patch",
    "code_part", "dedupe", "diff_size", "parse_diff", "patch_file_candidates", "strip_level",
]


def dedupe(candidates: list[Candidate]) -> list[Candidate]:
    """Merge candidates whose normalised diffs are equal: the first stays, the others' ids go to also_from.

    A diff that does not parse is kept as it is (check_patch will say why it is rejected).
    """
    kept: list[Candidate] = []
    by_form: dict[str, int] = {}
    for candidate in candidates:
        try:
            form = normalise_diff(candidate.diff)
        except CandidateError:
            kept.append(candidate)
            continue
        if form in by_form:
            first = kept[by_form[form]]
            kept[by_form[form]] = first.model_copy(
                update={"also_from": [*first.also_from, candidate.id, *candidate.also_from]}
            )
        else:
            by_form[form] = len(kept)
            kept.append(candidate)
    return kept



# ---- checking and applying -----------------------------------------------------------------------


class PatchFileError(CandidateError):
    """A --candidate file cannot be read: a usage error."""

    exit_code = ExitCode.USAGE


def _is_binary_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return b"\0" in handle.read(8000)  # git's own test for binary content
    except OSError:
        return False


def _leaves(root: Path, rel: str) -> bool:
    """Does `rel` (or a symlink on the way to it) resolve outside root?"""
    real_root = root.resolve()
    current = root
    for part in PurePosixPath(rel).parts:
        current = current / part
        if current.is_symlink() and not current.resolve().is_relative_to(real_root):
            return True
    return False


def _side_reason(root: Path, patch: FilePatch, side: str, level: int) -> str | None:
    rel = strip_prefix(side, level)
    parts = PurePosixPath(rel).parts
    if side.startswith("/") or rel.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", rel) or ".." in parts:
        return f"touches a path outside the repository: {side}"
    if not rel or "\\" in rel:
        return f"names a path truthplane cannot place in the repository: {side!r}"
    if ".git" in parts:
        return f"touches git's own files: {rel}"
    if _leaves(root, rel):
        return f"touches {rel} through a symlink that leaves the repository"
    if patch.binary or _is_binary_file(root / rel):
        return f"edits a binary file: {rel}"
    return None


def path_reasons(root: Path, parsed: ParsedDiff, level: int) -> list[str]:
    """Why the patch's paths are unacceptable (one reason per file): outside the repo, inside .git,
    through a symlink that leaves the repo, binary. [] when fine."""
    reasons: list[str] = []
    for patch in parsed.files:
        sides = [side for side in (patch.old_path, patch.new_path) if side != DEV_NULL]
        found = next((r for side in dict.fromkeys(sides) if (r := _side_reason(root, patch, side, level))), None)
        target = patch.symlink_target
        if found is None and target is not None and patch.new_path != DEV_NULL:
            link = strip_prefix(patch.new_path, level)
            inside = os.path.normpath(PurePosixPath(link).parent / target)
            if target.startswith("/") or inside == ".." or inside.startswith("../"):
                found = f"creates a symlink {link} -> {target} that leaves the repository"
        if found:
            reasons.append(found)
    return list(dict.fromkeys(reasons))


def _git_apply(cwd: Path, parsed: ParsedDiff, level: int, *, check: bool) -> str | None:
    """Run `git apply` (plain, then --recount); None when it applied, else git's reason."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    # stop repository discovery at cwd: a directory inside someone else's repo is still its own root
    env.update(LC_ALL="C", GIT_CEILING_DIRECTORIES=str(cwd.resolve().parent), GIT_CONFIG_NOSYSTEM="1")
    # LLM hunks often have wrong counts, or context on one side only, which git otherwise pins to the
    # start or end of the file; --unidiff-zero lifts that pin, so it is the last resort
    attempts = [["--recount"], ["--recount", "--unidiff-zero"]]
    if not parsed.needs_recount:
        attempts.insert(0, [])
    error = ""
    for extra in attempts:
        command = ["git", "apply", f"-p{level}", "--whitespace=nowarn", *extra, *(["--check"] if check else []), "-"]
        try:
            proc = subprocess.run(command, check=False, cwd=cwd, input=parsed.text.encode("utf-8", "surrogateescape"),
                                  capture_output=True, env=env, timeout=120)
        except FileNotFoundError:
            raise CandidateError("git is not installed: install git (apt-get install git)") from None
        except subprocess.TimeoutExpired:
            return "git apply took longer than 120 s"
        except OSError as exc:
            raise CandidateError(f"cannot run git apply: {exc.strerror}") from None
        if proc.returncode == 0:
            return None
        lines = [ln.strip() for ln in proc.stderr.decode(errors="replace").splitlines() if ln.strip()]
        errors = [ln.removeprefix("error: ") for ln in lines if ln.startswith("error:")]
        reason = "; ".join(dict.fromkeys(errors or lines[-1:])) or f"git apply exited {proc.returncode}"
        error = error or reason  # the strictest attempt's complaint is the clearest
    return error or "git apply failed"


def check_patch(root: Path, candidate: Candidate) -> list[str]:
    """Reasons to reject the candidate before running anything; [] means it applies cleanly to root."""
    try:
        parsed = parse_diff(candidate.diff)
    except CandidateError as exc:
        return [f"the diff does not parse: {exc}"]
    level = strip_level(parsed.files, root)
    reasons = path_reasons(root, parsed, level)
    if reasons:
        return reasons  # git is never run on a patch with unsafe paths
    error = _git_apply(root, parsed, level, check=True)
    return [f"does not apply: {error}"] if error else []


def apply_candidate(directory: Path, candidate: Candidate) -> list[str]:
    """Apply the candidate to `directory` (a temporary copy of the tree), all files or none.

    Returns the repo-relative POSIX paths it created, modified or deleted; raises CandidateError.
    """
    parsed = parse_diff(candidate.diff)
    level = strip_level(parsed.files, directory)
    reasons = path_reasons(directory, parsed, level)
    if reasons:
        raise CandidateError(f"candidate {candidate.id}: {reasons[0]}")
    error = _git_apply(directory, parsed, level, check=False)
    if error:
        raise CandidateError(f"candidate {candidate.id} does not apply: {error}")
    return touched_paths(parsed, level)


def patch_file_candidates(paths: list[Path]) -> list[Candidate]:
    """`--candidate fix.diff` files as candidates; the id is the path as given."""
    candidates = []
    for path in paths:
        try:  # a FIFO or /dev/zero is refused before a byte is read
            text = read_regular_file(path, MAX_INPUT_BYTES, PatchFileError).decode("utf-8")
        except PatchFileError as exc:
            raise PatchFileError(f"candidate patch {exc}") from None
        except UnicodeDecodeError:
            raise PatchFileError(f"candidate patch {path} is not UTF-8 text") from None
        if not text.strip():
            raise PatchFileError(f"candidate patch {path} is empty")
        candidates.append(Candidate(id=str(path), source="patch", title=f"patch file {path}", diff=text))
    return candidates
