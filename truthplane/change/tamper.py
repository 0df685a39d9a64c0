"""Tamper checks: a candidate must fix the code, not silence the tools, the tests or their configuration.

Three categories, each of which the user may allow: "suppressions" (adds `# noqa`, `# nosec`,
`# type: ignore`, `nosemgrep`, `eslint-disable`, `@ts-ignore`, ...), "tests" (deletes a test or a test
file, skips or xfails one, removes asserts, replaces a test body with `pass`) and "config" (edits
the verifiers' or CI's configuration). One reason per occurrence, naming the file and line.

Suppressions are read as directives, not words: the marker must sit in a comment (`# noqa`, `//
eslint-disable`), so prose or a string that mentions noqa is not a suppression. Something counts as
added only if the candidate adds more of it to a file than it removes there, so reformatting a line
that already carried `# noqa` is not tampering.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from truthplane.change.candidates import DEV_NULL, FilePatch, Hunk, HunkLine, code_part, parse_diff, strip_level
from truthplane.errors import UsageError
from truthplane.truth.suppressions import DOC_SUFFIXES as _DOC_SUFFIXES
from truthplane.truth.suppressions import SUPPRESSIONS as _SUPPRESSIONS

TAMPER_CATEGORIES = frozenset({"suppressions", "tests", "config"})

# label -> pattern, matched against a line's code part
_PY_SKIPS: dict[str, re.Pattern[str]] = {
    "@pytest.mark.skip": re.compile(r"@\s*pytest\.mark\.skip\b"),
    "@pytest.mark.skipif": re.compile(r"@\s*pytest\.mark\.skipif\b"),
    "@pytest.mark.xfail": re.compile(r"@\s*pytest\.mark\.xfail\b"),
    "pytest.skip(": re.compile(r"\bpytest\.skip\s*\("),
    "pytest.xfail(": re.compile(r"\bpytest\.xfail\s*\("),
    "unittest.skip": re.compile(r"\bunittest\.(skip|skipIf|skipUnless|expectedFailure)\b"),
    "skipTest(": re.compile(r"\.skipTest\s*\("),
}
_JS_SKIPS: dict[str, re.Pattern[str]] = {
    ".skip(": re.compile(r"\b(it|test|describe|context|suite)\.skip\s*\("),
    "xit(": re.compile(r"(?<![\w.])x(it|test|describe)\s*\("),
    ".todo(": re.compile(r"\b(it|test)\.todo\s*\("),
}
_PY_TEST_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(test\w*)\s*\(|^\s*class\s+(Test\w*)\b")
# a test renamed to it.skip(/xit( is still there (the skip is reported as such), so it counts here
_JS_TEST_CALL = re.compile(r"^\s*x?(?:it|test)(?:\.\w+)?\s*\(\s*['\"`]")
_PY_ASSERT = re.compile(r"^\s*(assert\b|self\.assert\w*\s*\(|self\.fail\s*\(|pytest\.raises\b|with\s+pytest\.raises\b)")
_JS_ASSERT = re.compile(r"^\s*(expect\s*\(|assert\b|assert\.)")
_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)\s*\(")
_JS_SUFFIXES = (".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs")

_CONFIG_NAMES = frozenset({
    "ruff.toml", ".ruff.toml", ".bandit", "mypy.ini", ".mypy.ini", "setup.cfg", "tox.ini", "pytest.ini",
    "conftest.py", "truthplane.toml", ".pre-commit-config.yaml", ".pre-commit-config.yml", "tsconfig.json",
    ".flake8", ".pylintrc", "pylintrc", ".coveragerc", "pyrightconfig.json", ".eslintignore", ".gitlab-ci.yml",
    ".semgrepignore", "noxfile.py", "bandit.yaml", "bandit.yml", ".bandit.yaml", ".bandit.yml",
})
_CONFIG_PREFIXES = (".semgrep", ".eslintrc", "eslint.config.", "tsconfig.")
_CONFIG_DIRS = ((".github", "workflows"), (".ci",), (".semgrep",), (".circleci",))
_PYPROJECT_TOOLS = ("ruff", "mypy", "bandit", "pytest", "truthplane", "coverage", "pyright", "semgrep", "pylint")
_TOML_TABLE = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def is_test_file(path: str) -> bool:
    pure = PurePosixPath(path)
    name = pure.name
    if pure.suffix in (".py", ".pyi"):
        return name.startswith("test_") or name.endswith("_test.py") or (
            name != "conftest.py" and any(part in ("tests", "test") for part in pure.parts[:-1])
        )
    if pure.suffix in _JS_SUFFIXES:
        return re.search(r"\.(test|spec)\.[cm]?[jt]sx?$", name) is not None or "__tests__" in pure.parts
    return False


def is_config_file(path: str) -> bool:
    pure = PurePosixPath(path)
    if pure.name in _CONFIG_NAMES or pure.name.startswith(_CONFIG_PREFIXES):
        return True
    return any(pure.parts[: len(prefix)] == prefix for prefix in _CONFIG_DIRS)


def _pyproject_tool(table: str | None) -> bool:
    if table is None:
        return True  # unknown section: cannot clear it
    return any(table == f"tool.{tool}" or table.startswith(f"tool.{tool}.") for tool in _PYPROJECT_TOOLS)


def _table_before(root: Path | None, rel: str, line_no: int, hunk: Hunk) -> str | None:
    """The TOML table in force just before the hunk: from the file in root, else the hunk's header text."""
    if root is not None:
        try:
            lines = (root / rel).read_text(encoding="utf-8").splitlines()[: max(line_no - 1, 0)]
        except (OSError, UnicodeDecodeError):
            lines = None
        if lines is not None:
            table = ""  # before any header: top level, not a tool section
            for line in lines:
                match = _TOML_TABLE.match(line)
                if match:
                    table = match.group(1).replace('"', "").replace(" ", "")
            return table
    match = _TOML_TABLE.match(hunk.section)
    return match.group(1).replace('"', "") if match else None


