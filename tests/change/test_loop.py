"""`truthplane fix` end to end: real verifiers, the real local executor, patch and LLM candidates."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.cli.main import run

CALC = '''def mean(values):
    return sum(values) / len(values) + 1


def total(values):
    return sum(values)
'''
TESTS = '''from calc import mean, total


def test_mean():
    assert mean([1, 2, 3]) == 2


def test_total():
    assert total([1, 2]) == 3
'''
CONFIG = 'verifiers = ["ruff", "pytest"]\n'
REPRO = "python -c 'from calc import mean; assert mean([1, 2, 3]) == 2'"

RIGHT = '''--- a/calc.py
+++ b/calc.py
@@ -1,5 +1,5 @@
 def mean(values):
-    return sum(values) / len(values) + 1
+    return sum(values) / len(values)
 
 
 def total(values):
'''
RIGHT_SPACED = RIGHT.replace("+    return sum(values) / len(values)", "+    return sum(values)/len(values)")
WRONG = RIGHT.replace("+    return sum(values) / len(values)", "+    return sum(values) / len(values) + 2")
BREAKS = '''--- a/calc.py
+++ b/calc.py
@@ -1,6 +1,6 @@
 def mean(values):
-    return sum(values) / len(values) + 1
+    return sum(values) / len(values)
 
 
 def total(values):
-    return sum(values)
+    return sum(values) + 1
'''
NOQA = RIGHT.replace("+    return sum(values) / len(values)", "+    return sum(values) / len(values)  # noqa")
DELETES_TEST = '''--- a/tests/test_calc.py
+++ b/tests/test_calc.py
@@ -1,9 +1,5 @@
 from calc import mean, total
 
 
-def test_mean():
-    assert mean([1, 2, 3]) == 2
-
-
 def test_total():
     assert total([1, 2]) == 3
'''
STALE = RIGHT.replace(" def mean(values):", " def average(values):")

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bwrap")]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def buggy(make_repo, tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    root = make_repo({"calc.py": CALC, "tests/test_calc.py": TESTS, "truthplane.toml": CONFIG})
    patches = {}
    for name, text in {"right": RIGHT, "spaced": RIGHT_SPACED, "wrong": WRONG, "breaks": BREAKS,
                       "noqa": NOQA, "deletes-test": DELETES_TEST, "stale": STALE}.items():
        patches[name] = tmp_path / f"{name}.diff"
        patches[name].write_text(text)
    return root, patches


def state(root: Path) -> tuple[str, str, bytes, bytes]:
    """HEAD, status, the file and the index; the evidence truthplane writes is not the user's change."""
    status = "\n".join(
        line for line in git(root, "status", "--porcelain").splitlines() if ".truth-plane-results" not in line
    )
    return (git(root, "rev-parse", "HEAD"), status,
            (root / "calc.py").read_bytes(), (root / ".git" / "index").read_bytes())


def fix(capsys, root: Path, patches: dict[str, Path], names: list[str], *extra: str) -> tuple[int, dict]:
    args = ["fix", str(root / "calc.py"), "--repro-cmd", REPRO, "--repro-runs", "2", "--format", "json", *extra]
    for name in names:
        args += ["--candidate", str(patches[name])]
    code = run(args)
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def test_each_candidate_gets_the_verdict_it_deserves_and_nothing_changes(buggy, capsys) -> None:
    root, patches = buggy
    before = state(root)
    names = ["right", "spaced", "wrong", "breaks", "noqa", "deletes-test", "stale"]
    code, doc = fix(capsys, root, patches, names)
    verdicts = {c["id"]: c for c in doc["candidates"]}
    right = str(patches["right"])
    assert code == 0 and doc["verdict"] == "APPROVE" and doc["winner"] == right
    assert str(patches["spaced"]) not in verdicts  # merged into its duplicate
    assert verdicts[right]["verdict"] == "APPROVE"
    assert {f["rule_id"] for f in verdicts[right]["fixed"]} == {"test-failure"}
    assert verdicts[right]["repro"]["after_rc"] == [0, 0]

    def why(name: str) -> str:
        entry = verdicts[str(patches[name])]
        assert entry["verdict"] == "REJECT", entry
        return " ".join(entry["reasons"])

    assert "reproduction still fails" in why("wrong")
    assert "new finding" in why("breaks") and "test-failure" in why("breaks")
    assert "noqa" in why("noqa")
    assert "test" in why("deletes-test")
    assert "apply" in why("stale")
    assert state(root) == before  # a dry run changes nothing at all
    evidence = root / doc["evidence"]
    record = json.loads(evidence.read_text())
    assert record["overall_verdict"] == "APPROVE" and record["winner"] == right
    assert record["honest_metrics"]["truth_gate_approvals"] == 1
    assert record["honest_metrics"]["truth_gate_rejections"] == 5
    assert record["honest_metrics"]["git_commits"] == 0


