"""The analysers' own fixes as candidates: the patch loop's embedded default, no API key needed.

ruff fixes each file read from stdin with cwd=root (`--stdin-filename`), so the repository's
configuration, per-file ignores, excludes and first-party detection apply exactly as in a scan, and
nothing is written anywhere. eslint fixes with --fix-dry-run (the fixed text comes back as JSON, no
file is written) with the repository's flat config, when the repository has one and JS/TS files are
named; its plugins come from the repository's node_modules (`node_root`). semgrep's --autofix edits files, so it runs
on copies of the files in a temporary directory with the rules that carry `fix:` / `fix-regex:` keys: truthplane's
shipped rules, the repository's .semgrep.yml/.semgrep.yaml/.semgrep/, and any extra rule files given. The user's
tree is only ever read. Each tool that changed something gives one candidate: a unified diff with
a/ b/ repo-relative paths.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from truthplane.change.candidates import CandidateError
from truthplane.change.fixes import Candidate
from truthplane.errors import VerifierError
from truthplane.leftovers import owned_prefix
from truthplane.registry import ESLINT_CONFIGS
from truthplane.verifiers._commands import include_pattern
from truthplane.verifiers._common import one_line, repo_path
from truthplane.verifiers._node import JS_SUFFIXES, borrowed_node_modules, find_tool
from truthplane.verifiers.semgrep import REPO_RULES, shipped_rule_files
from truthplane.verifiers.tool import run_tool

RUFF_SUFFIXES = (".py", ".pyi")
SEMGREP_IGNORE_FILES = (".semgrepignore",)
_FIX_KEY = re.compile(r"^\s*fix(-regex)?\s*:", re.MULTILINE)
TIMEOUT_S = 300.0


def file_diff(rel: str, before: str, after: str) -> str:
    """A git-style unified diff of one file; a last line without newline gets git's marker."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{rel}", f"b/{rel}", n=3
    )
    out = [f"diff --git a/{rel} b/{rel}\n"]
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out) if len(out) > 1 else ""


def _read_text(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # unreadable or not UTF-8: no tool fixes it here


def _sources(root: Path, files: list[str]) -> dict[str, str]:
    """rel -> content of each named file; a name that is not a file inside root is a CandidateError."""
    real_root = root.resolve()
    sources: dict[str, str] = {}
    for rel in files:
        posix = PurePosixPath(rel.replace("\\", "/")).as_posix()
        path = root / posix
        if ".." in PurePosixPath(posix).parts or not path.resolve().is_relative_to(real_root) or not path.is_file():
            raise CandidateError(f"cannot autofix {rel}: it is not a file inside {root}")
        text = _read_text(path)
        if text is not None:
            sources[posix] = text
    return sources


def _ruff_fixed(root: Path, sources: dict[str, str], flags: list[str]) -> dict[str, str]:
    fixed = {}
    for rel, text in sources.items():
        if PurePosixPath(rel).suffix not in RUFF_SUFFIXES:
            continue
        command = ["ruff", "check", "--fix-only", "--no-cache", "--force-exclude", *flags,
                   f"--stdin-filename={rel}", "-"]
        output = run_tool("ruff", command, cwd=root, timeout_s=TIMEOUT_S, ok_exit_codes=(0, 1), stdin=text)
        fixed[rel] = output.stdout
    return fixed


def _has_fix_keys(path: Path) -> bool:
    files = sorted(path.rglob("*.y*ml")) if path.is_dir() else [path]
    return any(_FIX_KEY.search(_read_text(f) or "") for f in files)


def semgrep_fix_rules(root: Path, extra: list[Path] | None = None) -> list[Path]:
    """Rule files and directories that hold at least one rule with a fix."""
    paths = [*shipped_rule_files(), *(root / name for name in REPO_RULES)]
    paths += [p if p.is_absolute() else root / p for p in extra or []]
    missing = [p for p in extra or [] if not (p if p.is_absolute() else root / p).exists()]
    if missing:
        raise CandidateError(f"semgrep rules {missing[0]} do not exist")
    return [p for p in paths if p.exists() and _has_fix_keys(p)]


def _semgrep_fixed(root: Path, sources: dict[str, str], rules: list[Path]) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix=owned_prefix("autofix")) as tmp:
        work = Path(tmp)
        for rel, text in sources.items():
            (work / rel).parent.mkdir(parents=True, exist_ok=True)
            (work / rel).write_bytes(text.encode("utf-8"))
        for name in SEMGREP_IGNORE_FILES:
            if (root / name).is_file():
                shutil.copyfile(root / name, work / name)
        command = [
            "semgrep", "scan", "--autofix", "--json", "--quiet", "--metrics=off", "--disable-version-check",
            *(f"--config={path.resolve()}" for path in rules),
            *(f"--include={include_pattern(rel)}" for rel in sources), "--", ".",
        ]
        output = run_tool(
            "semgrep", command, cwd=work, timeout_s=TIMEOUT_S, ok_exit_codes=(0, 1),
            env={"SEMGREP_ENABLE_VERSION_CHECK": "0", "SEMGREP_SEND_METRICS": "off"},
        )
        try:
            report = json.loads(output.stdout)
        except ValueError:
            raise VerifierError("semgrep", "--autofix printed no JSON report; run it by hand") from None
        fatal = [e for e in report.get("errors", []) if e.get("level") == "error" and not e.get("path")]
        if fatal:
            raise VerifierError("semgrep", f"--autofix could not run: {str(fatal[0].get('message', ''))[:200]}")
        return {rel: _read_text(work / rel) or "" for rel in sources}


