"""pytest: the repository's tests, run through an executor (they execute the repository's code, so
DESIGN.md's sandbox rule applies). The repository's pytest configuration applies; truthplane adds
`-p no:cacheprovider`, `--continue-on-collection-errors` (a test module that no longer imports is a
finding, not a crash) and a JUnit XML report of its own, which the job prints between marker lines.
`test_args` (default: none, so the repository's testpaths apply) and then `args` are passed to pytest.

Each failing test is a `test-failure`, each erroring test (setup/teardown error, collection error) a
`test-error`; both high, identity = the pytest node id, path = the test file.
Exit codes: 0 and 1 are data, 5 (no tests collected) is zero findings; 2, 3, 4, a timeout, running out
of memory or a missing report is could-not-run.
"""

from __future__ import annotations

import shlex
import sys
import time
import uuid
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from truthplane.errors import ExecutorError, PluginError, VerifierError
from truthplane.executors.jobs import Job, JobResult, Limits
from truthplane.models import Finding, ScanResult, Severity, ToolInfo, ToolStatus
from truthplane.verifiers._common import cached_tool_info, one_line
from truthplane.verifiers._executed import run_coroutine
from truthplane.verifiers.interface import Verifier

INSTALL_HINT = "pip install pytest, or drop it from verifiers in truthplane.toml"
REPORT_LIMIT_BYTES = 32_000_000
_EXIT_MEANING = {2: "interrupted", 3: "an internal error", 4: "a usage error"}


def node_id(case: ElementTree.Element) -> tuple[str, str]:
    """(pytest node id, test file) from a JUnit <testcase> written with junit_family=xunit1."""
    name = case.get("name", "")
    classname = case.get("classname", "")
    file = case.get("file", "")
    if not classname:
        # a collection error names the module ("tests.test_x"), not a test
        file = file or name.replace(".", "/") + ".py"
        return file, file
    module = PurePosixPath(file).with_suffix("").as_posix().replace("/", ".") if file else ""
    classes = classname[len(module) + 1 :] if module and classname.startswith(module + ".") else ""
    if not file:
        file = classname.replace(".", "/") + ".py"
    return "::".join(part for part in (file, *classes.split("."), name) if part), file


class PytestVerifier(Verifier):
    name = "pytest"
    incremental = False
    file_local = False
    suffixes = ()
    config_files = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg", "conftest.py")
    settings_files = ()  # running the tests a second time under the base's settings costs a whole test run

    def available(self) -> ToolInfo:
        # the interpreter the local executor puts first on the job's PATH
        command = [sys.executable, "-m", "pytest", "--version"]
        info = cached_tool_info(self.instance_name, command, install_hint=INSTALL_HINT)
        if not info.version:
            return info.model_copy(update={"installed": False})
        try:
            from truthplane.registry import load

            load("executors", self.context.executor)
        except PluginError as exc:
            return info.model_copy(update={"installed": False, "reason": f"cannot run tests: {exc}"})
        return info

    def command(self, report: str, begin: str, end: str) -> list[str]:
        pytest_args = [
            "-p",
            "no:cacheprovider",
            "-q",
            "--continue-on-collection-errors",
            f"--junitxml={report}",
            "-o",
            "junit_family=xunit1",
            *(self.options.test_args or []),
            *self.options.args,
        ]
        # pytest's own output goes to stderr, so stdout carries nothing but the report between markers
        script = (
            f'python -m pytest "$@" 1>&2; rc=$?; echo {begin}; cat {shlex.quote(report)} 2>/dev/null; '
            f"echo; echo {end}; exit $rc"
        )
        return ["sh", "-c", script, "truthplane-pytest", *pytest_args]

    def scan(self, target: Path, files: list[str] | None = None) -> ScanResult:
        started = time.monotonic()
        info = self.available()
        if files is not None and not files:
            return ScanResult(verifier=self.instance_name, version=info.version)
        if not info.installed:
            raise VerifierError(
                self.instance_name, info.reason or "pytest is not usable", status=ToolStatus.MISSING.value
            )
        version = info.version
        marker = uuid.uuid4().hex
        begin, end = f"TRUTHPLANE-JUNIT-BEGIN-{marker}", f"TRUTHPLANE-JUNIT-END-{marker}"
        job = Job(
            source_dir=str(target),
            command=self.command(f".truthplane-junit-{marker}.xml", begin, end),
            limits=Limits(timeout_s=self.timeout_s, max_output_bytes=REPORT_LIMIT_BYTES),
            env=dict(self.context.env),
            label=f"{self.instance_name} on {target.name}",
        )
        result = self._run(job)
        findings = self._interpret(result, begin, end)
        return ScanResult(
            verifier=self.instance_name,
            version=version,
            findings=findings,
            duration_s=time.monotonic() - started,
        )

    def _run(self, job: Job) -> JobResult:
        from truthplane.executors.loader import create_executor

        async def run() -> JobResult:
            async with create_executor(self.context.executor) as executor:
                return await executor.run(job)

        try:
            return run_coroutine(run())
        except (ExecutorError, PluginError) as exc:
            raise VerifierError(self.instance_name, f"could not run the tests: {exc}") from None

    def _interpret(self, result: JobResult, begin: str, end: str) -> list[Finding]:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:]) or "no output"
        if result.timed_out:
            raise VerifierError(
                self.instance_name,
                f"the tests timed out after {self.timeout_s:g}s",
                status=ToolStatus.TIMEOUT.value,
            )
        if result.oom_killed:
            raise VerifierError(
                self.instance_name, "the tests ran out of memory; raise the job's memory limit"
            )
        code = result.returncode
        if code == 5:
            return []
        if code not in (0, 1):
            meaning = _EXIT_MEANING.get(code or 0, f"exit status {code}")
            raise VerifierError(
                self.instance_name, f"pytest could not run the tests ({meaning}): {one_line(tail, 200)}"
            )
        if result.stdout_truncated:
            raise VerifierError(
                self.instance_name, "the test report was larger than the output limit; run fewer tests"
            )
        start, stop = result.stdout.find(begin), result.stdout.find(end)
        report = result.stdout[start + len(begin) : stop].strip() if 0 <= start < stop else ""
        if not report:
            raise VerifierError(self.instance_name, f"pytest wrote no test report: {one_line(tail, 200)}")
        try:
            root = ElementTree.fromstring(report)
        except ElementTree.ParseError as exc:
            raise VerifierError(self.instance_name, f"the test report is not valid XML ({exc})") from None
        findings = [f for case in root.iter("testcase") if (f := self._finding(case)) is not None]
        if code == 1 and not findings:
            raise VerifierError(
                self.instance_name, f"pytest exited 1 but reported no failing test: {one_line(tail, 200)}"
            )
        return findings

    def _finding(self, case: ElementTree.Element) -> Finding | None:
        failure = case.find("failure")
        error = case.find("error")
        problem = failure if failure is not None else error
        if problem is None:
            return None
        identity, file = node_id(case)
        message = problem.get("message") or (problem.text or "").strip() or "failed"
        line = case.get("line")
        start_line = int(line) + 1 if line and line.isascii() and line.isdigit() else None
        return Finding(
            verifier=self.instance_name,
            rule_id="test-failure" if failure is not None else "test-error",
            severity=Severity.HIGH,
            message=one_line(message.strip().splitlines()[0] if message.strip() else "failed"),
            path=file,
            start_line=start_line,
            end_line=start_line,
            identity=identity,
        )
