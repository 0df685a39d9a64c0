"""Fuzzing what a user or a repository hands truthplane: truthplane.toml, task files, baselines and SARIF.

Each example starts from a valid document and replaces parts of it with arbitrary values (wrong types,
NaN, huge numbers, control characters, deep nesting), or cuts the text. Whatever comes in, the answer is
a documented exit code and at most one line of error, never "unexpected" and a crash log. The budget is
fixed (derandomized, a bounded number of examples) so the test runs the same in CI every time; a
systematic sweep over the SARIF log's parts backs up the random search where one part matters.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truthplane.cli.main import run
from truthplane.errors import ExitCode, TruthplaneError
from truthplane.runall.tasks import load_tasks

BUDGET = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.function_scoped_fixture])  # the fixture only sets the environment
DOCUMENTED = {code.value for code in ExitCode} - {ExitCode.INTERRUPTED.value}

CONFIG: dict[str, Any] = {
    "exclude": ["tests/fixtures/**"],
    "timeout_s": 600,
    "cache_dir": ".cache",
    "verifiers": {
        "enabled": ["ruff", "mylint"],
        "ruff": {"args": ["--extend-select", "B"], "timeout_s": 30},
        "mylint": {"type": "command", "command": ["mylint", "{files}"], "format": "sarif"},
    },
    "gate": {"fail_on": "high", "review_on": "low", "max_new": 20},
    "severity": {"ruff:E501": "note"},
    "executors": {
        "default": "local",
        "local": {"warm": 2, "sandbox": True, "kill_grace_s": 2.0},
        "docker": {"image": "x", "concurrency": 4},
        "ssh": {"connect_timeout_s": 5, "nodes": [{"host": "h", "port": 22, "slots": 2}]},
    },
    "llm": {
        "chain": ["groq"],
        "providers": {"groq": {"model": "m", "timeout_s": 30}},
        "budget": {"max_calls_per_day": 5},
    },
}
TASKS: dict[str, Any] = {"tasks": [
    {"id": "a", "kind": "command", "command": "true", "files": ["a.py"], "timeout_s": 60, "priority": 1,
     "acceptance": {"test_cmd": "true", "fail_on": "high", "max_new": 0}},
    {"id": "b", "kind": "fix", "target": "a.py", "depends_on": ["a"]},
]}
FINDING = {"verifier": "ruff", "rule_id": "F401", "severity": "medium", "message": "unused", "path": "a.py",
           "start_line": 1, "end_line": 1, "fingerprint": "f" * 16, "partial_fingerprints": {"k": "v"}}
BASELINE: dict[str, Any] = {
    "schema_version": 1, "tool": "truthplane", "created_at": "2026-01-01T00:00:00Z", "commit": None,
    "verifiers": [{"name": "ruff", "version": "0.1", "status": "ok", "duration_s": 0.1, "count": 1}],
    "findings": [FINDING], "files": {"a.py": "0" * 64},
}
SARIF: dict[str, Any] = {"version": "2.1.0", "runs": [{
    "tool": {"driver": {"name": "lint", "version": "1", "rules": [
        {"id": "R1", "defaultConfiguration": {"level": "error"}, "properties": {"security-severity": "8.0"}}]}},
    "originalUriBaseIds": {"SRC": {"uri": "file:///repo/"}},
    "invocations": [{"executionSuccessful": True}],
    "results": [{"ruleId": "R1", "ruleIndex": 0, "level": "warning", "message": {"text": "m"},
                 "locations": [{"physicalLocation": {"artifactLocation": {"uri": "a.py", "uriBaseId": "SRC"},
                                                     "region": {"startLine": 1, "endLine": 2}}}],
                 "partialFingerprints": {"primaryLocationLineHash": "abc:1"}, "properties": {"x": 1}}],
}]}

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["", "\n\x1b[2J", "half \ud800", "high", "local", "sarif", "../../etc/passwd", "/proc", "a.py", "R1", "2.1.0",
     "http://[::1", "file:///repo/a.py"])
_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=True, allow_infinity=True) | _TEXT)
ANY_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
                        max_leaves=8)


# values of another type than expected, and the edges of each type
CONFUSIONS = st.sampled_from(
    [5, -1, 0, 2**64, 1.5, math.nan, math.inf, True, None, "", "x\n\x1b[2J", "\udc80", [], [1], {}, {"a": 1}]
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield from _paths(item, (*prefix, key))


@st.composite
def mutated(draw: st.DrawFn, template: Any) -> Any:
    """The template with one to three of its parts replaced (by a value of another type, or any value),
    removed, or given an unknown key: close enough to the real shape to reach the code past the first checks."""
    document = copy.deepcopy(template)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(document))))
        action = draw(st.sampled_from(["replace", "confuse", "drop", "add"]))
        if not path:
            return draw(ANY_JSON) if action == "replace" else document
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if action == "drop":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(_TEXT)] = draw(ANY_JSON)
        else:
            # a copy: a later mutation must not change the strategy's own sample values
            parent[path[-1]] = copy.deepcopy(draw(CONFUSIONS if action == "confuse" else ANY_JSON))
    return document


# arrays nested deeper than the interpreter's recursion limit, as text (building them as objects would recurse)
DEEP = st.sampled_from([50, 2000]).map(lambda depth: "[" * depth + "]" * depth)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items() if v is not None) + "}"


def toml_text(document: Any) -> str:
    """A TOML document with every table inline (mixed-type arrays and all: TOML 1.0 allows them)."""
    if not isinstance(document, dict):
        return f"value = {toml_value(document)}\n" if document is not None else ""
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in document.items() if v is not None)


def cut(text: str, data: st.DataObject) -> str:
    """The text as it is, or with a slice removed: truncated files, unbalanced brackets, half a string."""
    if not data.draw(st.booleans()):
        return text
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 40)))
    return text[:start] + text[end:]


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="truthplane-fuzz-") as name:
        root = Path(name)
        (root / "a.py").write_text("import os\n")
        (root / "good.json").write_text(json.dumps(BASELINE))
        yield root


def run_cli(root: Path, *args: str) -> None:
    """truthplane ARGS in this process: a documented exit code, at most one line on stderr, no crash log."""
    out, err = io.StringIO(), io.StringIO()
    crash_log = Path(os.environ["TRUTHPLANE_CACHE_DIR"]) / "crash.log"
    crash_log.unlink(missing_ok=True)
    previous = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = run(list(args))
    finally:
        os.chdir(previous)
    message = err.getvalue()
    assert code in DOCUMENTED, message
    assert not message.startswith("truthplane: error: unexpected"), message
    assert not crash_log.exists(), message
    assert len(message.splitlines()) <= 1, message


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")


@BUDGET
@given(text=mutated(CONFIG).map(toml_text) | DEEP.map(lambda deep: f"exclude = {deep}\n"), data=st.data())
def test_any_truthplane_toml(text: str, data: st.DataObject) -> None:
    with workspace() as root:
        (root / "truthplane.toml").write_text(cut(text, data), encoding="utf-8")
        run_cli(root, "diff", "good.json", "good.json", "--config", "truthplane.toml")


@BUDGET
@given(text=mutated(TASKS).map(toml_text) | DEEP.map(lambda deep: f"tasks = {deep}\n"), data=st.data())
def test_any_task_file(text: str, data: st.DataObject) -> None:
    with workspace() as root:
        path = root / "tasks.toml"
        path.write_text(cut(text, data), encoding="utf-8")
        try:
            load_tasks(root, path)
        except TruthplaneError as exc:
            assert exc.exit_code == ExitCode.USAGE and "\n" not in str(exc), str(exc)


@BUDGET
@given(text=mutated(BASELINE).map(json.dumps) | DEEP, data=st.data())
def test_any_baseline_given_to_diff(text: str, data: st.DataObject) -> None:
    with workspace() as root:
        (root / "after.json").write_text(cut(text, data), encoding="utf-8")
        run_cli(root, "diff", "good.json", "after.json")


@BUDGET
@given(text=mutated(SARIF).map(json.dumps) | DEEP, data=st.data(), fmt=st.sampled_from(["text", "markdown"]))
def test_any_sarif_given_to_diff(text: str, data: st.DataObject, fmt: str) -> None:
    with workspace() as root:
        (root / "before.sarif").write_text(json.dumps(SARIF))
        (root / "after.sarif").write_text(cut(text, data), encoding="utf-8")
        run_cli(root, "diff", "before.sarif", "after.sarif", "--format", fmt)


_REMOVED = object()
SWEEP = [5, math.nan, True, None, "x\n\x1b[2J", "half \udc80", [1], {"a": 1}]


def test_every_part_of_a_sarif_log_replaced_by_a_value_of_another_type() -> None:
    """A systematic sweep beside the random one: each part of the SARIF log in turn, replaced by each
    value of SWEEP, or removed."""
    with workspace() as root:
        (root / "before.sarif").write_text(json.dumps(SARIF))
        after = root / "after.sarif"
        for path in list(_paths(SARIF))[1:]:
            for value in [*SWEEP, _REMOVED]:
                document = copy.deepcopy(SARIF)
                parent = document
                for key in path[:-1]:
                    parent = parent[key]
                if value is _REMOVED:
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = copy.deepcopy(value)
                after.write_text(json.dumps(document), encoding="utf-8")
                run_cli(root, "diff", "before.sarif", "after.sarif")