def _pyproject_edit(root: Path | None, rel: str, patch: FilePatch) -> HunkLine | None:
    """The first changed line of pyproject.toml that lies in a verifier's [tool.*] table."""
    for hunk in patch.hunks:
        table = _table_before(root, rel, hunk.old_start, hunk)
        for line in hunk.lines:
            match = _TOML_TABLE.match(line.text)
            if line.kind != " " and (
                match and _pyproject_tool(match.group(1).replace('"', "")) or _pyproject_tool(table)
            ):
                return line
            if match and line.kind != "-":
                table = match.group(1).replace('"', "").replace(" ", "")
    return None


def _where(rel: str, line: HunkLine) -> str:
    number = line.new_no if line.kind == "+" else line.old_no
    return f"{rel}:{number}" if number else rel


def _added_beyond_removed(
    rel: str, patch: FilePatch, patterns: dict[str, re.Pattern[str]], part: int, suffix: str
) -> list[str]:
    """`adds X at file:line` for each pattern the patch adds more often than it removes in this file."""
    reasons = []
    for label, pattern in patterns.items():
        added = [
            ln
            for h in patch.hunks
            for ln in h.lines
            if ln.kind == "+" and pattern.search(code_part(ln.text, suffix)[part])
        ]
        removed = sum(
            1
            for h in patch.hunks
            for ln in h.lines
            if ln.kind == "-" and pattern.search(code_part(ln.text, suffix)[part])
        )
        reasons += [f"adds `{label}` at {_where(rel, ln)}" for ln in added[removed:]]
    return reasons


def _removed_beyond_added(rel: str, patch: FilePatch, pattern: re.Pattern[str], what: str, suffix: str) -> list[str]:
    removed = [
        ln for h in patch.hunks for ln in h.lines if ln.kind == "-" and pattern.search(code_part(ln.text, suffix)[0])
    ]
    added = {re.sub(r"\s+", "", code_part(ln.text, suffix)[0]) for h in patch.hunks for ln in h.lines if ln.kind == "+"}
    added_count = sum(
        1 for h in patch.hunks for ln in h.lines if ln.kind == "+" and pattern.search(code_part(ln.text, suffix)[0])
    )
    excess = len(removed) - added_count
    if excess <= 0:
        return []
    gone = [ln for ln in removed if re.sub(r"\s+", "", code_part(ln.text, suffix)[0]) not in added] or removed
    return [f"removes {what} `{ln.text.strip()[:60]}` at {_where(rel, ln)}" for ln in gone[:excess]]


