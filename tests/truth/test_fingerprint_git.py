"""Matching across real git history: renames git detects, and moves it does not."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import git
from tests.truth.test_sarif import validate_sarif
from truthplane.cli.main import run
from truthplane.truth.fingerprint import annotate, match
from truthplane.models import Diff, Finding, Severity

MODULE = "".join(
    f"def handler_{i}(request, scope):\n"
    f"    payload = request.read()\n"
    f"    result = eval(payload, {{'scope': scope, 'n': {i}}})\n"
    f"    return result\n\n\n"
    for i in range(6)
)


def findings_at(repo: Path, rev: str) -> tuple[list[Finding], set[str]]:
    """A stand-in analyser over a commit: one finding per line that calls eval."""
    paths = set(git(repo, "ls-tree", "-r", "--name-only", rev).splitlines())
    found = []
    for path in sorted(paths):
        text = git(repo, "show", f"{rev}:{path}") + "\n"
        for number, line in enumerate(text.splitlines(), start=1):
            if "eval(" in line:
                found.append(Finding(verifier="ruff", rule_id="S307", severity=Severity.MEDIUM,
                                     message="Use of possibly insecure function", path=path, start_line=number))

    def read_source(path: str) -> bytes | None:
        return (git(repo, "show", f"{rev}:{path}") + "\n").encode() if path in paths else None

    return annotate(found, read_source), paths


def git_renames(repo: Path, base: str, head: str) -> dict[str, str]:
    renames = {}
    for line in git(repo, "diff", "--name-status", "-M", base, head).splitlines():
        status, *paths = line.split("\t")
        if status.startswith("R"):
            renames[paths[0]] = paths[1]
    return renames


def diff_commits(repo: Path, base: str, head: str) -> tuple[Diff, dict[str, str]]:
    before, before_files = findings_at(repo, base)
    after, after_files = findings_at(repo, head)
    renames = git_renames(repo, base, head)
    return match(before, after, renames, before_files=before_files, after_files=after_files), renames


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def test_git_mv_with_edits_above_keeps_every_finding(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"app/handlers.py": MODULE, "README.md": "docs\n"})
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "mv", "app/handlers.py", "app/views.py")
    (repo / "app/views.py").write_text("import logging\n\nLOG = logging.getLogger(__name__)\n\n\n" + MODULE)
    result, renames = diff_commits(repo, base, commit_all(repo, "move"))
    assert renames == {"app/handlers.py": "app/views.py"}
    assert (len(result.new), len(result.fixed), len(result.unchanged)) == (0, 0, 6)


def test_move_too_reformatted_for_git_is_still_matched_by_content(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"app/handlers.py": MODULE})
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "rm", "-q", "app/handlers.py")
    reformatted = MODULE.replace("    ", "\t").replace("{'scope': scope, 'n'", '{\n\t\t"scope": scope,\n\t\t"n"')
    reformatted = reformatted.replace("})\n", ",\n\t})\n")
    (repo / "lib").mkdir()
    (repo / "lib/views.py").write_text(reformatted)
    result, renames = diff_commits(repo, base, commit_all(repo, "move and reformat"))
    assert renames == {}  # git sees a deletion and an addition
    assert (len(result.new), len(result.fixed), len(result.unchanged)) == (0, 0, 6)


def test_an_edited_call_in_a_renamed_file_is_updated(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"app/handlers.py": MODULE})
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "mv", "app/handlers.py", "app/views.py")
    (repo / "app/views.py").write_text(MODULE.replace("'n': 3}", "'n': 3, 'os': __import__('os')}"))
    result, _ = diff_commits(repo, base, commit_all(repo, "move and widen the scope"))
    assert (len(result.new), len(result.fixed), len(result.unchanged)) == (0, 0, 5)
    assert [f.symbol for f in result.updated] == ["handler_3"]


# ---- moves across files, through `truthplane gate` with the real analysers -----------------------

UTILS = '''import hashlib
import pickle
import subprocess


def run_shell(command):
    return subprocess.call(command, shell=True)


def checksum(data):
    return hashlib.md5(data).hexdigest()


def load_blob(blob):
    return pickle.loads(blob)


def evaluate(expression):
    return eval(expression)


class Cache:
    def restore(self, blob):
        return pickle.loads(blob)

    def digest(self, data):
        return hashlib.md5(data).hexdigest()
'''


def gate_json(repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(repo.parent / "cache"))
    code = run(["gate", str(repo), "--base", "main", "--verifier", "ruff", "--verifier", "bandit", "--format", "json"])
    out, err = capsys.readouterr()
    assert out, f"gate exited {code} without a verdict: {err}"
    document = json.loads(out)
    assert code == document_exit(document), err
    return document


def document_exit(document: dict[str, Any]) -> int:
    return {"APPROVE": 0, "REJECT": 1, "REVIEW": 3, "UNVERIFIED": 4}[document["verdict"]]


def on_branch(repo: Path, files: dict[str, str | None]) -> None:
    git(repo, "checkout", "-qb", "change")
    for rel, text in files.items():
        if text is None:
            git(repo, "rm", "-q", rel)
        else:
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(text)
    commit_all(repo, "move code")


def rule_paths(findings: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((f["rule_id"], f["path"]) for f in findings)


def part(text: str, start: str, end: str | None = None) -> str:
    """The lines of `text` from the one starting with `start` up to (not including) the one starting with `end`."""
    begin = text.index(start)
    return text[begin : text.index(end, begin) if end else len(text)]




@pytest.mark.tool("ruff")
@pytest.mark.tool("bandit")
def test_a_module_split_into_two_new_files_is_unchanged(make_repo, capsys, monkeypatch) -> None:
    repo = make_repo({"app/utils.py": UTILS, "app/__init__.py": ""})
    first = "import hashlib\nimport subprocess\n\n\n" + part(UTILS, "def run_shell", "def load_blob")
    second = "import hashlib\nimport pickle\n\n\n" + part(UTILS, "def load_blob")
    on_branch(repo, {"app/utils.py": None, "app/shell.py": first, "app/blobs.py": second})
    doc = gate_json(repo, capsys, monkeypatch)
    assert (doc["new"], doc["fixed"]) == ([], []), doc["reasons"]
    assert len(doc["unchanged"]) >= 7 and {f["path"] for f in doc["unchanged"]} >= {"app/shell.py", "app/blobs.py"}
    assert doc["verdict"] == "APPROVE"


@pytest.mark.tool("ruff")
@pytest.mark.tool("bandit")
def test_a_function_extracted_into_a_new_module_is_unchanged(make_repo, capsys, monkeypatch) -> None:
    repo = make_repo({"app/utils.py": UTILS, "app/__init__.py": ""})
    extracted = part(UTILS, "def evaluate", "class Cache")
    rest = UTILS.replace(extracted, "").replace(
        "import subprocess\n", "import subprocess\n\nfrom app.calc import evaluate\n"
    )
    on_branch(repo, {"app/utils.py": rest + "\n\n__all__ = ['evaluate']\n", "app/calc.py": "\n\n" + extracted})
    doc = gate_json(repo, capsys, monkeypatch)
    assert (doc["new"], doc["fixed"]) == ([], []), doc["reasons"]
    assert ("B307", "app/calc.py") in rule_paths(doc["unchanged"])


@pytest.mark.tool("ruff")
@pytest.mark.tool("bandit")
def test_a_class_moved_into_an_existing_module_is_unchanged(make_repo, capsys, monkeypatch) -> None:
    storage = "\n\ndef save(value):\n    return json.dumps(value)\n"
    repo = make_repo({"app/utils.py": UTILS, "app/storage.py": "import json\n" + storage, "app/__init__.py": ""})
    moved = part(UTILS, "class Cache")
    on_branch(repo, {"app/utils.py": UTILS.replace(moved, "").rstrip() + "\n",
                     "app/storage.py": "import hashlib\nimport json\nimport pickle\n" + storage + "\n\n" + moved})
    doc = gate_json(repo, capsys, monkeypatch)
    # utils.py still loads pickles, so the import storage.py gains is a second one: new, the only new
    assert rule_paths(doc["new"]) == [("B403", "app/storage.py")] and doc["fixed"] == []
    assert {("B301", "app/storage.py"), ("B324", "app/storage.py")} <= set(rule_paths(doc["unchanged"]))


@pytest.mark.tool("ruff")
@pytest.mark.tool("bandit")
def test_copied_code_gives_exactly_the_copied_findings_as_new(make_repo, capsys, monkeypatch) -> None:
    repo = make_repo({"app/utils.py": UTILS, "app/calc.py": "VALUE = 1\n", "app/__init__.py": ""})
    copied = part(UTILS, "def evaluate", "class Cache")
    on_branch(repo, {"app/calc.py": "VALUE = 1\n\n\n" + copied})
    doc = gate_json(repo, capsys, monkeypatch)
    assert doc["fixed"] == []
    assert rule_paths(doc["new"]) == [("B307", "app/calc.py")]
    assert ("B307", "app/utils.py") in rule_paths(doc["unchanged"])


# ---- reformatting, through `truthplane gate` with the real analysers and the real formatter ------

CROWDED = '''import pickle
import subprocess


def check(lineno, category, blob):
    assert isinstance(lineno, int) and lineno >= 0, "lineno must be an int >= 0"
    data = pickle.loads(blob); subprocess.call(data, shell=True)
    if blob: return eval(blob)
    return render(formatvalue=lambda value: "=" + repr(eval(value)), category=category)


def render(**kwargs):
    return kwargs
'''


@pytest.mark.tool("ruff")
@pytest.mark.tool("bandit")
def test_ruff_format_at_a_short_line_length_keeps_every_finding(make_repo, capsys, monkeypatch) -> None:
    repo = make_repo({"app/check.py": CROWDED})
    git(repo, "checkout", "-qb", "change")
    subprocess.run(["ruff", "format", "--isolated", "--line-length", "50", "app/check.py"], cwd=repo, check=True,
                   capture_output=True)
    assert "assert (\n" in (repo / "app/check.py").read_text()  # the formatter did split the lines
    commit_all(repo, "ruff format")
    doc = gate_json(repo, capsys, monkeypatch)
    assert doc["new"] == [], doc["reasons"]
    # what the formatter really fixed: statements no longer share a line
    assert {f["rule_id"] for f in doc["fixed"]} <= {"E701", "E702"}
    kept = rule_paths(doc["unchanged"])
    assert {("B101", "app/check.py"), ("B301", "app/check.py"), ("B602", "app/check.py")} <= set(kept)
    assert kept.count(("B307", "app/check.py")) == 2


# ---- a finding on a line the change edited: updated, in every format ------------------------------

BINOMIAL = '''import subprocess


def binomial(n, r):
    total = 0
    for k in range(0, r):
        total += subprocess.call(f"comb {n} {k}", shell=True)
    return total
'''


@pytest.mark.tool("ruff")
@pytest.mark.tool("bandit")
def test_a_one_token_fix_on_a_flagged_line_is_updated_in_every_format(make_repo, capsys, monkeypatch, tmp_path) -> None:
    repo = make_repo({"pyproject.toml": '[tool.ruff.lint]\nextend-select = ["PIE808"]\n', "comb.py": BINOMIAL})
    on_branch(repo, {"comb.py": BINOMIAL.replace("range(0, r)", "range(0, r + 1)")})
    doc = gate_json(repo, capsys, monkeypatch)
    assert doc["verdict"] == "APPROVE", doc["reasons"]
    assert (doc["new"], doc["fixed"]) == ([], [])
    assert [(f["rule_id"], f["start_line"]) for f in doc["updated"]] == [("PIE808", 6)]

    sarif_out, summary_out = tmp_path / "gate.sarif", tmp_path / "summary.md"
    code = run(["gate", str(repo), "--base", "main", "--verifier", "ruff", "--verifier", "bandit",
                "--sarif-out", str(sarif_out), "--summary-out", str(summary_out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "1 updated" in text and "Updated, on lines the change edited (1):" in text and "comb.py:6" in text
    log = json.loads(sarif_out.read_text())
    validate_sarif(log)
    states = {(r["ruleId"], r["baselineState"]) for run_ in log["runs"] for r in run_["results"]}
    assert ("PIE808", "updated") in states and all(state != "new" for _, state in states)
    summary = summary_out.read_text()
    assert "1 updated" in summary and "### Updated findings" in summary and "`comb.py:6`" in summary


@pytest.mark.tool("ruff")
@pytest.mark.tool("bandit")
def test_an_edit_of_a_high_severity_flagged_line_is_review_and_a_new_one_beside_it_rejects(
    make_repo, capsys, monkeypatch,
) -> None:
    repo = make_repo({"comb.py": BINOMIAL})
    edited = BINOMIAL.replace('f"comb {n} {k}"', 'f"comb -v {n} {k}"')
    on_branch(repo, {"comb.py": edited})
    doc = gate_json(repo, capsys, monkeypatch)
    assert doc["verdict"] == "REVIEW" and doc["new"] == [], doc["reasons"]
    assert [f["rule_id"] for f in doc["updated"]] == ["B602"]
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-qD", "change")
    added = edited.replace("    return total", '    subprocess.call(str(n), shell=True)\n    return total')
    on_branch(repo, {"comb.py": added})
    doc = gate_json(repo, capsys, monkeypatch)
    assert doc["verdict"] == "REJECT" and {f["start_line"] for f in doc["new"]} == {8}


TEST_MODULE = (
    "import random\n\n\n"
    + "".join(
        f"def test_case_{i}():\n    token = 'secret-{i}'\n    value = random.random() + {i}\n    check(value, "
        f"token=token)\n\n\n"
        for i in range(6)
    )
    + "def check(value, token):\n    return value, token\n"
)


@pytest.mark.tool("ruff")
@pytest.mark.tool("bandit")
def test_tests_split_out_of_a_module_that_stays_are_unchanged(make_repo, capsys, monkeypatch) -> None:
    repo = make_repo({"tests/test_api.py": TEST_MODULE})
    moved = part(TEST_MODULE, "def test_case_3", "def check")
    helper = "def check(value, token):\n    return value, token\n"
    out = "import random\n\nfrom tests.test_api import check\n\n\n" + moved.rstrip() + "\n"
    on_branch(repo, {"tests/test_api.py": TEST_MODULE.replace(moved, ""), "tests/test_api_more.py": out})
    doc = gate_json(repo, capsys, monkeypatch)
    assert (doc["new"], doc["fixed"], doc["updated"]) == ([], [], []), doc["reasons"]
    assert rule_paths(doc["unchanged"]).count(("B311", "tests/test_api_more.py")) == 3
    assert helper in (repo / "tests/test_api.py").read_text()


@pytest.mark.tool("ruff")
def test_two_stored_baselines_diff_an_edited_flagged_line_as_updated_without_the_code(
    make_repo, capsys, monkeypatch, tmp_path,
) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    repo = make_repo({"pyproject.toml": '[tool.ruff.lint]\nextend-select = ["PIE808"]\n',
                      "comb.py": BINOMIAL.replace("shell=True", "shell=False")})
    stored = []
    for name, text in (("before", None), ("after", BINOMIAL.replace("range(0, r)", "range(0, r + 1)"))):
        if text is not None:
            (repo / "comb.py").write_text('"""Counting."""\n' + text.replace("shell=True", "shell=False"))
        assert run(["scan", str(repo), "--baseline", "--verifier", "ruff"]) in (0, 1, 3)
        written = sorted((repo / ".truth-plane-results").glob("baseline_*.json"))[-1]
        stored.append(written.rename(tmp_path / f"{name}.json"))
    capsys.readouterr()
    (repo / "comb.py").unlink()  # the diff has only the two documents
    code = run(["diff", str(stored[0]), str(stored[1]), "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0, doc["reasons"]
    assert [(f["rule_id"], f["start_line"]) for f in doc["updated"]] == [("PIE808", 7)]
    assert (doc["new"], doc["fixed"]) == ([], [])
