from __future__ import annotations

from pathlib import Path

import pytest

from truthplane.truth.cache import ResultCache
from truthplane.config import Config
from truthplane.truth.scanner import scan
from truthplane.truth.sources import Excluder, worktree_source

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


@pytest.mark.tool("semgrep")
def test_semgrep_subset_in_a_git_repo_agrees_with_the_whole_scan(make_repo) -> None:
    from truthplane.registry import load
    from truthplane.verifiers.interface import VerifierContext

    body = "x = eval(input())\n"
    root = make_repo({"src/deep/a.py": body, "src/b.py": body, "tests/t.py": body, "vendor/v.py": body,
                      "lib/ignored.py": body, ".semgrepignore": "lib/\n"})
    semgrep = load("verifiers", "semgrep")("semgrep", Config().options_for("semgrep"), VerifierContext())
    whole = {(f.path, f.rule_id) for f in semgrep.scan(root).findings}
    subset = {
        (f.path, f.rule_id) for f in semgrep.scan(root, ["src/deep/a.py", "tests/t.py", "lib/ignored.py"]).findings
    }
    assert ("src/deep/a.py", "truthplane.python.eval-exec") in whole
    assert not any(p.startswith("lib/") for p, _ in whole)
    assert subset == {(p, r) for p, r in whole if p in ("src/deep/a.py", "tests/t.py", "lib/ignored.py")}


def test_a_scan_is_written_with_its_files_in_path_order_whatever_order_it_listed_them(tmp_path: Path) -> None:
    import json
    from contextlib import nullcontext

    from truthplane.models import Scan
    from truthplane.truth.sources import Source

    listed = {"b.py": "2" * 40, "a/z.py": "1" * 40, "a.py": "3" * 40, "a-b.py": "4" * 40}
    done = scan(Source(dict(listed), lambda: nullcontext(tmp_path), label="t", commit="c" * 40), Config(),
                verifiers=[])
    assert done.files == listed
    written = done.model_dump_json()
    assert list(json.loads(written)["files"]) == sorted(listed)
    assert Scan.model_validate_json(written) == done
