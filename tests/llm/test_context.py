"""The knowledge plane on a small repository made in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from truthplane.llm.context import Context, ContextPart, build_context, estimate_tokens, traceback_frames
from truthplane.errors import UsageError
from truthplane.models import Finding, Severity

CALC = '''\
"""Arithmetic helpers."""

import math
from decimal import Decimal


def unrelated(x):
    return x + 1


class Calculator:
    """Keeps a running total."""

    def __init__(self):
        self.total = 0

    @staticmethod
    def mean(values):
        return sum(values) / len(values)

    def add(self, value):
        self.total += value
        return self.total
'''

TEST_CALC = '''\
from pkg.calc import Calculator


def test_mean():
    assert Calculator.mean([1, 2, 3]) == 2


def test_add():
    assert Calculator().add(2) == 2
'''

FILES = {
    "src/pkg/__init__.py": "",
    "src/pkg/calc.py": CALC,
    "src/pkg/report.py": "from pkg import calc\n\n\ndef show(v):\n    return calc.Calculator.mean(v)\n",
    "src/pkg/other.py": "import pkg.calc as c\n",
    "tests/test_calc.py": TEST_CALC,
    "tests/evidence/test_report.py": "from pkg.report import show\n\n\ndef test_show_mean():\n    assert show([2]) == "
                                     "2\n",
    "pyproject.toml": (
        '[project]\nname = "pkg"\n\n[tool.ruff]\nline-length = 100\n# a comment\n\n[tool.ruff.lint]\n'
        'select = ["E", "F"]\n\n[tool.mypy]\nstrict = true\n\n[tool.other]\nx = 1\n'
    ),
    ".editorconfig": "root = true\n\n[*.py]\nindent_size = 4\n",
    ".venv/lib/site.py": "import pkg.calc\n",
}

ERROR = '''\
Traceback (most recent call last):
  File "{root}/src/pkg/report.py", line 5, in show
    return calc.Calculator.mean(v)
  File "/usr/lib/python3.11/site-packages/thing.py", line 1, in x
    pass
  File "/tmp/sandbox-1234/src/pkg/calc.py", line 19, in mean
    return sum(values) / len(values)
ZeroDivisionError: division by zero
'''


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    return make_repo(FILES)


def part(context: Context, kind: str) -> ContextPart:
    found = context.part(kind)
    assert found is not None, f"no {kind} part"
    return found


def finding(line: int = 19) -> Finding:
    return Finding(verifier="mypy", rule_id="arg-type", severity=Severity.HIGH, message="bad", path="src/pkg/calc.py",
                   start_line=line)


def test_finding_context_has_every_part(repo: Path) -> None:
    context = build_context(repo, "src/pkg/calc.py", finding=finding())
    assert context.symbol == "mean" and context.line == 19
    kinds = [p.kind for p in context.parts]
    assert kinds[:2] == ["finding", "enclosing"]
    assert {"imports", "conventions", "test_functions", "file", "test_module", "importers"} <= set(kinds)
    enclosing = context.part("enclosing")
    assert enclosing is not None
    assert enclosing.text.splitlines() == ["    @staticmethod", "    def mean(values):",
                                           "        return sum(values) / len(values)"]
    assert "lines 17-19" in enclosing.title
    assert part(context, "imports").text == "import math\nfrom decimal import Decimal"
    tests = part(context, "test_functions").text
    assert "def test_mean" in tests and "def test_add" not in tests
    conventions = part(context, "conventions").text
    assert "line-length = 100" in conventions and 'select = ["E", "F"]' in conventions
    assert "strict = true" in conventions and "indent_size = 4" in conventions
    assert "[tool.other]" not in conventions and "# a comment" not in conventions and "[project]" not in conventions
    importers = part(context, "importers").text
    assert "src/pkg/report.py: from pkg import calc" in importers
    assert "src/pkg/other.py: import pkg.calc" in importers
    assert "tests/test_calc.py: from pkg.calc import Calculator" in importers
    assert ".venv" not in importers
    assert context.omitted == []
    assert context.tokens == estimate_tokens(context.render()) <= context.token_budget


def test_method_and_module_level_lines(repo: Path) -> None:
    assert build_context(repo, "src/pkg/calc.py", finding=finding(22)).symbol == "add"
    assert build_context(repo, "src/pkg/calc.py", finding=finding(12)).symbol == "Calculator"
    top = build_context(repo, "src/pkg/calc.py", finding=finding(3))
    assert top.symbol is None and "lines 1-18" in part(top, "enclosing").title


def test_traceback_frames_point_into_the_repository(repo: Path) -> None:
    frames = traceback_frames(ERROR.format(root=repo), repo)
    assert [(f.path, f.line, f.function) for f in frames] == [
        ("src/pkg/report.py", 5, "show"), ("src/pkg/calc.py", 19, "mean")]


def test_error_context_uses_the_last_frame_in_the_file(repo: Path) -> None:
    context = build_context(repo, "src/pkg/calc.py", error=ERROR.format(root=repo))
    assert (context.line, context.symbol) == (19, "mean")
    error = context.part("error")
    assert error is not None and str(repo) not in error.text and "/tmp/sandbox-1234" not in error.text
    assert 'File "src/pkg/report.py", line 5' in error.text and 'File "src/pkg/calc.py", line 19' in error.text
    assert "/usr/lib/python3.11/site-packages/thing.py" in error.text  # not ours: left as it was
    frames = context.part("frames")
    assert frames is not None and "src/pkg/report.py:5 in show" in frames.text
    assert ">     return calc.Calculator.mean(v)" in frames.text


def test_budget_drops_the_least_relevant_first_and_says_so(repo: Path) -> None:
    full = build_context(repo, "src/pkg/calc.py", finding=finding())
    small = build_context(repo, "src/pkg/calc.py", finding=finding(), token_budget=full.tokens - 60)
    kinds = [p.kind for p in small.parts]
    assert "finding" in kinds and "enclosing" in kinds
    assert small.omitted, "something had to go"
    assert small.tokens <= small.token_budget
    rendered = small.render()
    assert "Left out to fit the token budget" in rendered
    for line in small.omitted:
        assert line in rendered
    tiny = build_context(repo, "src/pkg/calc.py", finding=finding(), token_budget=150)
    assert [p.kind for p in tiny.parts][:1] == ["finding"]
    assert tiny.tokens <= 150
    assert any("The whole of src/pkg/calc.py" in line for line in tiny.omitted)


def test_essential_parts_are_cut_not_dropped(repo: Path) -> None:
    long_error = "noise line\n" * 2000 + ERROR.format(root=repo)
    context = build_context(repo, "src/pkg/calc.py", error=long_error, token_budget=400)
    error = context.part("error")
    assert error is not None and error.truncated
    assert error.text.rstrip().endswith("ZeroDivisionError: division by zero")  # the tail is kept
    assert any(line.startswith("Error: cut to") for line in context.omitted)
    assert context.tokens <= 400


def test_whole_file_without_a_line(repo: Path) -> None:
    context = build_context(repo, repo / "src/pkg/report.py")
    assert context.line is None and context.part("file") is not None
    assert part(context, "test_module").title == "Test module tests/evidence/test_report.py"


def test_paths_outside_the_repository_are_refused(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.py"
    outside.write_text("x = 1\n")
    with pytest.raises(UsageError, match="outside the repository"):
        build_context(repo, outside)
    with pytest.raises(UsageError, match="does not exist"):
        build_context(repo, "src/pkg/missing.py")


def test_non_python_and_unparsable_files(repo: Path) -> None:
    (repo / "broken.py").write_text("def f(:\n    pass\n" + "x = 1\n" * 40)
    context = build_context(repo, "broken.py", finding=finding(30).model_copy(update={"path": "broken.py"}))
    assert context.symbol is None and "lines 15-42" in part(context, "enclosing").title
    (repo / "app.js").write_text("let a = 1;\n")
    assert part(build_context(repo, "app.js"), "file").text == "let a = 1;\n"


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
