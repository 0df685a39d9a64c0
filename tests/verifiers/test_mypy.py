"""mypy: mypy.ini / setup.cfg / pyproject [tool.mypy] apply via cwd; exit codes and the config file
mypy silently ignores when it cannot parse it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.verifiers.conftest import build_verifier, located
from truthplane.errors import VerifierError
from truthplane.models import Severity
from truthplane.verifiers.mypy import config_names_files

pytestmark = pytest.mark.tool("mypy")

UNTYPED = "def untyped(x):\n    return x\n"
WRONG = "def f(x: int) -> str:\n    return x\n"


@pytest.mark.parametrize(
    "config_file, content",
    [
        ("mypy.ini", "[mypy]\ndisallow_untyped_defs = True\n"),
        ("setup.cfg", "[metadata]\nname = x\n[mypy]\ndisallow_untyped_defs = True\n"),
        ("pyproject.toml", "[tool.mypy]\ndisallow_untyped_defs = true\n"),
    ],
)
def test_repo_config_decides_what_is_found(
    tree: Callable[[dict[str, str]], Path], config_file: str, content: str
) -> None:
    root = tree({"a.py": UNTYPED, config_file: content})
    findings = build_verifier("mypy").scan(root).findings
    assert located(findings) == {("no-untyped-def", "a.py", 1)}
    assert findings[0].severity is Severity.MEDIUM and findings[0].tool_severity == "error"


def test_without_config_untyped_code_is_fine(tree: Callable[[dict[str, str]], Path]) -> None:
    assert build_verifier("mypy").scan(tree({"a.py": UNTYPED})).findings == []


def test_config_files_setting_chooses_what_is_checked(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"src/pkg/m.py": WRONG, "scripts/s.py": WRONG, "pyproject.toml": '[tool.mypy]\nfiles = ["src"]\n'})
    assert {f.path for f in build_verifier("mypy").scan(root).findings} == {"src/pkg/m.py"}


def test_finding_details(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({
        "m.py": WRONG + "reveal_type(f)\nimport surely_not_installed_anywhere\n",
    })
    findings = {f.rule_id: f for f in build_verifier("mypy").scan(root).findings}
    wrong = findings["return-value"]
    assert (wrong.start_line, wrong.start_column, wrong.end_line, wrong.end_column) == (2, 12, 2, 13)
    note = [f for f in findings.values() if f.tool_severity == "note"]
    assert note and note[0].severity is Severity.NOTE and "Revealed type" in note[0].message
    missing = findings["import-not-found"]
    assert missing.help_uri and missing.help_uri.startswith("https://mypy.readthedocs.io/")


def test_subset_checks_named_files(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"a.py": WRONG, "b.py": WRONG})
    findings = build_verifier("mypy").scan(root, files=["b.py", "deleted.py", "notes.md"]).findings
    assert {f.path for f in findings} == {"b.py"}


def test_args_are_appended(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"a.py": UNTYPED})
    assert located(build_verifier("mypy", args=["--disallow-untyped-defs"]).scan(root).findings) == {
        ("no-untyped-def", "a.py", 1)
    }


@pytest.mark.parametrize(
    "config_file, content",
    [("mypy.ini", "[mypy\nstrict = True\n"), ("pyproject.toml", '[tool.mypy]\nstrict = "x\n')],
)
def test_unreadable_config_is_an_error_though_mypy_exits_0(
    tree: Callable[[dict[str, str]], Path], config_file: str, content: str
) -> None:
    root = tree({"a.py": UNTYPED, config_file: content})
    with pytest.raises(VerifierError, match="configuration"):
        build_verifier("mypy").scan(root)


def test_unrecognised_option_is_only_a_warning(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"a.py": WRONG, "mypy.ini": "[mypy]\nsome_future_option = True\n"})
    assert located(build_verifier("mypy").scan(root).findings) == {("return-value", "a.py", 2)}


def test_blocking_error_is_could_not_run(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"a.py": WRONG, "bad.py": "def f(:\n"})
    with pytest.raises(VerifierError) as caught:
        build_verifier("mypy").scan(root)
    assert "bad.py:1" in caught.value.reason and caught.value.status == "failed"


def test_bad_argument_is_could_not_run(tree: Callable[[dict[str, str]], Path]) -> None:
    with pytest.raises(VerifierError):
        build_verifier("mypy", args=["--no-such-flag"]).scan(tree({"a.py": WRONG}))


def test_config_names_files(tmp_path: Path) -> None:
    assert not config_names_files(tmp_path)
    (tmp_path / "setup.cfg").write_text("[mypy]\nfiles = src\n", encoding="utf-8")
    assert config_names_files(tmp_path)
    # mypy.ini comes first in mypy's search order and does not name files
    (tmp_path / "mypy.ini").write_text("[mypy]\nstrict = True\n", encoding="utf-8")
    assert not config_names_files(tmp_path)


def test_two_trees_never_share_a_mypy_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the same module name and content in two trees: a shared cache made mypy report nothing for the second
    import tempfile

    from tests.verifiers.conftest import write_tree

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    first = write_tree(tmp_path / "first", {"m.py": WRONG})
    second = write_tree(
        tmp_path / "second", {"src/pkg/m.py": WRONG, "pyproject.toml": '[tool.mypy]\nfiles = ["src"]\n'}
    )
    verifier = build_verifier("mypy")
    assert located(verifier.scan(first).findings) == {("return-value", "m.py", 2)}
    assert located(verifier.scan(second).findings) == {("return-value", "src/pkg/m.py", 2)}
    assert len(list((tmp_path / "cache" / "mypy").iterdir())) == 2
    # and a warm run over the same tree gives the same answer
    assert located(verifier.scan(second).findings) == {("return-value", "src/pkg/m.py", 2)}
