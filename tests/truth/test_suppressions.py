"""Suppressions: a result the tool reports suppressed is no finding (listed under `suppressed`), and every
suppression a change adds is named in the gate's reasons with file and line and holds it for REVIEW."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git
from tests.js_harness import link_node_modules, ts_project
from tests.truth.test_sarif import validate_sarif
from truthplane.cli.main import run
from truthplane.truth.suppressions import added_suppressions

APP = (
    "export function greet(name: string): string {\n"
    '  const greeting = "hello " + name;\n'
    "  // eslint-disable-next-line eqeqeq\n"
    '  if (name == "root") {\n'                    # 4 eqeqeq, suppressed from the start
    '    return "hi";\n'
    "  }\n"
    '  if (name == "admin") {\n'                   # 7 eqeqeq: the change suppresses it
    '    return "hello admin";\n'
    "  }\n"
    "  return greeting;\n"
    "}\n"
)
APP_SUPPRESSED = APP.replace('  if (name == "admin") {\n', '  if (name == "admin") { // eslint-disable-line eqeqeq\n')
APP_FIXED = APP.replace('  if (name == "admin") {\n', '  if (name === "admin") {\n')
RISKY = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = run(list(args))
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def keyed(findings: list[dict]) -> set[tuple[str, str, int | None]]:  # type: ignore[type-arg]
    return {(f["rule_id"], f["path"], f["start_line"]) for f in findings}


@pytest.mark.tool("eslint")
def test_eslint_suppressed_lines_are_listed_not_counted_and_a_new_one_is_named(
    make_repo, capsys: pytest.CaptureFixture[str], tmp_path: Path,
) -> None:
    root = make_repo({**ts_project(), "src/app.ts": APP, "truthplane.toml": 'verifiers = ["eslint"]\n'})
    link_node_modules(root)
    code, scan = cli(capsys, "scan", str(root), "--baseline", "--format", "json")
    assert code == 0, scan
    assert keyed(scan["findings"]) == {("eqeqeq", "src/app.ts", 7)}
    assert keyed(scan["suppressed"]) == {("eqeqeq", "src/app.ts", 4)}
    assert scan["verifiers"][0]["count"] == 1
    written = json.loads((root / ".sarif-results" / "eslint.sarif").read_text())
    validate_sarif(written)
    assert [r["suppressions"] for r in written["runs"][0]["results"] if r.get("suppressions")] == [
        [{"kind": "inSource"}]
    ]

    git(root, "checkout", "-qb", "quiet")
    (root / "src/app.ts").write_text(APP_SUPPRESSED)
    git(root, "commit", "-qam", "silence eqeqeq")
    sarif_out = tmp_path / "gate.sarif"
    code, gated = cli(capsys, "gate", str(root), "--base", "main", "--format", "json", "--sarif-out", str(sarif_out))
    assert gated["verdict"] == "REVIEW" and code == 3
    assert "adds `eslint-disable` at src/app.ts:7" in gated["reasons"]
    # silenced is not fixed: the finding is listed among the suppressed results
    assert gated["fixed"] == [] and gated["new"] == []
    assert keyed(gated["suppressed"]) == {("eqeqeq", "src/app.ts", 4), ("eqeqeq", "src/app.ts", 7)}
    log = json.loads(sarif_out.read_text())
    validate_sarif(log)
    assert sum(1 for r in log["runs"][0]["results"] if r.get("suppressions")) == 2

    # a real fix beside a suppression the base already had is a fix
    git(root, "checkout", "-q", "main")
    git(root, "checkout", "-qb", "fixed")
    (root / "src/app.ts").write_text(APP_FIXED)
    code, gated = cli(capsys, "gate", str(root), "--base", "main", "--format", "json")
    assert keyed(gated["fixed"]) == {("eqeqeq", "src/app.ts", 7)}
    assert keyed(gated["suppressed"]) == {("eqeqeq", "src/app.ts", 4)}
    assert not [r for r in gated["reasons"] if r.startswith("adds ")]
    assert gated["verdict"] == "APPROVE" and code == 0


@pytest.mark.tool("ruff")
@pytest.mark.tool("bandit")
def test_a_python_change_that_adds_nosec_and_noqa_is_held_for_review(
    make_repo, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo({
        "app/tool.py": RISKY, "app/old.py": "import os  # noqa: F401\n", "README.md": "Use `# noqa` sparingly.\n",
        "truthplane.toml": 'verifiers = ["ruff", "bandit"]\n',
    })
    git(root, "checkout", "-qb", "quiet")
    (root / "app/tool.py").write_text(RISKY.replace("shell=True)", "shell=True)  # nosec B602"))
    # moving a line that already had its noqa, and prose about noqa, add nothing
    (root / "app/old.py").write_text("\nimport os  # noqa: F401\n")
    (root / "README.md").write_text("Use `# noqa` sparingly.\n# noqa\n")
    (root / "app/new.py").write_text("import sys  # noqa: F401\n")
    code, gated = cli(capsys, "gate", str(root), "--base", "main", "--format", "json")
    added = [r for r in gated["reasons"] if r.startswith("adds ")]
    assert added == ["adds `# noqa` at app/new.py:1", "adds `# nosec` at app/tool.py:5"]
    assert gated["verdict"] == "REVIEW" and code == 3
    # bandit drops what `# nosec` silences; the code still has it: suppressed, not fixed
    assert gated["fixed"] == []
    assert ("B602", "app/tool.py", 5) in keyed(gated["suppressed"])
    # the same change committed and judged as a commit: the contents come from git's objects
    git(root, "add", "-A")
    git(root, "commit", "-qm", "quiet")
    git(root, "checkout", "-q", "main")
    code, by_commit = cli(capsys, "gate", str(root), "--base", "main", "--head", "quiet", "--format", "json")
    assert [r for r in by_commit["reasons"] if r.startswith("adds ")] == added
    assert by_commit["fixed"] == [] and code == 3


def test_added_suppressions_reads_directives_in_comments_only() -> None:
    before = 'x = "# noqa"\nvalue = compute()  # type: ignore\n'
    moved = 'value = compute()  # type: ignore\n\nx = "# noqa"\n'
    assert added_suppressions("a.py", before, moved) == []
    assert added_suppressions("a.py", before, before + "y = 1  # type: ignore[assignment]\n") == [
        "adds `# type: ignore` at a.py:3"]
    assert added_suppressions("a.ts", None, "// @ts-expect-error\nconst n: number = 'x';\n") == [
        "adds `@ts-expect-error` at a.ts:1"]
    assert added_suppressions("a.py", None, "query = run(sql)  # nosemgrep\n") == ["adds `nosemgrep` at a.py:1"]
    config = '[tool.ruff.lint]\nselect = ["S"]\n'
    widened = config + '[tool.ruff.lint.per-file-ignores]\n"app/*" = ["S602"]\n'
    assert added_suppressions("pyproject.toml", config, widened) == [
        "adds a per-file ignore of S602 for 'app/*' in pyproject.toml"]
