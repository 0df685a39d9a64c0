"""Shared parsing helpers: paths become repo-relative POSIX, JSON that is not JSON is an error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from truthplane.errors import VerifierError
from truthplane.models import Severity
from truthplane.verifiers._common import one_line, parse_json, repo_path, select_files, severity_from_word


def test_repo_path_forms(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a b.py").write_text("", encoding="utf-8")
    assert repo_path(tmp_path, str(tmp_path / "pkg" / "a b.py")) == "pkg/a b.py"
    assert repo_path(tmp_path, "./pkg/a b.py") == "pkg/a b.py"
    assert repo_path(tmp_path, "pkg/../pkg/a b.py") == "pkg/a b.py"


def test_repo_path_through_a_symlinked_root(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "src").mkdir(parents=True)
    (real / "src" / "m.py").write_text("", encoding="utf-8")
    link = tmp_path / "link"
    os.symlink(real, link)
    assert repo_path(link, str(real / "src" / "m.py")) == "src/m.py"
    assert repo_path(link, str(link / "src" / "m.py")) == "src/m.py"


def test_select_files_keeps_existing_matching_files(tmp_path: Path) -> None:
    for name in ("a.py", "b.txt"):
        (tmp_path / name).write_text("", encoding="utf-8")
    (tmp_path / "dir.py").mkdir()
    assert select_files(tmp_path, ["b.txt", "a.py", "gone.py", "dir.py", "a.py"], (".py",)) == ["a.py"]
    assert select_files(tmp_path, ["b.txt", "a.py"], ()) == ["a.py", "b.txt"]


def test_parse_json_rejects_garbage_with_a_one_line_reason() -> None:
    assert parse_json("v", '{"a": 1}', "tool") == {"a": 1}
    with pytest.raises(VerifierError) as caught:
        parse_json("v", "Traceback (most recent call last):\n  boom\n", "tool")
    assert "\n" not in str(caught.value) and "Traceback" in str(caught.value)
    with pytest.raises(VerifierError, match="printed nothing on stdout .*config missing"):
        parse_json("v", "", "tool", stderr="starting\nerror: config missing\n")


def test_one_line_and_severity_words() -> None:
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 1000, 50)) == 50
    assert severity_from_word("ERROR", Severity.LOW) is Severity.HIGH
    assert severity_from_word("Warning", Severity.LOW) is Severity.MEDIUM
    assert severity_from_word("whatever", Severity.LOW) is Severity.LOW
    assert severity_from_word(None, Severity.NOTE) is Severity.NOTE


def test_repo_path_outside_the_repository_is_never_absolute(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    assert repo_path(repo, str(tmp_path / "elsewhere" / "x.py")) == "../elsewhere/x.py"
    assert repo_path(repo, str(repo)) == "."
