"""Unified diffs as truthplane reads them: parse, clean, normalise and measure.

Accepts diffs as `git diff`, `diff -u` and LLMs write them: ``` fences are stripped, prose around
the diff is ignored, a bare `@@` hunk header or wrong hunk line counts are marked for
`git apply --recount`. Normalising (whitespace, comments that tools do not obey) is what makes two
candidates that differ only in form count as one.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from truthplane.errors import TruthplaneError
from truthplane.truth.suppressions import code_part

DEV_NULL = "/dev/null"
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(.*)$")
_FENCE = re.compile(r"^```")  # at column 0: a fence in a hunk line starts with " ", "+" or "-"
_GIT_HEADER = re.compile(r"^diff --git (\S+) (\S+)")
# indentation is meaning in these files, so it survives normalisation
_INDENT_SENSITIVE = (".py", ".pyi", ".yml", ".yaml")
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
    if lines and lines[-1] == "":
        lines.pop()  # the last line's terminator, not a line: a blank context line is never written as nothing
    while lines and not lines[-1].strip() and (repaired or not _needed_by_last_hunk(lines)):
        lines.pop()
    return ("\n".join(lines) + "\n" if lines else ""), repaired


def _needed_by_last_hunk(lines: list[str]) -> bool:
    """Is the blank last line a context line the last hunk's counts call for (a blank line at a hunk's end, as
    difflib and git write it), rather than trailing whitespace after the diff?"""
    if lines[-1][:1] not in ("", " "):
        return False
    start = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].startswith("@@")), None)
    if start is None:
        return False
    match = _HUNK.match(lines[start])
    if match is None:
        return False
    old_left = int(match.group(2)) if match.group(2) is not None else 1
    new_left = int(match.group(4)) if match.group(4) is not None else 1
    for line in lines[start + 1:]:
        kind = line[:1] or " "
        if kind not in " -+\\":
            return False  # the hunk ended before this line: what follows is not its body
        old_left -= kind in " -"
        new_left -= kind in " +"
    return old_left >= 0 and new_left >= 0


def _header_path(value: str) -> str:
    """The path of a ---/+++ line: tab-separated timestamp dropped, quotes removed."""
    value = value.split("\t", 1)[0].rstrip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        try:  # git's C-style quoting: octal escapes of UTF-8 bytes
            value = (
                value[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode()
            )
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
        if all(strip_prefix(p, 1) and (root / strip_prefix(p, 1)).exists() for p in existing):
            return 1
        if existing and all((root / p).exists() for p in existing):
            return 0
        return 1
    return 0


def strip_prefix(path: str, level: int) -> str:
    parts = path.split("/")
    return "/".join(parts[level:]) if len(parts) > level else ""


def touched_paths(parsed: ParsedDiff, level: int) -> list[str]:
    """Repo-relative paths a patch creates, modifies or deletes (both sides of a rename)."""
    seen: list[str] = []
    for patch in parsed.files:
        for side in (patch.old_path, patch.new_path):
            rel = strip_prefix(side, level) if side != DEV_NULL else ""
            if rel and rel not in seen:
                seen.append(rel)
    return seen


# ---- normalising ---------------------------------------------------------------------------------


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
    compared again, so a change that only touches whitespace or ordinary comments vanishes. Every change group is
    anchored by the normalised line before it, so the same edit in two places stays two edits. Files are sorted by path.
    """
    parsed = parse_diff(diff)
    level = strip_level(parsed.files)
    blocks = []
    for patch in parsed.files:
        old = strip_prefix(patch.old_path, level) if patch.old_path != DEV_NULL else DEV_NULL
        new = strip_prefix(patch.new_path, level) if patch.new_path != DEV_NULL else DEV_NULL
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
