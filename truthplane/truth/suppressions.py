"""Suppression directives in source (`# noqa`, `# nosec`, `eslint-disable`, `@ts-ignore`, ...) and in ruff's
per-file-ignores: which ones a change adds. The gate names each one; the fix loop's tamper check
(truthplane.change.tamper) reads the same patterns.

A directive counts only in a comment (prose or a string that mentions noqa silences nothing), and only
as added when a file has more of it after the change than before, so moving or reformatting a line that
already carried one is not a new suppression.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections import Counter
from pathlib import PurePosixPath
from typing import Any


# label -> pattern, matched against a line's comment part
SUPPRESSIONS: dict[str, re.Pattern[str]] = {
    "# noqa": re.compile(r"#\s*noqa\b", re.IGNORECASE),
    "# ruff: noqa": re.compile(r"#\s*(ruff|flake8)\s*:\s*noqa\b", re.IGNORECASE),
    "# nosec": re.compile(r"#\s*nosec\b", re.IGNORECASE),
    "# type: ignore": re.compile(r"#\s*type\s*:\s*ignore\b"),
    "# pyright: ignore": re.compile(r"#\s*pyright\s*:\s*(ignore|basic)\b"),
    "# mypy: ignore-errors": re.compile(r"#\s*mypy\s*:\s*ignore-errors\b"),
    "# pylint: disable": re.compile(r"#\s*pylint\s*:\s*disable\b"),
    "# pragma: no cover": re.compile(r"#\s*pragma\s*:\s*no\s*cover\b", re.IGNORECASE),
    "nosemgrep": re.compile(r"(#|//|/\*)\s*nosem(grep)?\b"),
    "eslint-disable": re.compile(r"(//|/\*)\s*eslint-disable"),
    "@ts-ignore": re.compile(r"(//|/\*)\s*@ts-ignore\b"),
    "@ts-nocheck": re.compile(r"(//|/\*)\s*@ts-nocheck\b"),
    "@ts-expect-error": re.compile(r"(//|/\*)\s*@ts-expect-error\b"),
}
# prose files: a Markdown heading that reads like a noqa comment silences nothing
DOC_SUFFIXES = (".md", ".rst", ".txt", ".adoc")
_RUFF_CONFIGS = {"pyproject.toml": ("tool", "ruff"), "ruff.toml": (), ".ruff.toml": ()}
_PER_FILE_KEYS = ("per-file-ignores", "extend-per-file-ignores")


# a line that mentions none of these carries no directive: most lines never reach the comment parser
_MENTIONS = re.compile(r"noqa|nosec|nosem|type\s*:|pyright|mypy|pylint|pragma|eslint-disable|@ts-", re.IGNORECASE)


def _directives(text: str, suffix: str) -> dict[str, list[tuple[int, str]]]:
    """label -> (line number, the line without spaces) of every line whose comment carries it."""
    found: dict[str, list[tuple[int, str]]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not _MENTIONS.search(line):
            continue
        comment = code_part(line, suffix)[1]
        if not comment:
            continue
        for label, pattern in SUPPRESSIONS.items():
            if pattern.search(comment):
                found.setdefault(label, []).append((number, re.sub(r"\s+", "", line)))
    return found


def _per_file_ignores(path: str, text: str | None) -> set[tuple[str, str]]:
    """(glob, rule) pairs of a ruff configuration's per-file-ignores; nothing for a file that is not one."""
    table_path = _RUFF_CONFIGS.get(PurePosixPath(path).name)
    if table_path is None or text is None:
        return set()
    try:
        table: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return set()
    for key in table_path:
        table = table.get(key, {}) if isinstance(table, dict) else {}
    pairs: set[tuple[str, str]] = set()
    for section in (table, table.get("lint") if isinstance(table, dict) else None):
        if not isinstance(section, dict):
            continue
        for key in _PER_FILE_KEYS:
            ignores = section.get(key)
            if isinstance(ignores, dict):
                pairs |= {(str(glob), str(rule)) for glob, rules in ignores.items() if isinstance(rules, list)
                          for rule in rules}
    return pairs


@functools.lru_cache(maxsize=256)  # a gate asks once for its reasons and once for what became suppressed
def added_directives(path: str, before: str | None, after: str) -> list[tuple[str, int]]:
    """(label, line) of each suppression directive the change adds to this file (`before` None: a new file)."""
    suffix = PurePosixPath(path).suffix
    if suffix in DOC_SUFFIXES:
        return []
    added = []
    old = _directives(before, suffix) if before else {}
    for label, lines in _directives(after, suffix).items():
        excess = len(lines) - len(old.get(label, []))
        if excess <= 0:
            continue
        kept = Counter(text for _, text in old.get(label, []))
        fresh = []
        for number, text in lines:
            if kept[text]:
                kept[text] -= 1
            else:
                fresh.append(number)
        added += [(label, number) for number in fresh[:excess]]
    return sorted(added, key=lambda item: item[1])


def silenced_code(path: str, after: str, lines: list[int]) -> set[str]:
    """The code (without spaces and comments) that directives on these lines of the head silence: their own
    line's, or for a directive alone on its line (`// eslint-disable-next-line`, `// @ts-ignore`) the next's."""
    suffix = PurePosixPath(path).suffix
    text = after.splitlines()
    codes = set()
    for number in lines:
        for line in text[number - 1:number + 1]:
            code = normal_code(line, suffix)
            if code:
                codes.add(code)
                break
    return codes


def normal_code(line: str, suffix: str) -> str:
    return re.sub(r"\s+", "", code_part(line, suffix)[0])


def added_suppressions(path: str, before: str | None, after: str) -> list[str]:
    """`adds X at path:line` for each suppression the change adds to this file (`before` None: a new file)."""
    reasons = [f"adds `{label}` at {path}:{number}" for label, number in added_directives(path, before, after)]
    for glob, rule in sorted(_per_file_ignores(path, after) - _per_file_ignores(path, before)):
        reasons.append(f"adds a per-file ignore of {rule} for {glob!r} in {path}")
    return reasons


_SLASH_COMMENTS = (".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs")


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
