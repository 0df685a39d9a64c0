"""The fix loop sees a finding on a line the patch edited as updated, not as a new one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from truthplane.cli.main import run

COMB = '''import os


def total(r):
    result = 0
    for k in range(0, r):
        result += k
    return result
'''
# removes the unused import (the finding to fix) and makes the range inclusive on the line PIE808 flags
PATCH = '''--- a/comb.py
+++ b/comb.py
@@ -1,8 +1,5 @@
-import os
-
-
 def total(r):
     result = 0
-    for k in range(0, r):
+    for k in range(0, r + 1):
         result += k
     return result
'''
CONFIG = 'verifiers = ["ruff"]\n'
PYPROJECT = '[tool.ruff.lint]\nextend-select = ["PIE808"]\n'


@pytest.mark.tool("ruff")
def test_a_patch_that_edits_a_flagged_line_is_approved_with_the_finding_updated(make_repo, capsys, monkeypatch,
                                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    root = make_repo({"comb.py": COMB, "truthplane.toml": CONFIG, "pyproject.toml": PYPROJECT})
    patch = tmp_path / "inclusive.diff"
    patch.write_text(PATCH)
    code = run(["fix", str(root / "comb.py"), "--candidate", str(patch), "--no-autofix", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    candidate = doc["candidates"][0]
    assert code == 0 and doc["winner"] == str(patch), candidate["reasons"]
    assert [f["rule_id"] for f in candidate["fixed"]] == ["F401"] and candidate["new"] == []
    assert [(f["rule_id"], f["start_line"]) for f in candidate["updated"]] == [("PIE808", 3)]
    assert (root / "comb.py").read_text() == COMB  # a dry run
