"""A dependency audit judges dependency changes: in a gate it runs only when the change alters what the
dependency files declare; then an unreachable advisory service is still "could not verify"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.cli.main import run

pytestmark = [pytest.mark.tool("pip-audit"), pytest.mark.tool("ruff")]

PYPROJECT = '[project]\nname = "demo"\nversion = "1"\ndependencies = ["requests==2.19.0"]\n'
# an OSV endpoint nobody answers: were the audit run, it could not reach its service
CONFIG = ('[verifiers]\nenabled = ["ruff", "pip-audit"]\n\n[verifiers.pip-audit]\n'
          'args = ["-s", "osv", "--osv-url", "http://127.0.0.1:9/v1/query", "--timeout", "2"]\n')


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")


def gate(capsys: pytest.CaptureFixture[str], root: Path) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = run(["gate", str(root), "--base", "main", "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def test_pip_audit_runs_in_a_gate_only_when_the_dependencies_change(make_repo, capsys) -> None:
    root = make_repo({"pyproject.toml": PYPROJECT, "app.py": "x = 1\n", "truthplane.toml": CONFIG})
    git(root, "checkout", "-qb", "feature")
    (root / "app.py").write_text("x = 2\n")
    (root / "pyproject.toml").write_text(PYPROJECT.replace('version = "1"', 'version = "2"'))
    code, result = gate(capsys, root)
    assert [v["name"] for v in result["verifiers"]] == ["ruff"]
    assert (
        "pip-audit not run: the change leaves the dependencies declared in pyproject.toml as they were"
        in result["reasons"]
    )
    assert result["verdict"] == "APPROVE" and code == 0

    (root / "requirements.txt").write_text("urllib3==1.24.1\n")
    code, result = gate(capsys, root)
    audit = next(v for v in result["verifiers"] if v["name"] == "pip-audit")
    assert audit["status"] == "failed"
    assert result["verdict"] == "UNVERIFIED" and code == 4
