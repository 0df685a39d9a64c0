"""semgrep: the shipped rules on positive and negative snippets, the repository's rules and ignore
files, severity mapping, and the fatal/non-fatal split of semgrep's errors. Semgrep takes seconds to
start, so each scan is shared by several assertions."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.verifiers.conftest import FIXTURES, build_verifier, located, write_tree
from truthplane.errors import ConfigError, VerifierError
from truthplane.models import Finding, Severity
from truthplane.verifiers import semgrep as semgrep_module
from truthplane.verifiers._commands import exec_form, semgrep_engine, which
from truthplane.verifiers.semgrep import declared_rule_id, semgrep_severity, shipped_rule_files
from truthplane.verifiers.started import tool_env

pytestmark = pytest.mark.tool("semgrep")

RULE_FIXTURES = FIXTURES / "semgrep_rules"
_ANNOTATION = re.compile(r"#\s*(ruleid|ok):\s*(\S+)")


def _annotations() -> tuple[set[tuple[str, str, int]], set[tuple[str, str, int]]]:
    """(expected, forbidden) (rule, file, line) from `# ruleid: X` / `# ok: X` on the line above."""
    expected, forbidden = set(), set()
    for path in sorted(RULE_FIXTURES.glob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            match = _ANNOTATION.search(line)
            if match:
                (expected if match.group(1) == "ruleid" else forbidden).add((match.group(2), path.name, number + 1))
    return expected, forbidden


def _shipped_rules() -> list[dict]:
    import yaml

    rules = []
    for path in shipped_rule_files():
        rules += yaml.safe_load(path.read_text(encoding="utf-8"))["rules"]
    return rules


@pytest.fixture(scope="module")
def rule_findings(tmp_path_factory: pytest.TempPathFactory) -> list[Finding]:
    root = tmp_path_factory.mktemp("rules") / "repo"
    shutil.copytree(RULE_FIXTURES, root)
    return build_verifier("semgrep").scan(root).findings


def test_each_shipped_rule_fires_exactly_on_its_positive_snippets(rule_findings: list[Finding]) -> None:
    expected, forbidden = _annotations()
    found = {(f.rule_id, f.path, f.start_line) for f in rule_findings}
    assert expected - found == set(), "missed positives"
    assert found & forbidden == set(), "fired on negatives"
    assert found - expected == set(), "unannotated findings"


def test_every_shipped_rule_is_documented_and_tested() -> None:
    expected, forbidden = _annotations()
    rules = _shipped_rules()
    assert len(rules) >= 10
    for rule in rules:
        assert rule["id"].startswith("truthplane.python.")
        assert rule["severity"] in {"ERROR", "WARNING", "INFO"}
        assert rule["metadata"]["cwe"] and all(c.startswith("CWE-") for c in rule["metadata"]["cwe"])
        assert len(rule["message"]) > 60, f"{rule['id']}: the message should say how to fix it"
        assert any(r == rule["id"] for r, _, _ in expected), f"{rule['id']} has no positive snippet"
        assert any(r == rule["id"] for r, _, _ in forbidden), f"{rule['id']} has no negative snippet"


def test_shipped_rules_cover_the_required_topics() -> None:
    ids = {rule["id"] for rule in _shipped_rules()}
    for topic in ("eval-exec", "shell-injection", "yaml-unsafe-load", "pickle", "tls", "secret", "aws", "private-key"):
        assert any(topic in rule_id for rule_id in ids), topic


def test_rule_findings_are_well_formed(rule_findings: list[Finding]) -> None:
    for finding in rule_findings:
        assert finding.tool_severity == "ERROR"
        assert finding.help_uri and finding.help_uri.startswith("https://")
        assert finding.start_column and finding.end_column and finding.end_line
    severities = {f.rule_id: f.severity for f in rule_findings}
    assert severities["truthplane.python.private-key-block"] is Severity.CRITICAL
    assert severities["truthplane.python.pickle-marshal-load"] is Severity.HIGH


REPO_RULES = """\
rules:
  - id: no-print
    languages: [python]
    severity: INFO
    message: use logging instead of print
    pattern: print(...)
  - id: no-assert-true
    languages: [python]
    severity: WARNING
    message: assert True checks nothing
    pattern: assert True