def test_no_approved_candidate_exits_1_and_changes_nothing(buggy, capsys) -> None:
    root, patches = buggy
    before = state(root)
    code, doc = fix(capsys, root, patches, ["wrong", "noqa"], "--apply")
    assert code == 1 and doc["winner"] is None and doc["applied"] is False
    assert state(root) == before


def test_apply_writes_the_winner_only(buggy, capsys) -> None:
    root, patches = buggy
    head = git(root, "rev-parse", "HEAD")
    code, doc = fix(capsys, root, patches, ["right", "wrong"], "--apply")
    assert code == 0 and doc["applied"] is True
    assert "return sum(values) / len(values)\n" in (root / "calc.py").read_text()
    assert git(root, "rev-parse", "HEAD") == head
    assert git(root, "status", "--porcelain", "--untracked-files=no") == "M calc.py"


def test_apply_refuses_when_the_file_changed_meanwhile(buggy, capsys, monkeypatch) -> None:
    root, patches = buggy
    import truthplane.change.loop as loop

    real = loop.choose_winner

    def edit_then_choose(results):  # the user saves the file while candidates are judged
        (root / "calc.py").write_text(CALC + "# edited meanwhile\n")
        return real(results)

    monkeypatch.setattr(loop, "choose_winner", edit_then_choose)
    code = run(["fix", str(root / "calc.py"), "--repro-cmd", REPRO, "--candidate", str(patches["right"]), "--apply"])
    _, err = capsys.readouterr()
    assert code == 4 and "changed since truthplane took its snapshot" in err
    assert (root / "calc.py").read_text() == CALC + "# edited meanwhile\n"


def test_commit_records_the_evidence_and_only_the_winners_files(buggy, capsys) -> None:
    root, patches = buggy
    (root / "notes.txt").write_text("work in progress\n")  # the user's other work stays as it is
    head = git(root, "rev-parse", "HEAD")
    code, doc = fix(capsys, root, patches, ["right"], "--commit")
    assert code == 0 and doc["commit"]
    assert git(root, "rev-parse", "HEAD") == doc["commit"]
    assert git(root, "rev-parse", "HEAD~1") == head
    assert git(root, "show", "--name-only", "--format=", "HEAD") == "calc.py"
    message = git(root, "log", "-1", "--format=%B")
    assert "Truthplane-Verdict: APPROVE" in message and "Truthplane-Reproduction:" in message
    assert git(root, "status", "--porcelain").splitlines() == ["?? notes.txt"]  # the results ignore themselves


