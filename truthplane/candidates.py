"""Candidate patches: parse, normalise, dedupe, check and apply unified diffs.

Accepts diffs as `git diff`, `diff -u` and LLMs write them: ``` fences are stripped, prose around
the diff is ignored, a bare `@@` hunk header or wrong hunk line counts fall back to
`git apply --recount`. Applying is `git apply` (atomic: all files or none), never with
--unsafe-paths, and only after truthplane's own checks of every path the patch touches.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from truthplane.errors import ExitCode, TruthplaneError
from truthplane.models import Candidate

DEV_NULL = "/dev/null"
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_FENCE = re.compile(r"^```")  # at column 0: a fence in a hunk line starts with " ", "+" or "-"
_GIT_HEADER = re.compile(r"^diff --git (\S+) (\S+)")
# indentation is meaning in these files, so it survives normalisation
_INDENT_SENSITIVE = (".py", ".pyi", ".yml", ".yaml")
_SLASH_COMMENTS = (".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs")
# comments that tools obey: a candidate adding a noqa comment differs from the same one without it
_DIRECTIVE = re.compile(
    r"noqa|nosec|nosem|type:\s*ignore|pyright:|pragma|eslint|@ts-|pylint:|mypy:|ruff:|flake8:|fmt:|isort:|coding[:=]|^#!",
    re.IGNORECASE,
)


class CandidateError(TruthplaneError):
    """A candidate cannot be read or applied; the message says which and why."""


@dataclass
class HunkLine:
    kind: str  # " ", "+", "-"
    text: str
    old_no: int | None
    new_no: int | None


@dataclass
class Hunk:
    old_start: int
    new_start: int
    section: str
    lines: list[HunkLine] = field(default_factory=list)


@dataclass
class FilePatch:
    old_path: str  # as written in the diff, prefix included; DEV_NULL for a new file
    new_path: str
    hunks: list[Hunk] = field(default_factory=list)
    binary: bool = False
    new_mode: str | None = None
    symlink_target: str | None = None
    from_git: bool = False  # began with a `diff --git` line
    headers_seen: bool = False  # its ---/+++ lines were read


@dataclass
class ParsedDiff:
    text: str  # cleaned: fences stripped, bare hunk headers repaired, trailing newline
    files: list[FilePatch]
    needs_recount: bool = False


def clean_diff(diff: str) -> tuple[str, bool]:
    """Strip ``` fences and trailing blank lines; repair bare `@@` headers (then --recount is needed)."""
    lines = diff.split("\n")
    if all(line.endswith("\r") for line in lines if line):
        lines = [line[:-1] for line in lines]  # a CRLF transcript of a diff, not a diff of CRLF files
    if any(_FENCE.match(line) for line in lines):
        inside = False
        blocks: list[list[str]] = []
        current: list[str] = []
        for line in lines:
            if _FENCE.match(line):
                if inside:
                    blocks.append(current)
                    current = []
                inside = not inside
            elif inside:
                current.append(line)
        if inside:
            blocks.append(current)
        diffy = [b for b in blocks if any(ln.startswith(("@@", "--- ", "diff --git")) for ln in b)]
        lines = [ln for block in diffy for ln in block]
    repaired = False
    for i, line in enumerate(lines):
        if line.startswith("@@") and not _HUNK.match(line):
            # an LLM's bare `@@`: git apply --recount finds the context anywhere in the file
            section = line[2:].split("@@", 1)[1] if "@@" in line[2:] else ""
            lines[i] = "@@ -1 +1 @@" + section
            repaired = True
    while lines and not lines[-1].strip():
        lines.pop()
    return ("\n".join(lines) + "\n" if lines else ""), repaired


def _header_path(value: str) -> str:
    """The path of a ---/+++ line: tab-separated timestamp dropped, quotes removed."""
    value = value.split("\t", 1)[0].rstrip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:  # git's C-style quoting: octal escapes of UTF-8 bytes
            value = value[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode()
        except (UnicodeError, ValueError):
            raise CandidateError(f"cannot read the quoted path {value[:80]}") from None
    return value


def _is_file_header(lines: list[str], i: int) -> bool:
    return lines[i].startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ ")


def parse_diff(diff: str) -> ParsedDiff:
    """A unified diff as file patches. Raises CandidateError when it is not one."""
    text, needs_recount = clean_diff(diff)
    lines = text.split("\n")[:-1] if text else []
    files: list[FilePatch] = []
    current: FilePatch | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        git = _GIT_HEADER.match(line)
        if git:
            current = FilePatch(git.group(1), git.group(2), from_git=True)
            files.append(current)
        elif _is_file_header(lines, i):
            old, new = _header_path(line[4:]), _header_path(lines[i + 1][4:])
            if current is not None and current.from_git and not current.hunks and not current.headers_seen:
                current.old_path, current.new_path = old, new
            else:
                current = FilePatch(old, new)
                files.append(current)
            current.headers_seen = True
            i += 2
            continue
        elif current is not None and line.startswith(("GIT binary patch", "Binary files ")):
            current.binary = True
        elif current is not None and line.startswith(("new file mode ", "new mode ")):
            current.new_mode = line.rsplit(" ", 1)[1]
        elif current is not None and line.startswith("deleted file mode"):
            current.new_path = DEV_NULL
        elif current is not None and line.startswith("rename from "):
            current.old_path = "a/" + line[len("rename from "):]
        elif current is not None and line.startswith("rename to "):
            current.new_path = "b/" + line[len("rename to "):]
        elif line.startswith("@@"):
            match = _HUNK.match(line)
            if current is None or match is None:
                raise CandidateError(f"hunk header without a file header, or malformed: {line[:80]!r}")
            i, recount = _read_hunk(lines, i + 1, match, current)
            needs_recount = needs_recount or recount
            continue
        i += 1
    if not files:
        raise CandidateError("no file changes found (expected ---/+++ headers and @@ hunks)")
    for patch in files:
        if patch.new_path == DEV_NULL and patch.old_path == DEV_NULL:
            raise CandidateError("a file patch has /dev/null on both sides")
        if patch.new_mode == "120000" and patch.hunks:
            added = [ln.text for h in patch.hunks for ln in h.lines if ln.kind == "+"]
            patch.symlink_target = added[0] if added else None
    return ParsedDiff(text, files, needs_recount)


def _read_hunk(lines: list[str], i: int, match: re.Match[str], patch: FilePatch) -> tuple[int, bool]:
    old_start, new_start = int(match.group(1)), int(match.group(3))
    old_left = int(match.group(2)) if match.group(2) is not None else 1
    new_left = int(match.group(4)) if match.group(4) is not None else 1
    hunk = Hunk(old_start, new_start, match.group(5).strip())
    patch.hunks.append(hunk)
    old_no, new_no = old_start, new_start
    recount = False
    while i < len(lines):
        line = lines[i]
        if line.startswith("\\"):
            i += 1
            continue
        counted = old_left > 0 or new_left > 0
        header = line.startswith("@@") or _GIT_HEADER.match(line) is not None
        ended = header or line in ("", "-- ") or _is_file_header(lines, i)  # "-- ": a format-patch signature
        if not counted and (ended or line[:1] not in ("+", "-", " ")):
            break
        # a ---/+++ pair followed by @@ is the next file even if this hunk's counts are not used up
        next_file = _is_file_header(lines, i) and i + 2 < len(lines) and lines[i + 2].startswith("@@")
        if counted and (header or next_file or (line != "" and line[:1] not in ("+", "-", " "))):
            recount = True  # the header promised more lines than there are
            break
        if not counted:
            recount = True  # more lines than the header promised
        kind, text = (line[0], line[1:]) if line else (" ", "")
        hunk.lines.append(HunkLine(kind, text, old_no if kind != "+" else None, new_no if kind != "-" else None))
        if kind != "+":
            old_no += 1
            old_left -= 1
        if kind != "-":
            new_no += 1
            new_left -= 1
        i += 1
    if old_left > 0 or new_left > 0:
        recount = True
    return i, recount


def strip_level(files: list[FilePatch], root: Path | None = None) -> int:
    """The -p level: 1 for a/ b/ style (and `diff -u old/ new/`), 0 for bare paths."""
    named = [p for f in files for p in (f.old_path, f.new_path) if p != DEV_NULL]
    if named and all("/" in p for p in named):
        if root is None:
            return 1
        existing = [f.old_path for f in files if f.old_path != DEV_NULL]
        if all(_strip(p, 1) and (root / _strip(p, 1)).exists() for p in existing):
            return 1
        if existing and all((root / p).exists() for p in existing):
            return 0
        return 1
    return 0


def _strip(path: str, level: int) -> str:
    parts = path.split("/")
    return "/".join(parts[level:]) if len(parts) > level else ""


def touched_paths(parsed: ParsedDiff, level: int) -> list[str]:
    """Repo-relative paths a patch creates, modifies or deletes (both sides of a rename)."""
    seen: list[str] = []
    for patch in parsed.files:
        for side in (patch.old_path, patch.new_path):
            rel = _strip(side, level) if side != DEV_NULL else ""
            if rel and rel not in seen:
                seen.append(rel)
    return seen


# ---- normalising ---------------------------------------------------------------------------------


def code_part(line: str, suffix: str) -> tuple[str, str]:
    """(code, comment) of one line: `#` comments for Python-like files, `//` and `/*` for JS/TS.

    Quotes on the line are tracked, so a `#` inside a string is code; a line inside a multi-line
    string is read as code too.
    """
    markers = ("//", "/*") if suffix in _SLASH_COMMENTS else ("#",)
    quote = ""
    i = 0
    while i < len(line):
        char = line[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if line.startswith(quote, i):
                i += len(quote)
                quote = ""
                continue
        elif line.startswith(('"""', "'''"), i):
            quote = line[i:i + 3]
            i += 3
            continue
        elif char in "\"'`":
            quote = char
        elif any(line.startswith(marker, i) for marker in markers):
            return line[:i], line[i:]
        i += 1
    return line, ""


