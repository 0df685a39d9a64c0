"""What `fix` is asked to fix decides what a candidate must achieve (real git, ruff, pytest, local executor)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from truthplane.cli.main import run

# the bug (an off-by-one in `last`) and, elsewhere in the file, an unrelated ruff finding (F401)
PROG = '''import os


def last(items):
    return items[len(items)]


def first(items):
    return items[0]
'''
TESTS = '''from prog import first, last


def test_last():
    assert last([1, 2, 3]) == 3


def test_first():
    assert first([1, 2, 3]) == 1
'''
REAL = '''--- a/prog.py
+++ b/prog.py
@@ -3,7 +3,7 @@
 
 
 def last(items):
-    return items[len(items)]
+    return items[len(items) - 1]
 
 
 def first(items):
'''
# fixes the reproduction and the unrelated import too: ranked above REAL
REAL_AND_IMPORT = '''--- a/prog.py
+++ b/prog.py
@@ -1,9 +1,6 @@
-import os
-
-
 def last(items):
-    return items[len(items)]
+    return items[len(items) - 1]
 
 
 def first(items):
'''
DELETES_SOURCE = REAL + '''--- a/helpers.py
+++ /dev/null
@@ -1,2 +0,0 @@
-def helper():
-    return 1
'''
REPRO = "python -m pytest -q -p no:cacheprovider tests/test_prog.py"
CONFIG = 'verifiers = ["ruff"]\n'

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bwrap")]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    for name in ("GEMINI_API_KEY", "GROQ_API_KEY", "DEEPSEEK_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def project(make_repo, tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    root = make_repo({"prog.py": PROG, "helpers.py": "def helper():\n    return 1\n",
                      "tests/test_prog.py": TESTS, "truthplane.toml": CONFIG})
    patches = {}
    for name, text in {"real": REAL, "real-and-import": REAL_AND_IMPORT, "deletes-source": DELETES_SOURCE}.items():
        patches[name] = tmp_path / f"{name}.diff"
        patches[name].write_text(text)
    return root, patches


def test_with_a_reproduction_the_reproduction_is_the_target(project, capsys) -> None:
    root, patches = project
    code = run(["fix", str(root / "prog.py"), "--repro-cmd", REPRO, "--no-autofix", "--format", "json",
                "--candidate", str(patches["real"])])
    doc = json.loads(capsys.readouterr()[0])
    (real,) = doc["candidates"]
    assert code == 0 and doc["verdict"] == "APPROVE" and doc["winner"] == str(patches["real"]), real["reasons"]
    assert doc["target"]["kind"] == "reproduction" and REPRO in doc["target"]["description"]
    assert real["repro"]["before_rc"] not in (0, None) and real["repro"]["after_rc"] == [0, 0, 0]
    assert [(f["rule_id"], f["start_line"]) for f in real["remaining"]] == [("F401", 1)]
    assert not any("targeted finding" in reason for reason in real["reasons"])
    record = json.loads((root / doc["evidence"]).read_text())
    assert record["target"]["kind"] == "reproduction"


def test_findings_a_candidate_also_fixes_count_in_the_ranking(project, capsys) -> None:
    root, patches = project
    code = run(["fix", str(root / "prog.py"), "--repro-cmd", REPRO, "--no-autofix", "--repro-runs", "1",
                "--candidate", str(patches["real"]), "--candidate", str(patches["real-and-import"])])
    out = capsys.readouterr()[0]
    assert code == 0
    assert f"winner: {patches['real-and-import']}" in out
    assert f"target: the reproduction `{REPRO}`" in out
    assert "remaining (not targets): F401 at prog.py:1" in out  # REAL's leftover is listed, not held against it


def test_without_a_reproduction_the_files_findings_stay_the_target(project, capsys) -> None:
    root, patches = project
    code = run(["fix", str(root / "prog.py"), "--no-autofix", "--format", "json", "--candidate", str(patches["real"])])
    doc = json.loads(capsys.readouterr()[0])
    assert doc["target"] == {"kind": "findings", "description": "the 1 finding(s) in prog.py"}
    assert code == 1 and "fixes none of the 1 targeted finding(s) in prog.py" in doc["candidates"][0]["reasons"]


def test_an_error_without_a_provider_or_candidate_says_what_is_needed(project, capsys) -> None:
    root, _ = project
    before = (root / "prog.py").read_text()
    traceback = ('Traceback (most recent call last):\n  File "prog.py", line 5, in last\n'
                 "IndexError: list index out of range\n")
    code = run(["fix", str(root / "prog.py"), "--error", traceback])
    err = capsys.readouterr()[1]
    assert code == 4
    assert "fixing an error needs an LLM provider" in err and "Ollama" in err and "--provider ollama" in err
    assert (root / "prog.py").read_text() == before


def test_an_error_snippet_is_not_fixed_by_an_unrelated_autofix(tmp_path: Path, capsys) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text("import sys\nimport os\nprint([1, 2][int(sys.argv[0] == '')+2])\n")  # I001-ish, F401
    code = run(
        ["fix", str(snippet), "--error", "Traceback (most recent call last):\nIndexError: list index out of range"]
    )
    assert code == 4 and "needs an LLM provider" in capsys.readouterr()[1]


def test_an_autofix_counts_against_a_reproduction_only_when_it_makes_it_pass(project, capsys) -> None:
    root, _ = project
    code = run(["fix", str(root / "prog.py"), "--repro-cmd", REPRO, "--repro-runs", "1", "--format", "json"])
    doc = json.loads(capsys.readouterr()[0])
    autofixes = [c for c in doc["candidates"] if c["source"] == "autofix"]
    assert autofixes, doc  # ruff removes the unused import...
    assert all(c["verdict"] == "REJECT" for c in autofixes)  # ...which leaves the reproduction failing
    assert all(any("reproduction still fails" in r for r in c["reasons"]) for c in autofixes)
    assert code == 1 and doc["winner"] is None


def test_nothing_to_judge_is_could_not_verify(project, capsys) -> None:
    root, _ = project
    code = run(["fix", str(root / "prog.py"), "--no-autofix"])
    out = capsys.readouterr()[0]
    assert code == 4
    assert "UNVERIFIED  (0 candidate(s))" in out and "no candidate to judge" in out


def test_the_tests_before_any_patch_are_recorded_with_their_failing_tail(project, capsys) -> None:
    root, patches = project
    code = run(["fix", str(root / "prog.py"), "--test-cmd", REPRO, "--repro-cmd", REPRO, "--repro-runs", "1",
                "--no-autofix", "--candidate", str(patches["real"])])
    out = capsys.readouterr()[0]
    assert code == 0, out
    assert "the tests' output before any patch ends with:" in out
    assert "FAILED tests/test_prog.py::test_last" in out
    evidence = next(line.removeprefix("evidence: ") for line in out.splitlines() if line.startswith("evidence: "))
    record = json.loads((root / evidence).read_text())
    (task,) = record["tasks"]
    tests = task["verification"]["tests"]
    assert tests["before_rc"] == 1 and tests["after_rc"] == [0]
    assert "test_last" in tests["before_output_tail"]


def test_deleting_a_source_file_is_named_and_held_for_review(project, capsys) -> None:
    root, patches = project
    code = run(["fix", str(root / "prog.py"), "--repro-cmd", REPRO, "--repro-runs", "1", "--no-autofix",
                "--format", "json", "--candidate", str(patches["real"]), "--candidate", str(patches["deletes-source"])])
    doc = json.loads(capsys.readouterr()[0])
    verdicts = {c["id"]: c for c in doc["candidates"]}
    deleting = verdicts[str(patches["deletes-source"])]
    assert deleting["verdict"] == "REVIEW"  # the same fix as REAL, plus a deleted module nothing tests
    assert "deletes source file helpers.py" in deleting["reasons"]
    assert code == 0 and doc["winner"] == str(patches["real"])


def test_a_finding_given_is_the_target(project, capsys) -> None:
    root, patches = project
    run(["scan", str(root), "--baseline", "--format", "json"])
    scanned = json.loads(capsys.readouterr()[0])
    (unused,) = [f for f in scanned["findings"] if f["rule_id"] == "F401"]
    code = run(["fix", str(root / "prog.py"), "--finding", unused["fingerprint"], "--no-autofix", "--format", "json",
                "--candidate", str(patches["real"]), "--candidate", str(patches["real-and-import"])])
    doc = json.loads(capsys.readouterr()[0])
    assert doc["target"] == {"kind": "finding", "description": "finding F401 at prog.py:1"}
    verdicts = {Path(c["id"]).stem: c for c in doc["candidates"]}
    assert verdicts["real"]["verdict"] == "REJECT"  # fixes the bug, not the finding asked for
    assert code == 0 and Path(doc["winner"]).stem == "real-and-import"


def test_a_candidate_for_an_error_with_no_reproduction_is_held_for_review(project, capsys) -> None:
    root, patches = project
    code = run(["fix", str(root / "prog.py"), "--error", "IndexError: list index out of range", "--no-autofix",
                "--format", "json", "--candidate", str(patches["real"])])
    doc = json.loads(capsys.readouterr()[0])
    (only,) = doc["candidates"]
    assert code == 3 and only["verdict"] == "REVIEW"
    assert "no reproduction of the error ran: nothing shows that this candidate fixes it" in only["reasons"]
    assert doc["target"]["kind"] == "reproduction"
