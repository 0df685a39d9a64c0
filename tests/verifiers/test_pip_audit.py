"""pip-audit: the repository's declared requirements (never the host environment), one finding per
(advisory, package) located at the line naming the package; an unreachable service is an error.

Most tests use a vulnerability service in OSV's wire format on 127.0.0.1 (pip-audit's own OSV client
talks to it); the last two talk to the real service."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.verifiers.conftest import build_verifier, located
from truthplane.errors import VerifierError
from truthplane.models import Severity
from truthplane.verifiers.pip_audit import _requirement_lines

pytestmark = pytest.mark.tool("pip-audit")

REQUIREMENTS = "# runtime\nrequests==2.19.0  # http\n\nPyYAML==5.3\nidna==2.7\n"


def _audit(osv_url: str) -> dict[str, list[str]]:
    return {"args": ["-s", "osv", "--osv-url", osv_url]}


def test_one_finding_per_advisory_and_package(tree: Callable[[dict[str, str]], Path], osv_url: str) -> None:
    root = tree({"requirements.txt": REQUIREMENTS})
    findings = build_verifier("pip-audit", **_audit(osv_url)).scan(root).findings
    assert located(findings) == {("PYSEC-2018-28", "requirements.txt", 2), ("PYSEC-2020-96", "requirements.txt", 4)}
    by_rule = {f.rule_id: f for f in findings}
    requests = by_rule["PYSEC-2018-28"]
    assert requests.identity == "PYSEC-2018-28:requests"
    assert requests.severity is Severity.HIGH
    assert "requests 2.19.0" in requests.message and "upgrade to 2.20.0" in requests.message
    assert "CVE-2018-18074" in requests.message
    assert requests.help_uri == "https://osv.dev/vulnerability/PYSEC-2018-28"
    assert by_rule["PYSEC-2020-96"].identity == "PYSEC-2020-96:pyyaml"


def test_requirements_directory_and_clean_files(tree: Callable[[dict[str, str]], Path], osv_url: str) -> None:
    root = tree({"requirements.txt": "idna==2.7\n", "requirements/dev.txt": "-r ../requirements.txt\npyyaml==5.3\n"})
    findings = build_verifier("pip-audit", **_audit(osv_url)).scan(root).findings
    assert located(findings) == {("PYSEC-2020-96", "requirements/dev.txt", 2)}


def test_no_known_vulnerabilities(tree: Callable[[dict[str, str]], Path], osv_url: str) -> None:
    root = tree({"requirements.txt": "requests==2.32.3\n"})
    assert build_verifier("pip-audit", **_audit(osv_url)).scan(root).findings == []


def test_pyproject_dependencies_when_there_is_no_requirements_file(
    tree: Callable[[dict[str, str]], Path], osv_url: str
) -> None:
    root = tree({
        "pyproject.toml": '[project]\nname = "app"\nversion = "1"\ndependencies = [\n'
                          '    "idna==2.7",\n    "requests==2.19.0",\n]\n',
    })
    (finding,) = build_verifier("pip-audit", **_audit(osv_url)).scan(root).findings
    assert (finding.rule_id, finding.path, finding.start_line) == ("PYSEC-2018-28", "pyproject.toml", 6)


def test_no_requirements_is_an_error_not_an_audit_of_the_host(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"app.py": "import requests\n", "pyproject.toml": '[project]\nname = "app"\n'})
    with pytest.raises(VerifierError, match="no requirements to audit"):
        build_verifier("pip-audit").scan(root)


def test_unreachable_service_is_an_error(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"requirements.txt": "requests==2.19.0\n"})
    # port 9 (discard) on loopback: nothing listens, the connection is refused at once
    verifier = build_verifier("pip-audit", args=["-s", "osv", "--osv-url", "http://127.0.0.1:9/v1/query"])
    with pytest.raises(VerifierError, match="could not reach the vulnerability service"):
        verifier.scan(root)


def test_real_service_never_reports_clean_when_it_cannot_audit(tree: Callable[[dict[str, str]], Path]) -> None:
    # with the default (PyPI) service: either the advisory is found, or the scan says it could not audit
    root = tree({"requirements.txt": "requests==2.19.0\n"})
    try:
        findings = build_verifier("pip-audit").scan(root).findings
    except VerifierError as exc:
        assert "vulnerability service" in exc.reason
    else:
        assert any(f.identity.endswith(":requests") for f in findings)


@pytest.mark.skipif(
    not os.environ.get("TRUTHPLANE_ONLINE_TESTS"),
    reason="needs PyPI's vulnerability data, which this workplace cannot reach; TRUTHPLANE_ONLINE_TESTS=1 runs it",
)
@pytest.mark.tool("pypi-vulnerability-data")
def test_real_service_finds_a_known_vulnerable_pin(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"requirements.txt": "pyyaml==5.3\nrequests==2.19.0\n"})
    findings = build_verifier("pip-audit").scan(root).findings
    assert {f.identity.split(":")[1] for f in findings} == {"pyyaml", "requests"}
    assert {f.path for f in findings} == {"requirements.txt"}


@pytest.mark.slow
def test_unpinned_requirements_are_resolved_first(tree: Callable[[dict[str, str]], Path], osv_url: str) -> None:
    # needs the package index (pip resolves the range to 2.19.1); advisories come from the local service
    root = tree({"requirements.txt": "requests>=2.19,<2.19.2\n"})
    findings = build_verifier("pip-audit", **_audit(osv_url)).scan(root).findings
    assert ("PYSEC-2018-28", "requirements.txt", 1) in located(findings)
    assert "requests 2.19.1" in next(f.message for f in findings if f.rule_id == "PYSEC-2018-28")


def test_includes_count_towards_pinning(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("idna==2.7\n", encoding="utf-8")
    (tmp_path / "loose.txt").write_text("idna>=2\n", encoding="utf-8")
    assert _requirement_lines("-r base.txt\nrequests==2.19.0\n", tmp_path)[1] is True
    assert _requirement_lines("-r loose.txt\nrequests==2.19.0\n", tmp_path)[1] is False
    assert _requirement_lines("-r missing.txt\n", tmp_path)[1] is False
    (tmp_path / "loop.txt").write_text("-r loop.txt\nidna==2.7\n", encoding="utf-8")
    assert _requirement_lines("-r loop.txt\n", tmp_path)[1] is False


@pytest.mark.parametrize(
    "text, pinned",
    [
        ("requests==2.19.0\nidna==2.7 ; python_version >= '3'\n", True),
        ("requests==2.19.0 \\\n    --hash=sha256:abc\n", True),
        ("requests>=2.19\n", False),
        ("-e .\n", False),
        ("requests\n", False),
        ("-r other.txt\n", False),
    ],
)
def test_pinned_detection(text: str, pinned: bool) -> None:
    assert _requirement_lines(text)[1] is pinned
