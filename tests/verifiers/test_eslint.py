"""eslint with a real TypeScript project: the repository's flat config (with @eslint/js and
typescript-eslint from its node_modules), SARIF from @microsoft/eslint-formatter-sarif, severities,
max_warnings, file subsets, parse errors, broken configs, the sandbox, and eslint --fix candidates."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.js_harness import NODE_MODULES, link_node_modules, ts_project, write_files
from tests.truth.test_sarif import validate_sarif
from tests.verifiers.conftest import build_verifier, located
from truthplane.change.autofix import autofix_candidates
from truthplane.errors import VerifierError
from truthplane.models import Severity, ToolStatus, VerifierRun
from truthplane.truth.fingerprint import annotate
from truthplane.truth.sarif import run_for, sarif_log
from truthplane.verifiers.sarif_input import findings_from_sarif
from truthplane.verifiers.interface import Verifier

pytestmark = pytest.mark.tool("eslint")

APP = (
    "export function greet(name: string): string {\n"   # 1
    "  let greeting = 'hello ' + name;\n"                # 2 prefer-const
    "  console.log(greeting);\n"                         # 3 no-console (warning)
    "  if (name == 'admin') {\n"                          # 4 eqeqeq
    "    return 'hi';\n"
    "  }\n"
    "  return greeting;\n"
    "}\n"
)
UTIL = "export const unused = 1;\nconst dead = 2;\n"  # 2 @typescript-eslint/no-unused-vars


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = write_files(tmp_path / "web", {**ts_project(), "src/app.ts": APP, "src/util.ts": UTIL})
    link_node_modules(root)
    return root


def eslint(root: Path, **options: object) -> Verifier:
    verifier = build_verifier("eslint", **options)
    verifier.project_root = root  # type: ignore[attr-defined]
    return verifier


EXPECTED = {
    ("prefer-const", "src/app.ts", 2),
    ("no-console", "src/app.ts", 3),
    ("eqeqeq", "src/app.ts", 4),
    ("@typescript-eslint/no-unused-vars", "src/util.ts", 2),
}


def test_repository_flat_config_findings_and_severities(project: Path) -> None:
    verifier = eslint(project)
    assert verifier.available().version == "9.39.1"
    findings = verifier.scan(project).findings
    assert located(findings) == EXPECTED
    by_rule = {f.rule_id: f for f in findings}
    assert by_rule["eqeqeq"].severity is Severity.MEDIUM and by_rule["eqeqeq"].tool_severity == "error"
    assert by_rule["no-console"].severity is Severity.LOW and by_rule["no-console"].tool_severity == "warning"
    assert by_rule["eqeqeq"].start_column == 12
    assert by_rule["eqeqeq"].help_uri == "https://eslint.org/docs/latest/rules/eqeqeq"
    assert by_rule["@typescript-eslint/no-unused-vars"].message == "'dead' is assigned a value but never used."


def test_max_warnings_makes_warnings_reject_only_beyond_the_limit(project: Path) -> None:
    strict = {f.rule_id: f.severity for f in eslint(project, max_warnings=0).scan(project).findings}
    assert strict["no-console"] is Severity.HIGH and strict["eqeqeq"] is Severity.MEDIUM
    lenient = {f.rule_id: f.severity for f in eslint(project, max_warnings=1).scan(project).findings}
    assert lenient["no-console"] is Severity.LOW


def test_file_subset_agrees_with_the_whole_scan(project: Path) -> None:
    whole = eslint(project).scan(project).findings
    subset = eslint(project).scan(project, files=["src/util.ts", "README.md", "gone.ts"]).findings
    assert subset == [f for f in whole if f.path == "src/util.ts"]
    assert eslint(project).scan(project, files=["notes.txt"]).findings == []


def test_a_long_file_list_lints_everything_and_keeps_the_requested(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from truthplane.verifiers import eslint as module

    monkeypatch.setattr(module, "MAX_FILES", 1)
    findings = eslint(project).scan(project, files=["src/util.ts", "src/app.ts"]).findings
    assert located(findings) == EXPECTED
    assert located(eslint(project).scan(project, files=["src/util.ts"]).findings) == {
        ("@typescript-eslint/no-unused-vars", "src/util.ts", 2)}


def test_file_that_does_not_parse_is_a_high_finding(project: Path) -> None:
    write_files(project, {"src/broken.ts": "export const x = ;\n"})
    findings = eslint(project).scan(project, files=["src/broken.ts"]).findings
    assert located(findings) == {("parse-error", "src/broken.ts", 1)}
    assert findings[0].severity is Severity.HIGH and "Expression expected" in findings[0].message


def test_config_that_cannot_load_is_an_error_not_a_clean_scan(project: Path) -> None:
    (project / "eslint.config.mjs").write_text(
        'import nope from "eslint-plugin-does-not-exist";\nexport default [nope];\n'
    )
    with pytest.raises(VerifierError) as caught:
        eslint(project).scan(project)
    assert "could not run (exit 2)" in str(caught.value) and "eslint-plugin-does-not-exist" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_exported_tree_borrows_the_repositorys_node_modules(project: Path, tmp_path: Path) -> None:
    export = write_files(tmp_path / "export", {**ts_project(), "src/app.ts": APP})
    findings = eslint(project).scan(export).findings
    assert located(findings) == {x for x in EXPECTED if x[1] == "src/app.ts"}
    assert not os.path.lexists(export / "node_modules")  # the borrowed link is gone again


def test_tool_in_node_modules_wins_over_path_and_garbage_is_an_error(tmp_path: Path) -> None:
    root = write_files(tmp_path / "web", {**ts_project(), "src/app.ts": APP})
    bin_dir = root / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    (root / "node_modules" / "@microsoft").mkdir()
    (root / "node_modules" / "@microsoft" / "eslint-formatter-sarif").symlink_to(
        NODE_MODULES / "@microsoft" / "eslint-formatter-sarif")
    fake = bin_dir / "eslint"
    fake.write_text(
        '#!/bin/sh\n[ "$1" = "--version" ] && { echo v1.2.3; exit 0; }\necho "Segmentation fault"\nexit 1\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    verifier = eslint(root)
    assert verifier.available().version == "1.2.3"
    with pytest.raises(VerifierError) as caught:
        verifier.scan(root)
    assert caught.value.status == "failed" and "not JSON" in str(caught.value)


def test_missing_formatter_is_named_with_its_install_command(tmp_path: Path) -> None:
    root = write_files(tmp_path / "web", {**ts_project(), "src/app.ts": APP})
    bin_dir = root / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "eslint").symlink_to(NODE_MODULES / "eslint" / "bin" / "eslint.js")
    info = eslint(root).available()
    assert info.installed and info.reason is None  # beside the real eslint: its own node_modules has it
    lonely = tmp_path / "bin" / "eslint"
    lonely.parent.mkdir()
    lonely.write_text("#!/bin/sh\necho v9.0.0\n")
    lonely.chmod(0o755)
    (bin_dir / "eslint").unlink()
    (bin_dir / "eslint").symlink_to(lonely)
    info = eslint(root).available()
    assert not info.installed and "npm install --save-dev @microsoft/eslint-formatter-sarif" in (info.reason or "")


@pytest.mark.tool("bwrap")
def test_sandboxed_eslint_finds_the_same_and_its_config_cannot_touch_the_host(project: Path, tmp_path: Path) -> None:
    canary = tmp_path / "config-ran-here"
    config = (project / "eslint.config.mjs").read_text()
    (project / "eslint.config.mjs").write_text(
        f'import {{ writeFileSync }} from "node:fs";\ntry {{ writeFileSync({json.dumps(str(canary))}, "x"); }} catch '
        f'{{ /* read-only */ }}\n'
        + config
    )
    sandboxed = eslint(project, sandbox=True).scan(project).findings
    assert located(sandboxed) == EXPECTED
    assert not canary.exists()
    on_host = eslint(project).scan(project).findings
    assert canary.exists()  # the same config on the host does write: the sandbox is what stopped it
    assert [(f.rule_id, f.path, f.start_line, f.severity) for f in sandboxed] == [
        (f.rule_id, f.path, f.start_line, f.severity) for f in on_host
    ]


def test_eslint_sarif_round_trips_with_fingerprints(project: Path) -> None:
    findings = eslint(project).scan(project).findings
    annotated = annotate(findings, lambda rel: (project / rel).read_bytes())
    run = VerifierRun(name="eslint", version="9.39.1", status=ToolStatus.OK, count=len(annotated))
    log = sarif_log([run_for("eslint", annotated, version="9.39.1", run_info=run)])
    validate_sarif(log)
    back = findings_from_sarif(json.loads(json.dumps(log)))
    assert [(f.rule_id, f.path, f.start_line, f.severity) for f in back] == [
        (f.rule_id, f.path, f.start_line, f.severity) for f in annotated
    ]
    assert [f.partial_fingerprints for f in back] == [f.partial_fingerprints for f in annotated]
    assert all(set(f.partial_fingerprints) == {"truthplane/v1", "primaryLocationLineHash", "truthplane/neighbours/v1"}
               for f in back)
    again = annotate(back, lambda rel: (project / rel).read_bytes())
    assert [f.fingerprint for f in again] == [f.fingerprint for f in annotated]


def test_eslint_fix_candidate_clears_the_fixable_lints(project: Path, tmp_path: Path) -> None:
    before = (project / "src/app.ts").read_text()
    (candidate,) = [c for c in autofix_candidates(project, ["src/app.ts"]) if c.id == "eslint-fix"]
    assert (project / "src/app.ts").read_text() == before  # nothing written
    assert "-  let greeting = 'hello ' + name;" in candidate.diff
    assert "+  const greeting = 'hello ' + name;" in candidate.diff
    work = write_files(tmp_path / "fixed", {**ts_project(), "src/app.ts": before})
    link_node_modules(work)
    import subprocess

    subprocess.run(["git", "apply", "-"], input=candidate.diff, text=True, cwd=work, check=True)
    remaining = {f.rule_id for f in eslint(work).scan(work).findings}
    assert "prefer-const" not in remaining and "eqeqeq" in remaining  # eqeqeq has no safe autofix


@pytest.mark.tool("bwrap")
def test_eslint_fix_in_the_sandbox_gives_the_same_candidate(project: Path) -> None:
    (host,) = [c for c in autofix_candidates(project, ["src/app.ts"]) if c.id == "eslint-fix"]
    (sandboxed,) = [c for c in autofix_candidates(project, ["src/app.ts"], eslint_executor="local")
                    if c.id == "eslint-fix"]
    assert sandboxed.diff == host.diff


def test_eslint_fix_is_skipped_without_a_config_and_reported_when_eslint_is_broken(
    project: Path, tmp_path: Path
) -> None:
    plain = write_files(tmp_path / "plain", {"src/app.ts": APP})
    assert [c.id for c in autofix_candidates(plain, ["src/app.ts"])] == []
    (project / "eslint.config.mjs").write_text("export default [;\n")
    problems: list[str] = []
    assert [c.id for c in autofix_candidates(project, ["src/app.ts"], problems=problems)] == []
    assert len(problems) == 1 and problems[0].startswith("eslint autofix could not run")


def test_type_aware_config_is_cached_by_the_tree_not_per_file(project: Path) -> None:
    assert eslint(project).available().installed and eslint(project).file_local
    config = (project / "eslint.config.mjs").read_text()
    (project / "eslint.config.mjs").write_text(config.replace(
        "...tseslint.configs.recommended,", "...tseslint.configs.recommendedTypeChecked,"))
    verifier = eslint(project)
    verifier.available()
    assert not verifier.file_local and verifier.tree_cacheable
