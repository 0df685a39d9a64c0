from __future__ import annotations

from pathlib import Path

import pytest

from truthplane.cache import ResultCache
from truthplane.config import Config
from truthplane.scanner import Excluder, scan, worktree_source

RULE = """rules:
  - id: no-print
    pattern: print(...)
    message: no print
    languages: [python]
    severity: {severity}
"""


def test_excluder_names_globs_and_paths() -> None:
    excluded = Excluder(["node_modules", "*.egg-info", "vendor/**", "tests/fixtures"])
    assert excluded("web/node_modules/x.js") and excluded("pkg.egg-info/PKG-INFO")
    assert excluded("vendor/lib/a.py") and excluded("tests/fixtures/a.py")
    assert not excluded("tests/fixturesx/a.py") and not excluded("src/vendored.py")


@pytest.mark.tool("semgrep")
def test_editing_rules_in_a_semgrep_directory_invalidates_the_cache(make_repo, tmp_path: Path) -> None:
    root = make_repo({"a.py": "print('x')\n", ".semgrep/rules.yml": RULE.format(severity="WARNING")})
    config = Config(verifiers=["semgrep"])
    cache = ResultCache(tmp_path / "cache")
    first = scan(worktree_source(root, config), config, cache=cache)
    assert {(f.rule_id, f.severity.value) for f in first.findings} >= {("no-print", "medium")}
    again = scan(worktree_source(root, config), config, cache=cache)
    assert again.verifiers[0].cached_files == 1
    (root / ".semgrep" / "rules.yml").write_text(RULE.format(severity="ERROR"))
    changed = scan(worktree_source(root, config), config, cache=cache)
    assert changed.verifiers[0].cached_files == 0
    assert ("no-print", "high") in {(f.rule_id, f.severity.value) for f in changed.findings}
