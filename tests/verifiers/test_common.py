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


def test_tool_versions_asked_once_and_all_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verifiers that learn their versions at the same moment all keep them, and a version is asked
    once even when a gate's two scans want it together."""
    import json
    import threading

    from truthplane.verifiers.versions import tool_version

    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for name in ("tool-a", "tool-b", "tool-c"):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\necho {name} >> {calls}\nsleep 0.2\necho '{name} 1.2.3'\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    results: list[str | None] = []
    threads = [
        threading.Thread(
            target=lambda n=name: results.append(tool_version(n, [n, "--version"], install_hint="-").version)
        )
        for name in ("tool-a", "tool-b", "tool-c")
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["1.2.3"] * 6
    assert sorted(calls.read_text().split()) == ["tool-a", "tool-b", "tool-c"]
    stored = json.loads((tmp_path / "cache" / "tool-versions.json").read_text())
    assert sorted(key.split("|")[0] for key in stored) == [str(bin_dir / n) for n in ("tool-a", "tool-b", "tool-c")]
    tool_version("tool-a", ["tool-a", "--version"], install_hint="-")
    assert len(calls.read_text().split()) == 3  # remembered on disk