def _normal_line(text: str, suffix: str) -> str:
    code, comment = code_part(text, suffix)
    body = re.sub(r"\s+", "", code) + (re.sub(r"\s+", "", comment) if _DIRECTIVE.search(comment) else "")
    if not body:
        return ""
    if suffix in _INDENT_SENSITIVE:
        indent = len(code) - len(code.lstrip())
        return f"{len(code[:indent].expandtabs(8))}|{body}"
    return body


def normalise_diff(diff: str) -> str:
    """A canonical form: per file, the changed lines with whitespace and comments dropped.

    Each hunk's old and new sides are normalised (code, plus comments that tools obey such as
    `# noqa`; whitespace removed inside a line, indentation kept as a width for Python and YAML) and
    compared again, so a change that only touches whitespace or ordinary comments vanishes. Every change group is anchored by the normalised line
    before it, so the same edit in two places stays two edits. Files are sorted by path.
    """
    parsed = parse_diff(diff)
    level = strip_level(parsed.files)
    blocks = []
    for patch in parsed.files:
        old = _strip(patch.old_path, level) if patch.old_path != DEV_NULL else DEV_NULL
        new = _strip(patch.new_path, level) if patch.new_path != DEV_NULL else DEV_NULL
        suffix = PurePosixPath(new if new != DEV_NULL else old).suffix
        out = [f"F {old} -> {new}" + (f" mode {patch.new_mode}" if patch.new_mode else "")]
        if patch.binary:
            out.append("B " + hashlib.sha256(diff.encode("utf-8", "surrogateescape")).hexdigest())
        for hunk in patch.hunks:
            before = [n for ln in hunk.lines if ln.kind != "+" and (n := _normal_line(ln.text, suffix))]
            after = [n for ln in hunk.lines if ln.kind != "-" and (n := _normal_line(ln.text, suffix))]
            matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
            for tag, i1, i2, j1, j2 in matcher.get_opcodes():
                if tag == "equal":
                    continue
                out.append("@ " + (before[i1 - 1] if i1 else ""))
                out.extend("-" + line for line in before[i1:i2])
                out.extend("+" + line for line in after[j1:j2])
        blocks.append("\n".join(out))
    return "\n".join(sorted(blocks)) + "\n"


def diff_size(diff: str) -> int:
    """Changed lines in the normalised form (whitespace- and comment-only changes count 0)."""
    return sum(1 for line in normalise_diff(diff).splitlines() if line[:1] in ("+", "-"))


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
    rel = _strip(side, level)
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
            link = _strip(patch.new_path, level)
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
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as exc:
            raise PatchFileError(f"cannot read candidate patch {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise PatchFileError(f"candidate patch {path} is not UTF-8 text") from None
        if not text.strip():
            raise PatchFileError(f"candidate patch {path} is empty")
        candidates.append(Candidate(id=str(path), source="patch", title=f"patch file {path}", diff=text))
    return candidates