"""

DIR_RULES = """\
rules:
  - id: team.no-breakpoint
    languages: [python]
    severity: ERROR
    message: remove breakpoint() before merging
    metadata: {truthplane-severity: critical}
    pattern: breakpoint()
"""

APP = "def f(x):\n    print(x)\n    assert True\n    breakpoint()\n    return eval(x)\n"


@pytest.fixture(scope="module")
def repo_with_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo-rules") / "repo"
    return write_tree(root, {
        ".semgrep.yml": REPO_RULES,
        ".semgrep/team.yml": DIR_RULES,
        ".semgrepignore": "vendor/\n",
        "src/app.py": APP,
        "src/other.py": "eval(input())\n",
        "vendor/lib.py": APP,
    })


@pytest.fixture(scope="module")
def repo_scan(repo_with_rules: Path) -> list[Finding]:
    return build_verifier("semgrep").scan(repo_with_rules).findings


def test_repo_rules_run_in_addition_to_shipped_rules(repo_scan: list[Finding]) -> None:
    assert {
        ("no-print", "src/app.py", 2),
        ("no-assert-true", "src/app.py", 3),
        ("team.no-breakpoint", "src/app.py", 4),
        ("truthplane.python.eval-exec", "src/app.py", 5),
    } <= located(repo_scan)


def test_severity_from_semgrep_and_from_rule_metadata(repo_scan: list[Finding]) -> None:
    severities = {f.rule_id: f.severity for f in repo_scan}
    assert severities["no-print"] is Severity.LOW
    assert severities["no-assert-true"] is Severity.MEDIUM
    assert severities["team.no-breakpoint"] is Severity.CRITICAL
    assert severities["truthplane.python.eval-exec"] is Severity.HIGH


def test_repo_semgrepignore_applies(repo_scan: list[Finding]) -> None:
    assert not any(f.path.startswith("vendor/") for f in repo_scan)


def test_subset_scan_matches_the_whole_scan(repo_with_rules: Path, repo_scan: list[Finding]) -> None:
    subset = build_verifier("semgrep").scan(repo_with_rules, files=["src/app.py", "vendor/lib.py", "gone.py"])
    assert located(subset.findings) == {x for x in located(repo_scan) if x[1] == "src/app.py"}


def test_broken_repo_rule_is_an_error(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({
        ".semgrep.yml": "rules:\n  - id: broken\n    languages: [python]\n    severity: ERROR\n"
                        "    message: x\n    pattern: eval($X\n",
        "a.py": "eval(x)\n",
    })
    with pytest.raises(VerifierError) as caught:
        build_verifier("semgrep").scan(root)
    assert "broken" in caught.value.reason and caught.value.status == "failed"


def test_registry_rules_are_refused_before_running(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="offline"):
        build_verifier("semgrep", rules=["p/python"]).scan(tmp_path)
    with pytest.raises(ConfigError, match="offline"):
        build_verifier("semgrep", args=["--config", "auto"]).scan(tmp_path)
    with pytest.raises(ConfigError, match="offline"):
        build_verifier("semgrep", args=["--config=r/python.lang.security"]).scan(tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        build_verifier("semgrep", rules=["missing-rules.yml"]).scan(tmp_path)


def test_config_fingerprint_covers_the_shipped_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = build_verifier("semgrep")
    before = verifier.config_fingerprint()
    assert before == build_verifier("semgrep").config_fingerprint()
    copy = tmp_path / "rules"
    shutil.copytree(semgrep_module.RULES_DIR, copy)
    monkeypatch.setattr(semgrep_module, "RULES_DIR", copy)
    assert verifier.config_fingerprint() == before
    first = min(copy.glob("*.yml"))
    first.write_text(first.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert verifier.config_fingerprint() != before
    assert build_verifier("semgrep", args=["--timeout", "9"]).config_fingerprint() != before


def test_declared_rule_id_undoes_the_path_prefix() -> None:
    known = {"no-print", "truthplane.python.eval-exec", "eval-exec"}
    assert declared_rule_id("tmp.x.rules.truthplane.python.eval-exec", known) == "truthplane.python.eval-exec"
    assert declared_rule_id("semgrep.no-print", known) == "no-print"
    assert declared_rule_id("home.me.repo.eval-exec", known) == "eval-exec"
    assert declared_rule_id("unknown.rule", known) == "unknown.rule"


@pytest.mark.parametrize(
    "word, metadata, expected",
    [("ERROR", {}, Severity.HIGH), ("WARNING", {}, Severity.MEDIUM), ("INFO", {}, Severity.LOW),
     ("CRITICAL", {}, Severity.CRITICAL), ("INFO", {"truthplane-severity": "critical"}, Severity.CRITICAL),
     ("ERROR", {"truthplane-severity": "bogus"}, Severity.HIGH), ("INVENTORY", {}, Severity.NOTE)],
)
def test_severity_mapping(word: str, metadata: dict, expected: Severity) -> None:
    assert semgrep_severity(word, metadata) is expected


def test_native_and_classic_engines_agree(repo_with_rules: Path, repo_scan: list[Finding],
                                           rule_findings: list[Finding], tmp_path: Path) -> None:
    """The default engine (semgrep's compiled CLI) finds exactly what the Python CLI finds."""
    classic = build_verifier("semgrep", engine="classic")
    assert build_verifier("semgrep").options.engine == "native"
    assert located(classic.scan(repo_with_rules).findings) == located(repo_scan)
    rules_root = tmp_path / "rules"
    shutil.copytree(RULE_FIXTURES, rules_root)
    assert located(classic.scan(rules_root).findings) == located(rule_findings)
    assert classic.config_fingerprint() != build_verifier("semgrep").config_fingerprint()


@pytest.mark.parametrize("engine", ["native", "classic"])
def test_a_broken_rule_is_a_clear_error_on_either_engine(tree: Callable[[dict[str, str]], Path], engine: str) -> None:
    root = tree({".semgrep.yml": "rules:\n  - id: half-written\n    pattern: eval(\n", "a.py": "eval(x)\n"})
    with pytest.raises(VerifierError) as caught:
        build_verifier("semgrep", engine=engine).scan(root)
    assert "half-written" in caught.value.reason or "message" in caught.value.reason, caught.value.reason


def _installed_launcher() -> str:
    launcher = which("semgrep")
    assert launcher is not None
    return os.path.realpath(launcher)


def test_the_native_engine_starts_directly_and_reports_what_its_launcher_does(repo_with_rules: Path) -> None:
    """`semgrep scan --experimental` skips the launcher's interpreter and execs the same engine with the same
    arguments: the report is the launcher's, byte for byte, but for semgrep's own timings."""
    launcher = _installed_launcher()
    verifier = build_verifier("semgrep")
    command = verifier.recipe(repo_with_rules).command(repo_with_rules, ["src/app.py", "src/other.py"])
    env = tool_env(command.env)
    program, argv, engine_env = exec_form(launcher, command.argv, env)
    assert Path(program).name == "semgrep-core" and argv[0] == "osemgrep" and argv[1:] == command.argv[1:]
    assert engine_env["NO_COLOR"] == "1"

    def report(*popen: object, **kwargs: object) -> dict:
        done = subprocess.run(*popen, cwd=repo_with_rules, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
        assert done.returncode == 1, done.stderr  # --error: findings
        body = json.loads(done.stdout)
        body.pop("time", None)
        return body

    direct = report(argv, executable=program, env=engine_env)
    assert direct == report([launcher, *command.argv[1:]], env=env)
    assert {r["path"] for r in direct["results"]} == {"src/app.py", "src/other.py"}


@pytest.mark.parametrize("extra", [["--legacy"], ["--pro"], ["--pro-intrafile"]])
def test_the_launcher_runs_whatever_it_would_not_hand_to_the_engine_as_is(extra: list[str]) -> None:
    launcher = _installed_launcher()
    for argv in (["semgrep", "scan", "--json", "."], ["semgrep", "scan", "--experimental", *extra, "."]):
        program, called, env = exec_form(launcher, argv, {"PATH": "/usr/bin"})
        assert (program, called, env) == (launcher, [launcher, *argv[1:]], {"PATH": "/usr/bin"})


def test_the_engine_is_used_only_when_it_is_certain_which_one_the_launcher_would_run(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    launcher = venv / "bin" / "semgrep"
    launcher.parent.mkdir(parents=True)
    launcher.write_text(f"#!{venv}/bin/python3\nfrom semgrep.console_scripts.entrypoint import main\nmain()\n")

    def engine_for(version: str) -> Path:
        engine = venv / "lib" / version / "site-packages" / "semgrep" / "bin" / "semgrep-core"
        engine.parent.mkdir(parents=True)
        engine.write_text("")
        engine.chmod(0o755)
        return engine

    def found() -> tuple[str, str] | None:
        semgrep_engine.cache_clear()
        return semgrep_engine(str(launcher))

    assert found() is None  # no packaged engine: the launcher looks further (PATH), so let it
    engine = engine_for("python3.11")
    assert found() == (str(engine), str(venv / "bin"))
    engine_for("python3.12")
    assert found() is None  # two it might import
    shim = tmp_path / "shim" / "semgrep"
    shim.parent.mkdir()
    shim.write_text('#!/usr/bin/env bash\nexec semgrep "$@"\n')  # a version manager's shim: not the launcher itself
    semgrep_engine.cache_clear()
    assert semgrep_engine(str(shim)) is None


def test_a_subset_scan_walks_only_toward_the_requested_files(make_repo) -> None:  # noqa: ANN001
    """A requested file's directory can be a whole package: the subtrees that hold no requested file are excluded
    from semgrep's walk, and what it finds it still filters through its ignore rules (here semgrep's defaults,
    which skip tests/ in a repository without a .semgrepignore)."""
    risky = "eval(input())\n"
    root = make_repo({"pkg/mod.py": risky, "pkg/sub/deep.py": risky, "pkg/sub/more/x.py": risky,
                      "pkg/other/y.py": risky, "pkg/other/z/w.py": risky, "tests/t.py": risky, "top.py": risky})
    verifier = build_verifier("semgrep")
    whole = located(verifier.scan(root).findings)
    assert {x[1] for x in whole} == {"pkg/mod.py", "pkg/sub/deep.py", "pkg/sub/more/x.py", "pkg/other/y.py",
                                     "pkg/other/z/w.py", "top.py"}  # tests/ skipped by semgrep's defaults
    requested = ["pkg/mod.py", "pkg/sub/more/x.py", "tests/t.py"]
    argv = verifier.command(root, requested).argv
    assert [a for a in argv if a.startswith("--exclude")] == ["--exclude=/pkg/other/"]
    assert argv[argv.index("--") + 1:] == ["pkg", "tests"]
    subset = verifier.scan(root, files=requested)
    assert located(subset.findings) == {x for x in whole if x[1] in requested}
    everything_but_tests = ["pkg/mod.py", "pkg/sub/deep.py", "pkg/sub/more/x.py", "pkg/other/y.py", "top.py"]
    assert located(verifier.scan(root, files=everything_but_tests).findings) == {
        x for x in whole if x[1] in everything_but_tests}
