"""build: the configured command in the local executor, on a copy of the tree. A failed build is one
high finding carrying the output's tail; a timeout or no command is could-not-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.js_harness import link_node_modules, ts_project, write_files
from tests.verifiers.conftest import build_verifier
from truthplane.errors import VerifierError
from truthplane.models import Severity
from truthplane.verifiers.build import output_tail
from truthplane.verifiers.interface import Verifier

FAILING = ["sh", "-c", "for i in $(seq 1 30); do echo step $i; done; echo 'fatal: linker said no' >&2; exit 2"]


def build(root: Path, command: list[str], **options: object) -> Verifier:
    verifier = build_verifier("build", command=command, **options)
    verifier.project_root = root  # type: ignore[attr-defined]
    return verifier


def test_a_passing_build_has_no_findings_and_runs_on_a_copy(tmp_path: Path) -> None:
    root = write_files(tmp_path / "app", {"Makefile": "x\n"})
    result = build(root, ["sh", "-c", "echo built > out.txt && cat out.txt"]).scan(root)
    assert result.findings == []
    assert not (root / "out.txt").exists()  # the build wrote into the executor's copy only


def test_a_failing_build_is_one_high_finding_with_the_output_tail(tmp_path: Path) -> None:
    root = write_files(tmp_path / "app", {"Makefile": "x\n"})
    (finding,) = build(root, FAILING).scan(root).findings
    assert (finding.rule_id, finding.path, finding.start_line) == ("build-failed", "", None)
    assert finding.severity is Severity.HIGH
    assert (
        finding.identity
        == "sh -c 'for i in $(seq 1 30); do echo step $i; done; echo '\"'\"'fatal: linker said no'\"'\"' >&2; exit 2'"
    )
    assert finding.message.startswith("`sh -c ")
    assert "exited 2: step 12 | step 13 |" in finding.message
    assert finding.message.endswith("step 30 | fatal: linker said no")
    assert "step 11 |" not in finding.message and "\n" not in finding.message


def test_output_tail_keeps_the_last_lines() -> None:
    from truthplane.executors.jobs import JobResult

    result = JobResult(returncode=1, stdout="a\n\nb\n", stderr="c\n", executor="local")
    assert output_tail(result) == "a | b | c"


@pytest.mark.tool("tsc")
def test_npm_run_build_of_a_real_ts_project(tmp_path: Path) -> None:
    files = {**ts_project(), "src/index.ts": "export const n: number = 1;\n"}
    root = write_files(tmp_path / "web", files)
    link_node_modules(root)
    npm_build = ["npm", "run", "build", "--", "--noEmit", "false"]
    assert build(root, npm_build).scan(root).findings == []
    (root / "src/index.ts").write_text("export const n: number = 'one';\n")
    (finding,) = build(root, npm_build).scan(root).findings
    assert "exited 2" in finding.message
    assert "src/index.ts(1,14): error TS2322: Type 'string' is not assignable to type 'number'." in finding.message


def test_no_command_and_a_missing_program_are_not_usable(tmp_path: Path) -> None:
    root = write_files(tmp_path / "app", {"Makefile": "x\n"})
    info = build_verifier("build").available()
    assert not info.installed and 'command = ["npm", "run", "build"]' in (info.reason or "")
    with pytest.raises(VerifierError) as caught:
        build_verifier("build").scan(root)
    assert caught.value.status == "missing"
    assert not build(root, ["no-such-build-tool-xyz"]).available().installed


def test_a_build_that_hangs_is_a_timeout_not_a_finding(tmp_path: Path) -> None:
    root = write_files(tmp_path / "app", {"Makefile": "x\n"})
    with pytest.raises(VerifierError) as caught:
        build(root, ["sleep", "30"], timeout_s=1).scan(root)
    assert caught.value.status == "timeout"
