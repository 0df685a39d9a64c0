"""Every verifier's output parser, fed random and mutated tool output: it either returns findings or
raises VerifierError, never anything else (garbage never turns into "no findings" silently either:
a findings exit code with nothing parsed is an error)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.verifiers.conftest import build_verifier
from truthplane.errors import VerifierError
from truthplane.executors.jobs import JobResult
from truthplane.models import Finding
from truthplane.verifiers.pip_audit import _Source
from truthplane.verifiers.tool import ToolOutput

ROOT = Path("/repo")

# one real report per tool (trimmed), the seeds that mutations start from
RUFF = [{
    "code": "F401", "message": "`os` imported but unused", "filename": "/repo/a.py", "severity": "error",
    "location": {"row": 1, "column": 8}, "end_location": {"row": 1, "column": 10},
    "url": "https://docs.astral.sh/ruff/rules/unused-import",
}]
BANDIT = {
    "errors": [{"filename": "./bad.py", "reason": "syntax error while parsing AST from file"}],
    "results": [{
        "filename": "./a.py", "test_id": "B307", "issue_text": "Use of possibly insecure function",
        "issue_severity": "MEDIUM", "issue_confidence": "HIGH", "line_number": 3, "line_range": [3],
        "col_offset": 4, "end_col_offset": 11, "more_info": "https://bandit.readthedocs.io/",
    }],
}
SEMGREP = {
    "version": "1.182.0",
    "results": [{
        "check_id": "tmp.rules.truthplane.python.eval-exec", "path": "a.py",
        "start": {"line": 3, "col": 5, "offset": 24}, "end": {"line": 3, "col": 12, "offset": 31},
        "extra": {"message": "do not eval", "severity": "ERROR", "metadata": {"cwe": ["CWE-95"]}},
    }],
    "errors": [],
}
MYPY = {
    "file": "m.py", "line": 2, "column": 11, "end_line": 2, "end_column": 12, "message": "Incompatible return",
    "hint": None, "code": "return-value", "severity": "error",
}
PIP_AUDIT = {
    "dependencies": [
        {"name": "requests", "version": "2.19.0", "vulns": [
            {"id": "PYSEC-2018-28", "fix_versions": ["2.20.0"], "aliases": ["CVE-2018-18074"]}]},
        {"name": "idna", "version": "2.7", "vulns": []},
    ],
    "fixes": [],
}
JUNIT = (
    '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1">'
    '<testcase classname="tests.test_a" name="test_x" file="tests/test_a.py" line="3">'
    '<failure message="assert 1 == 2">trace</failure></testcase></testsuite></testsuites>'
)

_scalars = st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12)
_values = st.recursive(
    _scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, seed: Any) -> Any:
    """The seed with a few of its values replaced, deleted or given extra keys."""
    value = copy.deepcopy(seed)
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(value)
        path = draw(st.sampled_from(paths))
        if not path:
            value = draw(_values)
            continue
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "extra"]))
        if action == "replace":
            parent[path[-1]] = draw(_values)
        elif action == "delete":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=6))] = draw(_values)
    return value


def _check(findings: list[Finding]) -> None:
    for finding in findings:
        assert isinstance(finding, Finding)
        assert "\n" not in finding.message


def _outputs(seed: Any, codes: list[int], json_lines: bool = False) -> st.SearchStrategy[ToolOutput]:
    def render(value: Any) -> str:
        if json_lines and isinstance(value, list):
            return "\n".join(json.dumps(item) for item in value)
        return json.dumps(value)

    texts = mutated(seed).map(render) | st.text(max_size=40)
    return st.builds(ToolOutput, st.sampled_from(codes), texts, st.text(max_size=20))


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(output=_outputs(RUFF, [0, 1]))
def test_ruff_parser(output: ToolOutput) -> None:
    try:
        _check(build_verifier("ruff").parse(ROOT, output))
    except VerifierError:
        pass


@PROPERTY
@given(output=_outputs(BANDIT, [0, 1]))
def test_bandit_parser(output: ToolOutput) -> None:
    try:
        _check(build_verifier("bandit").parse(ROOT, output))
    except VerifierError:
        pass


@PROPERTY
@given(output=_outputs(SEMGREP, [0, 1, 2, 7]))
def test_semgrep_parser(output: ToolOutput) -> None:
    try:
        _check(build_verifier("semgrep").parse(ROOT, output, {"truthplane.python.eval-exec"}))
    except VerifierError:
        pass


@PROPERTY
@given(output=_outputs([MYPY, {**MYPY, "severity": "note", "hint": "See https://x"}], [0, 1, 2], json_lines=True))
def test_mypy_parser(output: ToolOutput) -> None:
    try:
        _check(build_verifier("mypy").parse(ROOT, output))
    except VerifierError:
        pass


@PROPERTY
@given(output=_outputs(PIP_AUDIT, [0, 1]))
def test_pip_audit_parser(output: ToolOutput) -> None:
    source = _Source("requirements.txt", ROOT / "requirements.txt", {"requests": 1}, True)
    try:
        _check(build_verifier("pip-audit").parse(output, [source]))
    except VerifierError:
        pass


@PROPERTY
@given(
    report=st.one_of(
        st.just(JUNIT),
        st.text(max_size=60),
        st.builds(lambda cut: JUNIT[:cut], st.integers(0, len(JUNIT))),
        st.builds(lambda line: JUNIT.replace('line="3"', f'line="{line}"'), st.text(max_size=5)),
    ),
    code=st.sampled_from([0, 1, 2, 5, None]),
)
@example(report=JUNIT.replace('line="3"', 'line="\u00b2"'), code=1)
def test_pytest_report_parser(report: str, code: int | None) -> None:
    verifier = build_verifier("pytest")
    result = JobResult(returncode=code, stdout=f"noise\nBEGIN\n{report}\nEND\n", executor="local")
    try:
        _check(verifier._interpret(result, "BEGIN", "END"))
    except VerifierError:
        pass


@pytest.mark.parametrize(
    "kind, seed",
    [("ruff", RUFF), ("bandit", BANDIT), ("semgrep", SEMGREP), ("pip-audit", PIP_AUDIT)],
)
def test_seeds_parse_and_an_empty_findings_exit_is_an_error(kind: str, seed: Any) -> None:
    verifier = build_verifier(kind)
    if kind == "pip-audit":
        source = _Source("requirements.txt", ROOT / "requirements.txt", {"requests": 1}, True)
        assert verifier.parse(ToolOutput(1, json.dumps(seed), ""), [source])
        empty = {"dependencies": [{"name": "idna", "version": "2.7", "vulns": []}]}
        with pytest.raises(VerifierError):
            verifier.parse(ToolOutput(1, json.dumps(empty), ""), [source])
        return
    args = (ROOT, ToolOutput(1, json.dumps(seed), ""))
    extra = ({"truthplane.python.eval-exec"},) if kind == "semgrep" else ()
    assert verifier.parse(*args, *extra)
    empty: Any = [] if kind == "ruff" else {**seed, "results": [], "errors": []}
    with pytest.raises(VerifierError):
        verifier.parse(ROOT, ToolOutput(1, json.dumps(empty), ""), *extra)
