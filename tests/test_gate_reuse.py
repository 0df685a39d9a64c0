"""A gate's head takes the base's findings for files it has unchanged, and only for those."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.config import load_config
from truthplane.pipeline import ScanOptions, gate

pytestmark = [pytest.mark.tool("ruff")]

UNUSED = "import os\nimport sys\n\n\ndef main():\n    return sys.argv\n"


def run_gate(root: Path, cache: Path):  # noqa: ANN201
    options = ScanOptions(only=["ruff"], cache_dir=cache)
    return gate(root, load_config(root), options, base_ref="main")


def test_unchanged_files_reuse_the_base_and_only_the_change_is_scanned(make_repo, tmp_path: Path) -> None:
    files = {f"pkg/m{i}.py": UNUSED for i in range(5)}
    root = make_repo(files)
    git(root, "checkout", "-qb", "feature")
    (root / "pkg" / "m0.py").write_text("import json\n" + UNUSED)
    git(root, "commit", "-qam", "one more unused import")
    result = run_gate(root, tmp_path / "cache")
    (ruff,) = result.verifiers
    assert ruff.scanned_files == 1 and ruff.cached_files == 4
    assert [(f.rule_id, f.path, f.start_line) for f in result.new] == [("F401", "pkg/m0.py", 1)]
    assert sorted((f.path, f.start_line) for f in result.unchanged) == sorted(
        [("pkg/m0.py", 2)] + [(f"pkg/m{i}.py", 1) for i in range(1, 5)])
    assert result.fixed == []


def test_a_changed_tool_configuration_rescans_every_file(make_repo, tmp_path: Path) -> None:
    root = make_repo({"a.py": UNUSED, "b.py": UNUSED, "pyproject.toml": "[project]\nname = 'x'\n"})
    git(root, "checkout", "-qb", "feature")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n\n[tool.ruff.lint]\nignore = ['F401']\n")
    git(root, "commit", "-qam", "stop checking unused imports")
    result = run_gate(root, tmp_path / "cache")
    (ruff,) = result.verifiers
    # a.py and b.py are byte-identical to the base, but the base's findings no longer hold for them
    assert ruff.scanned_files == 2 and result.unchanged == []
    assert sorted((f.rule_id, f.path) for f in result.fixed) == [("F401", "a.py"), ("F401", "b.py")]
