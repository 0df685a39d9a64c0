"""Every built-in verifier driven through the same interface: what it declares, what it finds on a
small repository, and that missing or broken tools are errors, never zero findings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.verifiers.conftest import build_verifier, located
from truthplane.errors import VerifierError
from truthplane.models import Severity
from truthplane.registry import BUILTIN_VERIFIERS

LINT_JSON = """\
import json, os, sys
paths = []
for arg in sys.argv[1:]:
    if os.path.isdir(arg):
        paths += [os.path.join(d, f) for d, _, names in os.walk(arg) for f in names if f.endswith(".py")]
    else:
        paths.append(arg)
marker = "#" + " TODO"
print(json.dumps([{"path": p, "line": 1, "rule_id": "no-todo", "message": "TODO left in", "severity": "low"}
                  for p in paths if marker in open(p).read()]))
"""


@dataclass
class Case:
    kind: str
    files: dict[str, str]
    expected: set[tuple[str, str, int | None]]
    severity: Severity
    options: dict[str, Any] = field(default_factory=dict)
    tool: str | None = None
    incremental: bool = False
    file_local: bool = False
    file_based: bool = True
    garbage_tool: str | None = None


CASES = [
    Case(
        "ruff", {"pkg/mod.py": "import os\n\n\ndef f():\n    return undefined_name\n"},
        {("F401", "pkg/mod.py", 1), ("F821", "pkg/mod.py", 5)}, Severity.MEDIUM,
        tool="ruff", incremental=True, file_local=True, garbage_tool="ruff",
    ),
    Case(
        "bandit", {"app.py": "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"},
        {("B602", "app.py", 5)}, Severity.HIGH,
        tool="bandit", incremental=True, file_local=True, garbage_tool="bandit",
    ),
    Case(
        "semgrep", {"src/app.py": "def f(x):\n    return eval(x)\n"},
        {("truthplane.python.eval-exec", "src/app.py", 2)}, Severity.HIGH,
        tool="semgrep", incremental=True, file_local=True, garbage_tool="semgrep",
    ),
    Case(
        "mypy", {"m.py": "def f(x: int) -> str:\n    return x\n"},
        {("return-value", "m.py", 2)}, Severity.MEDIUM,
        tool="mypy", incremental=True, garbage_tool="mypy",
    ),
    Case(
        "pytest", {"tests/test_a.py": "def test_a():\n    assert 1 == 2\n"},
        {("test-failure", "tests/test_a.py", 1)}, Severity.HIGH, file_based=False,
    ),
    Case(
        "pip-audit", {"requirements.txt": "requests==2.19.0\n"},
        {("PYSEC-2018-28", "requirements.txt", 1)}, Severity.HIGH,
        options={"args": ["-s", "osv", "--osv-url", "{osv_url}"]},
        tool="pip-audit", file_based=False, garbage_tool="pip-audit",
    ),
    Case(
        "eslint",
        {"eslint.config.mjs": 'export default [{ rules: { eqeqeq: "error", "no-debugger": "warn" } }];\n',
         "src/a.js": "export function f(a) {\n  debugger;\n  return a == 1;\n}\n"},
        {("eqeqeq", "src/a.js", 3)}, Severity.MEDIUM,
        tool="eslint", incremental=True, file_local=True,
    ),
    Case(
        "tsc",
        {"tsconfig.json": '{"compilerOptions": {"strict": true, "noEmit": true, "types": []}}\n',
         "src/m.ts": "export const n: number = 'x';\n"},
        {("TS2322", "src/m.ts", 1)}, Severity.HIGH,  # a type error: the project no longer compiles
        tool="tsc", garbage_tool="tsc",
    ),
    Case(
        "command", {"lint.py": LINT_JSON, "notes.py": "# TODO: later\n"},
        {("no-todo", "notes.py", 1)}, Severity.LOW,
        options={"command": ["python3", "lint.py", "{files}"], "format": "json", "incremental": True},
        incremental=True, file_local=True, garbage_tool="python3",
    ),
]


def _params(cases: list[Case], need_garbage: bool = False) -> list[Any]:
    chosen = [c for c in cases if c.garbage_tool or not need_garbage]
    return [pytest.param(c, id=c.kind, marks=[pytest.mark.tool(c.tool)] if c.tool else []) for c in chosen]


def _options(case: Case, osv: str) -> dict[str, Any]:
    options = dict(case.options)
    if "args" in options:
        options["args"] = [a.replace("{osv_url}", osv) for a in options["args"]]
    return options


# driven by their own modules: npm-audit needs a registry (tests/verifiers/test_npm_audit.py), build a
# configured command in an executor (test_build.py), codeql a CLI no registry ships (test_codeql.py)
OWN_HARNESS = {"npm-audit", "build", "codeql"}


def test_every_builtin_verifier_has_a_case() -> None:
    assert {c.kind for c in CASES} == set(BUILTIN_VERIFIERS) - OWN_HARNESS


@pytest.mark.parametrize("case", _params(CASES))
def test_declares_how_it_scans(case: Case) -> None:
    verifier = build_verifier(case.kind, **case.options)
    assert verifier.incremental is case.incremental
    assert verifier.file_local is case.file_local
    assert bool(verifier.suffixes) is case.file_based


@pytest.mark.parametrize("case", _params(CASES))
def test_available_names_a_version(case: Case) -> None:
    info = build_verifier(case.kind, **case.options).available()
    assert info.installed, info.reason
    if case.kind != "command":
        assert info.version and info.version[0].isdigit()


@pytest.mark.parametrize("case", _params(CASES))
def test_finds_and_locates(case: Case, tree: Callable[[dict[str, str]], Path], osv_url: str) -> None:
    root = tree(case.files)
    result = build_verifier(case.kind, f"my-{case.kind}", **_options(case, osv_url)).scan(root)
    found = located(result.findings)
    assert case.expected <= found, found
    for finding in result.findings:
        assert finding.verifier == f"my-{case.kind}"
        assert not Path(finding.path).is_absolute() and "\\" not in finding.path
        assert finding.fingerprint == finding.context_hash == finding.symbol == ""
        assert finding.start_line is None or finding.start_line >= 1
        assert finding.start_column is None or finding.start_column >= 1
        assert finding.message and "\n" not in finding.message
    chosen = [f for f in result.findings if (f.rule_id, f.path, f.start_line) in case.expected]
    assert {f.severity for f in chosen} == {case.severity}


@pytest.mark.parametrize("case", _params(CASES))
def test_empty_file_list_scans_nothing(case: Case, tmp_path: Path, no_tools: None) -> None:
    # every tool is missing here: returning quietly proves the tool was never started
    result = build_verifier(case.kind, **case.options).scan(tmp_path, files=[])
    assert result.findings == []


@pytest.mark.parametrize("case", _params(CASES))
def test_missing_tool_is_an_error_not_a_clean_scan(
    case: Case, tree: Callable[[dict[str, str]], Path], no_tools: None
) -> None:
    verifier = build_verifier(case.kind, **case.options)
    info = verifier.available()
    assert not info.installed
    assert info.reason and "truthplane.toml" in info.reason
    with pytest.raises(VerifierError) as caught:
        verifier.scan(tree(case.files))
    assert caught.value.status == "missing"


GARBAGE = [
    ("Segmentation fault (core dumped)\n", 0),
    ("Segmentation fault (core dumped)\n", 1),
    ('{"totally": "unexpected"}\n', 0),
    ("[1, 2, 3]\n", 1),
    ("", 139),
]


@pytest.mark.parametrize("output, code", GARBAGE)
@pytest.mark.parametrize("case", _params(CASES, need_garbage=True))
def test_garbage_output_is_an_error(
    case: Case, output: str, code: int, tree: Callable[[dict[str, str]], Path],
    broken_tool: Callable[[str, str, int], None],
) -> None:
    assert case.garbage_tool
    broken_tool(case.garbage_tool, output, code)
    verifier = build_verifier(case.kind, **_options(case, "http://127.0.0.1:9/v1/query"))
    with pytest.raises(VerifierError) as caught:
        verifier.scan(tree(case.files))
    assert caught.value.status == "failed"
    assert "\n" not in str(caught.value)