def _test_body_replaced(rel: str, patch: FilePatch) -> list[str]:
    """An added `pass`/`...` in a hunk that removes code of a test function."""
    reasons = []
    for hunk in patch.hunks:
        function = ""
        match = _DEF.match(hunk.section)
        if match:
            function = match.group(1)
        removes_code = any(ln.kind == "-" and ln.text.strip() for ln in hunk.lines)
        for line in hunk.lines:
            match = _DEF.match(line.text)
            if match and line.kind != "-":
                function = match.group(1)
            if (line.kind == "+" and removes_code and function.startswith("test")
                    and code_part(line.text, ".py")[0].strip() in ("pass", "...", "return")):
                reasons.append(f"replaces the body of {function} with `{line.text.strip()}` at {_where(rel, line)}")
    return reasons


def _test_reasons(rel: str, patch: FilePatch, deleted: bool, suffix: str) -> list[str]:
    test_file = is_test_file(rel)
    if deleted and test_file:
        return [f"deletes test file {rel}"]
    reasons: list[str] = []
    if suffix in (".py", ".pyi"):
        reasons += _added_beyond_removed(rel, patch, _PY_SKIPS, 0, suffix)
        reasons += _removed_beyond_added(rel, patch, _PY_TEST_DEF, "test", suffix)
        if test_file:
            reasons += _removed_beyond_added(rel, patch, _PY_ASSERT, "assertion", suffix)
            reasons += _test_body_replaced(rel, patch)
    elif suffix in _JS_SUFFIXES and test_file:
        reasons += _added_beyond_removed(rel, patch, _JS_SKIPS, 0, suffix)
        reasons += _removed_beyond_added(rel, patch, _JS_TEST_CALL, "test", suffix)
        reasons += _removed_beyond_added(rel, patch, _JS_ASSERT, "assertion", suffix)
    return reasons


def tamper_reasons(diff: str, *, allow: frozenset[str] = frozenset(), root: Path | None = None) -> list[str]:
    """Why this diff tampers with the evidence; [] when it does not.

    `allow` opts out of categories ("suppressions", "tests", "config"). `root` (the tree the diff
    applies to) lets an edit deep inside pyproject.toml be placed in its [tool.*] table; without
    it, a pyproject.toml edit whose table cannot be seen from the hunk counts as config.
    Raises CandidateError when the diff does not parse (check_patch rejects it first).
    """
    unknown = set(allow) - TAMPER_CATEGORIES
    if unknown:
        raise UsageError(
            f"unknown tamper category {min(unknown)!r}: choose from {', '.join(sorted(TAMPER_CATEGORIES))}"
        )
    parsed = parse_diff(diff)
    level = strip_level(parsed.files, root)
    reasons: list[str] = []
    for patch in parsed.files:
        deleted = patch.new_path == DEV_NULL
        side = patch.old_path if deleted else patch.new_path
        rel = "/".join(side.split("/")[level:])
        old_rel = "/".join(patch.old_path.split("/")[level:]) if patch.old_path != DEV_NULL else rel
        suffix = PurePosixPath(rel).suffix
        if "suppressions" not in allow and suffix not in _DOC_SUFFIXES:
            reasons += _added_beyond_removed(rel, patch, _SUPPRESSIONS, 1, suffix)
        if "tests" not in allow:
            renamed_away = old_rel != rel and is_test_file(old_rel) and not is_test_file(rel)
            reasons += [f"moves test file {old_rel} to {rel}, out of the test suite"] if renamed_away else []
            reasons += _test_reasons(rel, patch, deleted, suffix)
        if "config" not in allow:
            if is_config_file(rel) or is_config_file(old_rel):
                first = next((ln for h in patch.hunks for ln in h.lines if ln.kind != " "), None)
                where = _where(rel, first) if first else rel
                reasons.append(f"edits verifier/CI configuration at {where}")
            elif PurePosixPath(rel).name == "pyproject.toml":
                line = _pyproject_edit(root, old_rel, patch)
                if line is not None:
                    reasons.append(f"edits a verifier's [tool.*] settings in pyproject.toml at {_where(rel, line)}")
    return list(dict.fromkeys(reasons))
