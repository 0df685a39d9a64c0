"""The CodeQL gatekeeper. The CLI cannot be installed here, so a test double named `codeql` (this file
writes it onto PATH) records the argv it is given and answers with recorded CodeQL SARIF
(tests/fixtures/codeql/): what is checked is the exact command lines, the database cache, and how
real CodeQL output is read, diffed, summarised and written back out with its fingerprints."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.truth.test_sarif import validate_sarif
from tests.verifiers.conftest import build_verifier, located
from truthplane.errors import InputError, VerifierError
from truthplane.models import Severity, ToolStatus, VerifierRun
from truthplane.truth.fingerprint import annotate
from truthplane.truth.sarif import run_for, sarif_log
from truthplane.verifiers.sarif_input import findings_from_sarif
from truthplane.truth.gatekeeper import AlertSummary, diff_alerts, summarize
from truthplane.verifiers.codeql import alerts_of, analyze, build_db, tree_hash

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "codeql"
BEFORE = FIXTURES / "javascript-before.sarif"
AFTER = FIXTURES / "javascript-after.sarif"

FAKE_CODEQL = """\
#!{python}
import json, os, shutil, sys
args = sys.argv[1:]
with open(os.environ["FAKE_CODEQL_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args == ["--version"]:
    print("CodeQL command-line toolchain release 2.19.3.")
    print("Copyright (C) 2019-2024 GitHub, Inc.")
elif args[:2] == ["database", "create"]:
    os.makedirs(args[2])
    with open(os.path.join(args[2], "codeql-database.yml"), "w") as db:
        db.write("sourceLocationPrefix: " + [a for a in args if a.startswith("--source-root=")][0][14:] + "\\n")
elif args[:2] == ["database", "analyze"]:
    if os.environ.get("FAKE_CODEQL_SARIF"):
        out = [a for a in args if a.startswith("--output=")][0][9:]
        shutil.copyfile(os.environ["FAKE_CODEQL_SARIF"], out)
else:
    sys.exit("fake codeql: unexpected arguments")
"""


@pytest.fixture
def fake_codeql(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `codeql` first on PATH; returns the file where each call's argv is logged (one JSON list a line)."""
    bin_dir = tmp_path / "codeql-bin"
    bin_dir.mkdir()
    script = bin_dir / "codeql"
    script.write_text(FAKE_CODEQL.format(python=sys.executable))
    script.chmod(0o755)
    log = tmp_path / "codeql-calls.jsonl"
    log.touch()
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_CODEQL_LOG", str(log))
    monkeypatch.setenv("FAKE_CODEQL_SARIF", str(BEFORE))
    return log


def calls(log: Path) -> list[list[str]]:
    return [
        json.loads(line) for line in log.read_text().splitlines() if line.strip() and line.strip() != '["--version"]'
    ]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    shutil.copytree(FIXTURES / "project", root)
    return root


def test_not_installed_says_so_and_how(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    info = build_verifier("codeql").available()
    assert not info.installed
    assert "no package registry ships it" in (info.reason or "") and "truthplane.toml" in (info.reason or "")
    with pytest.raises(VerifierError) as caught:
        build_db(tmp_path, None, "javascript")
    assert caught.value.status == "missing"


def test_build_db_runs_database_create_once_per_tree_and_language(project: Path, fake_codeql: Path) -> None:
    db = build_db(project, None, "javascript")
    expected_dir = project / ".truth-plane-results" / "codeql-dbs" / f"javascript-{tree_hash(project)[:24]}"
    assert db == expected_dir and (db / "codeql-database.yml").is_file()
    (call,) = calls(fake_codeql)
    assert call[:2] == ["database", "create"]
    assert Path(call[2]).parent.parent == db.parent  # built beside the cache, then renamed into place
    assert call[3:] == ["--language=javascript", f"--source-root={project}", "--overwrite"]
    assert build_db(project, None, "javascript") == db and len(calls(fake_codeql)) == 1  # cached
    assert [p.name for p in db.parent.iterdir()] == [db.name]  # no staging left behind
    (project / "src" / "util.ts").write_text("export const changed = 1;\n")
    assert build_db(project, None, "javascript") != db and len(calls(fake_codeql)) == 2  # a new tree


def test_build_command_and_language_reach_the_command_line(project: Path, fake_codeql: Path, tmp_path: Path) -> None:
    db = build_db(project, ["npm", "run", "build"], "javascript-typescript", cache_root=tmp_path / "cache")
    assert db.parent == tmp_path / "cache" / ".truth-plane-results" / "codeql-dbs"
    (call,) = calls(fake_codeql)
    assert call[3:] == ["--language=javascript-typescript", f"--source-root={project}", "--overwrite",
                        "--command=npm run build"]
    with pytest.raises(Exception, match="unknown language 'cobol'"):
        build_db(project, None, "cobol")


def test_analyze_runs_database_analyze_with_sarif_latest(project: Path, fake_codeql: Path, tmp_path: Path) -> None:
    db = build_db(project, None, "javascript")
    out = analyze(db, "codeql/javascript-queries", output=tmp_path / "out" / "js.sarif")
    assert out == tmp_path / "out" / "js.sarif"
    assert json.loads(out.read_text()) == json.loads(BEFORE.read_text())
    call = calls(fake_codeql)[-1]
    assert call[:5] == ["database", "analyze", str(db), "codeql/javascript-queries", "--format=sarif-latest"]
    assert call[5].startswith(f"--output={tmp_path / 'out'}/.js.sarif.") and len(call) == 6  # atomic: temp, rename
    default = analyze(db, "codeql/javascript-queries")
    assert default == db.parent / f"{db.name}.codeql_javascript-queries.sarif" and default.is_file()


def test_analyze_refuses_a_non_database_and_a_run_without_sarif(
    project: Path, fake_codeql: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="is not a CodeQL database"):
        analyze(tmp_path, "codeql/javascript-queries")
    db = build_db(project, None, "javascript")
    monkeypatch.setenv("FAKE_CODEQL_SARIF", "")
    with pytest.raises(VerifierError, match="codeql wrote no readable SARIF"):
        analyze(db, "codeql/javascript-queries", output=tmp_path / "x.sarif")
    assert not (tmp_path / "x.sarif").exists()


def test_verifier_scans_through_the_cli(project: Path, fake_codeql: Path) -> None:
    verifier = build_verifier("codeql", language="javascript")
    assert verifier.available().version == "2.19.3"
    findings = verifier.scan(project).findings
    assert located(findings) == {
        ("js/sql-injection", "src/db.ts", 6),
        ("js/reflected-xss", "src/server.ts", 5),
        ("js/unused-local-variable", "src/util.ts", 2),
    }
    severity = {f.rule_id: f.severity for f in findings}
    assert severity == {"js/sql-injection": Severity.HIGH, "js/reflected-xss": Severity.MEDIUM,
                        "js/unused-local-variable": Severity.LOW}
    analyze_call = calls(fake_codeql)[-1]
    assert analyze_call[3] == "codeql/javascript-queries"  # the language's standard pack by default


def test_diff_alerts_pairs_by_codeqls_fingerprints() -> None:
    diff = diff_alerts(BEFORE, AFTER, renames={"src/util.ts": "src/helpers.ts"})
    assert located(diff.new) == {("js/path-injection", "src/files.ts", 4)}
    assert located(diff.fixed) == {("js/reflected-xss", "src/server.ts", 5)}
    # the injection moved two lines down with the same code; the unused variable's file was renamed
    assert located(diff.unchanged) == {
        ("js/sql-injection", "src/db.ts", 8),
        ("js/unused-local-variable", "src/helpers.ts", 2),
    }
    without_renames = diff_alerts(BEFORE, AFTER)
    assert ("js/unused-local-variable", "src/helpers.ts", 2) in located(without_renames.unchanged)  # paired by content


def test_summarize_alerts_and_a_diff() -> None:
    summary = summarize(BEFORE)
    assert isinstance(summary, AlertSummary)
    assert summary.total == 3 and summary.by_severity == {"high": 1, "medium": 1, "low": 1}
    assert summary.by_rule == {"js/reflected-xss": 1, "js/sql-injection": 1, "js/unused-local-variable": 1}
    assert (
        summary.lines[0] == "high js/sql-injection src/db.ts:6 This query string depends on a [user-provided value](1)."
    )
    per_state = summarize(diff_alerts(BEFORE, AFTER))
    assert isinstance(per_state, dict)
    assert {state: s.total for state, s in per_state.items()} == {"new": 1, "fixed": 1, "unchanged": 2}
    json.dumps({k: v.model_dump() for k, v in per_state.items()})  # plain data, ready for an MCP tool


def test_codeql_sarif_round_trips_with_its_fingerprints(project: Path) -> None:
    validate_sarif(json.loads(BEFORE.read_text()))  # the recorded log is valid SARIF 2.1.0 itself
    alerts = alerts_of(BEFORE)
    assert alerts[0].partial_fingerprints == {
        "primaryLocationLineHash": "da722d1ce2bf36b4:1", "primaryLocationStartColumnFingerprint": "15",
    }
    run = VerifierRun(name="codeql", version="2.19.3", status=ToolStatus.OK, count=len(alerts))
    written = sarif_log([run_for("codeql", alerts, version="2.19.3", run_info=run)])
    validate_sarif(written)
    back = findings_from_sarif(json.loads(json.dumps(written)))
    assert [(f.rule_id, f.path, f.start_line, f.severity, f.partial_fingerprints) for f in back] == [
        (f.rule_id, f.path, f.start_line, f.severity, f.partial_fingerprints) for f in alerts
    ]
    # with the code at hand truthplane computes the same line hashes CodeQL recorded, and adds its own
    annotated = annotate(alerts, lambda rel: (project / rel).read_bytes())
    for original, mine in zip(alerts, annotated, strict=True):
        assert (
            mine.partial_fingerprints["primaryLocationLineHash"]
            == original.partial_fingerprints["primaryLocationLineHash"]
        )
        assert mine.partial_fingerprints["primaryLocationStartColumnFingerprint"] == \
            original.partial_fingerprints["primaryLocationStartColumnFingerprint"]
        assert mine.partial_fingerprints["truthplane/v1"]