def _eslint_fixed(
    root: Path, sources: dict[str, str], args: list[str], node_root: Path | None, executor: str | None
) -> dict[str, str]:
    from truthplane.verifiers.eslint import run_sandboxed

    targets = sorted(rel for rel in sources if rel.endswith(JS_SUFFIXES))
    base = str(root)
    with borrowed_node_modules(root, node_root):
        executable = find_tool("eslint", root, node_root)
        if executable is None:
            raise VerifierError("eslint", "eslint is not installed: npm install --save-dev eslint")
        command = [executable, "--fix-dry-run", "--format", "json", "--no-warn-ignored", *args, "--", *targets]
        if executor is None:
            output = run_tool("eslint", command, cwd=root, timeout_s=TIMEOUT_S, ok_exit_codes=(0, 1))
        else:
            output, base = run_sandboxed("eslint", executor, root, command, timeout_s=TIMEOUT_S, env={})
            if output.returncode == 2:
                raise VerifierError("eslint", f"--fix-dry-run could not run: {one_line(output.stderr, 200)}")
    try:
        report = json.loads(output.stdout)
    except ValueError:
        raise VerifierError("eslint", "--fix-dry-run printed no JSON report; run it by hand") from None
    fixed: dict[str, str] = {}
    for item in report if isinstance(report, list) else []:
        if isinstance(item, dict) and isinstance(item.get("output"), str) and isinstance(item.get("filePath"), str):
            path = item["filePath"]
            rel = os.path.relpath(path, base) if path.startswith(base.rstrip("/") + "/") else repo_path(root, path)
            if rel in sources:
                fixed[rel] = item["output"]
    return fixed


def _candidate(cid: str, title: str, sources: dict[str, str], fixed: dict[str, str]) -> Candidate | None:
    diff = "".join(file_diff(rel, sources[rel], after) for rel, after in sorted(fixed.items()) if after != sources[rel])
    if not diff:
        return None
    return Candidate(id=cid, source="autofix", title=title, diff=diff)


def autofix_candidates(
    root: Path,
    files: list[str],
    *,
    unsafe: bool = True,
    rules: list[str] | None = None,
    semgrep_rules: list[Path] | None = None,
    ruff_args: list[str] | None = None,
    problems: list[str] | None = None,
    eslint_args: list[str] | None = None,
    node_root: Path | None = None,
    eslint_executor: str | None = None,
) -> list[Candidate]:
    """ruff's safe fixes ("ruff-fix"), ruff's unsafe fixes too ("ruff-unsafe-fix", when they differ),
    semgrep's --autofix ("semgrep-autofix") and eslint --fix ("eslint-fix", when root has an eslint
    flat config) for `files` (repo-relative) in `root`. `eslint_args` are [verifiers.eslint] args;
    `node_root` is the repository whose node_modules holds eslint and its plugins (default: root);
    `eslint_executor` runs eslint (whose config is code) in that executor, as [verifiers.eslint]
    sandbox = true asks for.

    `rules` restricts ruff to those rule codes (--select); `ruff_args` are truthplane.toml's
    [verifiers.ruff] args (e.g. --extend-select B), so fixes cover what the scan reports. A tool that changed nothing
    gives no candidate. A tool that cannot run raises CandidateError, or, when `problems` is a list, is noted
    there and the other tools still run.
    """
    sources = _sources(root, files)
    select = [*(ruff_args or []), *([f"--select={','.join(rules)}"] if rules else [])]
    found: list[Candidate] = []

    def attempt(tool: str, make: Callable[[], dict[str, str]]) -> dict[str, str] | None:
        try:
            return make()
        except (VerifierError, OSError) as exc:
            message = f"{tool} autofix could not run: {exc}"
            if problems is None:
                raise CandidateError(message) from None
            problems.append(message)
            return None

    safe = attempt("ruff", lambda: _ruff_fixed(root, sources, select))
    if safe is not None and (candidate := _candidate("ruff-fix", f"ruff check --fix {' '.join(select)}".strip(),
                                                     sources, safe)):
        found.append(candidate)
    if unsafe:
        risky = attempt("ruff", lambda: _ruff_fixed(root, sources, [*select, "--unsafe-fixes"]))
        if risky is not None and risky != safe:
            title = f"ruff check --fix --unsafe-fixes {' '.join(select)}".strip()
            if candidate := _candidate("ruff-unsafe-fix", title, sources, risky):
                found.append(candidate)
    fix_rules = semgrep_fix_rules(root, semgrep_rules)
    if fix_rules and sources:
        fixed = attempt("semgrep", lambda: _semgrep_fixed(root, sources, fix_rules))
        names = ", ".join(p.name for p in fix_rules)
        if fixed is not None and (candidate := _candidate("semgrep-autofix", f"semgrep --autofix ({names})",
                                                          sources, fixed)):
            found.append(candidate)
    has_config = any((root / name).is_file() for name in ESLINT_CONFIGS)
    if has_config and any(rel.endswith(JS_SUFFIXES) for rel in sources):
        linted = attempt("eslint", lambda: _eslint_fixed(root, sources, eslint_args or [], node_root, eslint_executor))
        if linted is not None and (candidate := _candidate("eslint-fix", "eslint --fix", sources, linted)):
            found.append(candidate)
    return found