def test_llm_candidates_and_reproduction_from_a_local_openai_compatible_server(buggy, capsys, monkeypatch) -> None:
    from tests.llm.servers import Answer, OpenAIServer

    root, _ = buggy
    server = OpenAIServer(api_key="sk-test-key")
    monkeypatch.setenv("GROQ_API_KEY", "sk-test-key")
    try:
        (root / "truthplane.toml").write_text(
            CONFIG + f'[llm.providers.groq]\nbase_url = "{server.base_url}"\nmodel = "test-model"\n')
        git(root, "commit", "-qam", "llm config")
        server.script(
            Answer(json.dumps({"category": "logic", "confidence": 0.9, "rationale": "off by one in mean"})),
            Answer(json.dumps({"script": "from calc import mean\nassert mean([1, 2, 3]) == 2\n",
                               "explanation": "mean of 1..3 is 2"})),
            Answer(json.dumps({"candidates": [
                {"title": "drop the + 1", "diff": RIGHT, "rationale": "the mean has no offset"},
                {"title": "add 2", "diff": WRONG, "rationale": "wrong on purpose"},
            ]})),
        )
        code = run(["fix", str(root / "calc.py"), "--provider", "groq", "--candidates", "2", "--format", "json"])
        doc = json.loads(capsys.readouterr()[0])
    finally:
        server.stop()
    assert code == 0 and doc["winner"] == "llm-1", [
        (c["id"], c["verdict"], c["reasons"], c["repro"]) for c in doc["candidates"]
    ]
    verdicts = {c["id"]: c["verdict"] for c in doc["candidates"]}
    assert verdicts == {"llm-1": "APPROVE", "llm-2": "REJECT"}
    record = json.loads((root / doc["evidence"]).read_text())
    task = next(t for t in record["tasks"] if t["task_id"] == "llm-1")
    assert task["llm"]["provider"] == "groq" and task["llm"]["model"] == "test-model"
    assert "sk-test-key" not in (root / doc["evidence"]).read_text()
    # the three calls are recorded in the history under this run's id, so its cost is the run's
    from truthplane.store import Store

    with Store.open(root=root) as store:
        calls = store.usage_rows(run_id=record["run_id"])
    assert [(c.provider, c.outcome) for c in calls] == [("groq", "ok")] * 3


def test_standalone_snippet_with_an_error(tmp_path: Path, capsys) -> None:
    snippet = tmp_path / "snippet dir" / "snippet.py"
    snippet.parent.mkdir()
    snippet.write_text("items = [1, 2]\nprint(items[2])\n")
    patch = tmp_path / "fix.diff"
    patch.write_text("--- a/snippet.py\n+++ b/snippet.py\n@@ -1,2 +1,2 @@\n items = [1, 2]\n"
                     "-print(items[2])\n+print(items[1])\n")
    traceback = 'Traceback (most recent call last):\n  File "snippet.py", line 2\nIndexError: list index out of range\n'
    code = run(["fix", str(snippet), "--error", traceback, "--repro-cmd", "python snippet.py", "--repro-runs", "1",
                "--candidate", str(patch), "--format", "json"])
    doc = json.loads(capsys.readouterr()[0])
    assert code == 0 and doc["winner"] == str(patch), doc  # the reproduction fails before and passes after
    assert doc["target"]["kind"] == "reproduction"
    assert {c["source"] for c in doc["candidates"]} <= {"patch", "autofix"}
    assert snippet.read_text() == "items = [1, 2]\nprint(items[2])\n"  # dry run
    assert not subprocess.run(["git", "rev-parse"], cwd=snippet.parent, capture_output=True).returncode == 0


def test_standalone_snippet_failure_leaves_no_temporary_repository(tmp_path: Path, capsys, monkeypatch) -> None:
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    snippet = tmp_path / "snippet.py"
    snippet.write_text("x = 1\n")
    code = run(["fix", str(snippet), "--finding", "no-such-fingerprint"])
    assert code == 2 and "no finding no-such-fingerprint" in capsys.readouterr()[1]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_how_the_tests_and_reproduction_did_before_still_decides(buggy, capsys) -> None:
    """The baseline's tests and reproduction run beside the candidates: their results still reach every verdict."""
    root, patches = buggy
    code = run(["fix", str(root / "calc.py"), "--candidate", str(patches["right"]), "--format", "json",
                "--repro-cmd", "true", "--test-cmd", "python -c 'import sys; sys.exit(3)'"])
    doc = json.loads(capsys.readouterr()[0])
    (only,) = doc["candidates"]
    assert code == 3 and doc["verdict"] == "REVIEW", doc
    assert "the tests fail before any patch (exit 3)" in doc["reasons"]
    assert "the reproduction passes without any patch: it does not reproduce the problem" in doc["reasons"]
    assert only["verdict"] == "REVIEW"
    assert "the tests failed before and still fail: no regression can be ruled out" in only["reasons"]
    assert "the reproduction passed before the patch too: it proves nothing" in only["reasons"]
    assert only["repro"]["before_rc"] == 0 and set(only["repro"]["after_rc"]) == {0}  # repeated (default 3)
