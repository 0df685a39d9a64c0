"""A TypeScript repository gated end to end through the CLI, with the real eslint, tsc and npm:
default settings pick the JS verifiers up from the repository's files, and `scan --baseline`, a
change (a lint fixed, a type error added, a file renamed) and `gate` report exactly what changed."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git
from tests.js_harness import link_node_modules, local_registry, ts_project
from tests.truth.test_sarif import validate_sarif
from truthplane.cli.main import run
from truthplane.config import DEFAULT_VERIFIERS, load_config

pytestmark = [pytest.mark.tool("eslint"), pytest.mark.tool("tsc"), pytest.mark.tool("npm")]

APP = (
    "export function greet(name: string): string {\n"
    '  let greeting = "hello " + name;\n'         # 2 prefer-const: fixed by the change
    '  if (name == "admin") {\n'                   # 3 eqeqeq: stays
    '    return "hi";\n'
    "  }\n"
    "  return greeting;\n"
    "}\n"
)
UTIL = (
    "export function parse(text: string): number {\n"
    "  const value: number = text;\n"               # 2 TS2322: stays, its file is renamed
    "  return value;\n"
    "}\n"
    "const dead = 1;\n"                              # 5 no-unused-vars: stays, its file is renamed
)
MAIN = ('import { greet } from "./app";\nimport { parse } from "./util";\n\nexport const out: string = greet("x") + '
        'parse("1");\n')
MAIN_AFTER = (
    'import { greet } from "./app";\nimport { parse } from "./helpers";\n\n'
    'export const out: string = greet("x") + parse("1");\nexport const count: number = greet("y");\n'  # 5 TS2322: new
)
AUDIT = {
    ("npm-audit", "GHSA-jf85-cpcp-j695", "package-lock.json", 15),
    ("npm-audit", "GHSA-35jh-r3h4-6jhm", "package-lock.json", 15),
    ("npm-audit", "GHSA-xvch-5gv4-984h", "package-lock.json", 20),
    ("npm-audit", "GHSA-vh95-rmgr-6w4m", "package-lock.json", 20),
}


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    yield from local_registry()


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: str) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("npm_config_registry", registry)


@pytest.fixture
def repo(make_repo) -> Path:
    root = make_repo({**ts_project(lockfile=True), "src/app.ts": APP, "src/util.ts": UTIL, "src/main.ts": MAIN})
    link_node_modules(root)  # ignored by git, like a real npm install
    return root


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = run(list(args))
    out, _ = capsys.readouterr()
    return code, json.loads(out) if out.strip().startswith("{") else {"text": out}


def keyed(findings: list[dict]) -> set[tuple[str, str, str, int | None]]:  # type: ignore[type-arg]
    return {(f["verifier"], f["rule_id"], f["path"], f["start_line"]) for f in findings}


def change(root: Path) -> None:
    (root / "src/app.ts").write_text(APP.replace("let greeting", "const greeting"))
    git(root, "mv", "src/util.ts", "src/helpers.ts")
    (root / "src/main.ts").write_text(MAIN_AFTER)


STAYING = {
    ("eslint", "eqeqeq", "src/app.ts", 3),
    ("tsc", "TS2322", "src/helpers.ts", 2),
    ("eslint", "@typescript-eslint/no-unused-vars", "src/helpers.ts", 5),
    *AUDIT,
}


def test_default_scan_baseline_change_and_gate(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, baseline = cli(capsys, "scan", str(repo), "--baseline", "--format", "json")
    assert code == 0, baseline
    assert [v["name"] for v in baseline["verifiers"]] == [*DEFAULT_VERIFIERS, "eslint", "tsc", "npm-audit"]
    assert all(v["status"] == "ok" for v in baseline["verifiers"]), baseline["verifiers"]
    assert keyed(baseline["findings"]) == {
        ("eslint", "prefer-const", "src/app.ts", 2), ("eslint", "eqeqeq", "src/app.ts", 3),
        ("tsc", "TS2322", "src/util.ts", 2), ("eslint", "@typescript-eslint/no-unused-vars", "src/util.ts", 5),
        *AUDIT,
    }
    for sarif in (repo / ".sarif-results").glob("*.sarif"):
        validate_sarif(json.loads(sarif.read_text()))
    eslint_log = json.loads((repo / ".sarif-results" / "eslint.sarif").read_text())
    written = {r["partialFingerprints"]["truthplane/v1"] for r in eslint_log["runs"][0]["results"]}
    assert written == {f["fingerprint"].split(":")[0] for f in baseline["findings"] if f["verifier"] == "eslint"}

    change(repo)
    code, result = cli(capsys, "scan", str(repo), "--format", "json")
    assert keyed(result["new"]) == {("tsc", "TS2322", "src/main.ts", 5)}
    assert keyed(result["fixed"]) == {("eslint", "prefer-const", "src/app.ts", 2)}
    assert keyed(result["unchanged"]) == STAYING
    assert result["verdict"] == "REJECT" and code == 1  # a new type error: the project no longer compiles

    git(repo, "checkout", "-q", "-b", "feature")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "const, a helper module, a count")
    sarif_out = repo.parent / "gate.sarif"
    code, gated = cli(capsys, "gate", str(repo), "--base", "main", "--format", "json", "--sarif-out", str(sarif_out))
    assert keyed(gated["new"]) == {("tsc", "TS2322", "src/main.ts", 5)}
    assert keyed(gated["fixed"]) == {("eslint", "prefer-const", "src/app.ts", 2)}
    # the lockfile is as it was: the gate does not audit it again
    assert keyed(gated["unchanged"]) == STAYING - AUDIT
    assert "npm-audit" not in [v["name"] for v in gated["verifiers"]]
    assert gated["verdict"] == "REJECT" and code == 1
    renamed = [f for f in gated["unchanged"] if f["path"] == "src/helpers.ts"]
    before = {f["fingerprint"] for f in baseline["findings"] if f["path"] == "src/util.ts"}
    assert {f["fingerprint"] for f in renamed} == before  # the renamed file's findings kept their identity
    log = json.loads(sarif_out.read_text())
    validate_sarif(log)
    states = {(r["ruleId"], r["baselineState"]) for run_ in log["runs"] for r in run_["results"]}
    assert ("TS2322", "new") in states and ("eqeqeq", "unchanged") in states

    # without the cache the base commit is exported without node_modules: eslint's config imports
    # and tsc still resolve through the repository's, and the verdict is the same
    code, fresh = cli(capsys, "gate", str(repo), "--base", "main", "--format", "json", "--no-cache")
    assert all(v["status"] == "ok" for v in fresh["verifiers"]), fresh["verifiers"]
    assert (keyed(fresh["new"]), keyed(fresh["fixed"]), keyed(fresh["unchanged"])) == (
        keyed(gated["new"]), keyed(gated["fixed"]), keyed(gated["unchanged"]))
    assert code == 1


def test_max_warnings_zero_turns_a_new_warning_into_a_rejection(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "truthplane.toml").write_text("[verifiers.eslint]\nmax_warnings = 0\n")
    code, _ = cli(capsys, "scan", str(repo), "--baseline", "--verifier", "eslint", "--format", "json")
    assert code == 0
    (repo / "src/app.ts").write_text(APP.replace("  return greeting;", "  console.log(greeting);\n  return greeting;"))
    code, result = cli(capsys, "scan", str(repo), "--verifier", "eslint", "--format", "json")
    assert keyed(result["new"]) == {("eslint", "no-console", "src/app.ts", 6)}
    assert result["new"][0]["severity"] == "high" and result["verdict"] == "REJECT" and code == 1


def test_an_unreachable_registry_makes_only_a_dependency_change_unverified(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    # an unchanged lockfile cannot bring an advisory: the audit does not run, the registry is not asked
    (repo / "src/app.ts").write_text(APP.replace("let greeting", "const greeting"))
    package = json.loads((repo / "package.json").read_text())
    package["scripts"]["lint"] = "eslint ."  # an edit of package.json that declares no dependency
    (repo / "package.json").write_text(json.dumps(package, indent=2) + "\n")
    code, result = cli(capsys, "gate", str(repo), "--base", "main", "--format", "json")
    assert "npm-audit" not in [v["name"] for v in result["verifiers"]]
    assert any(
        r.startswith(
            "npm-audit not run: the change leaves the dependencies declared in package-lock.json, package.json"
        )
        for r in result["reasons"]
    ), result["reasons"]
    assert result["verdict"] == "APPROVE" and code == 0

    lock = json.loads((repo / "package-lock.json").read_text())
    lock["packages"]["node_modules/minimist"]["version"] = "0.0.9"
    (repo / "package-lock.json").write_text(json.dumps(lock, indent=2) + "\n")
    code, result = cli(capsys, "gate", str(repo), "--base", "main", "--verifier", "npm-audit", "--format", "json")
    assert code == 4 and result["verdict"] == "UNVERIFIED"
    (run_,) = result["verifiers"]
    assert run_["status"] == "failed" and "ECONNREFUSED" in run_["error"]


def test_a_scan_still_audits(repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    code, result = cli(capsys, "scan", str(repo), "--baseline", "--verifier", "npm-audit", "--format", "json")
    assert code == 4 and result["verifiers"][0]["status"] == "failed"


def test_detection_leaves_python_repositories_and_explicit_lists_alone(make_repo) -> None:
    python_repo = make_repo({"app.py": "x = 1\n", "pyproject.toml": '[project]\nname = "x"\n'}, name="py")
    assert load_config(python_repo).verifiers == DEFAULT_VERIFIERS
    js_repo = make_repo({**ts_project(lockfile=True), "truthplane.toml": 'verifiers = ["ruff"]\n'}, name="js")
    assert load_config(js_repo).verifiers == ["ruff"]
    (js_repo / "truthplane.toml").unlink()
    (js_repo / "package-lock.json").unlink()
    assert load_config(js_repo).verifiers == [*DEFAULT_VERIFIERS, "eslint", "tsc"]


def test_doctor_explains_what_is_missing_and_how_to_install_it(
    make_repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo({**ts_project(), "src/app.ts": APP}, name="bare")  # no node_modules
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if "node_modules" not in p)
    monkeypatch.setenv("PATH", path)
    code = run(["doctor", str(root)])
    out, _ = capsys.readouterr()
    assert code == 4
    eslint_line = next(line for line in out.splitlines() if " eslint " in line)
    assert eslint_line.startswith("* verifier eslint     MISSING")
    assert "npm install --save-dev eslint @microsoft/eslint-formatter-sarif" in eslint_line
    assert "node_modules/.bin first, then PATH" in eslint_line
    tsc_line = next(line for line in out.splitlines() if " tsc " in line)
    assert tsc_line.startswith("* verifier tsc") and "npm install --save-dev typescript" in tsc_line
    assert "2 configured verifier(s) cannot run here: eslint, tsc" in out
    link_node_modules(root)
    assert run(["doctor", str(root)]) == 0


@pytest.mark.tool("bwrap")
def test_fix_on_a_typescript_file_judges_eslint_fix_with_no_key(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`truthplane fix` on a .ts file: eslint --fix from the repository's node_modules is the candidate
    (the snapshot it runs in has none), and the gate approves it for fixing prefer-const."""
    (repo / "truthplane.toml").write_text('verifiers = ["eslint", "tsc"]\n')
    git(repo, "add", "truthplane.toml")
    git(repo, "commit", "-qm", "js verifiers only")
    before = (repo / "src/app.ts").read_bytes()
    code, doc = cli(capsys, "fix", str(repo / "src/app.ts"), "--format", "json")
    candidates = {c["id"]: c for c in doc["candidates"]}
    assert "eslint-fix" in candidates, doc
    fix = candidates["eslint-fix"]
    assert fix["verdict"] == "APPROVE" and code == 0, fix
    assert ("eslint", "prefer-const", "src/app.ts", 2) in keyed(fix["fixed"]) and fix["new"] == []
    assert (repo / "src/app.ts").read_bytes() == before  # a dry run writes nothing
