"""npm audit with the real npm on a real lockfile: one finding per advisory and package path, located
at the lockfile entry, fingerprinted by advisory + package; an unreachable or refusing registry is an
error, never "no vulnerabilities".

The advisory service is an npm registry on 127.0.0.1 answering npm's own bulk advisory request with
recorded published advisories (tests/js_harness.py); the last test talks to the configured registry.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import missing
from tests.js_harness import fixture_text, local_registry, npm_reachable, write_files
from tests.verifiers.conftest import build_verifier, located
from truthplane.errors import VerifierError
from truthplane.models import Severity
from truthplane.verifiers.npm_audit import lockfile_lines, manifest_lines

pytestmark = pytest.mark.tool("npm")


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    yield from local_registry()


def audited(root: Path, registry: str) -> list:  # type: ignore[type-arg]
    return build_verifier("npm-audit", args=["--registry", registry]).scan(root).findings


@pytest.fixture
def app(tmp_path: Path) -> Path:
    return write_files(tmp_path / "app", {
        "package.json": fixture_text("package.json"), "package-lock.json": fixture_text("package-lock.json"),
    })


def test_one_finding_per_advisory_and_package_at_the_lockfile_entry(app: Path, registry: str) -> None:
    findings = audited(app, registry)
    assert located(findings) == {
        ("GHSA-jf85-cpcp-j695", "package-lock.json", 15),
        ("GHSA-35jh-r3h4-6jhm", "package-lock.json", 15),
        ("GHSA-xvch-5gv4-984h", "package-lock.json", 20),
        ("GHSA-vh95-rmgr-6w4m", "package-lock.json", 20),
    }
    by_rule = {f.rule_id: f for f in findings}
    pollution = by_rule["GHSA-jf85-cpcp-j695"]
    assert pollution.identity == "GHSA-jf85-cpcp-j695:lodash"
    assert pollution.severity is Severity.CRITICAL and pollution.tool_severity == "critical"
    assert pollution.help_uri == "https://github.com/advisories/GHSA-jf85-cpcp-j695"
    assert pollution.message == "lodash <4.17.12 Prototype Pollution in lodash: fixed by lodash 4.17.21"
    assert by_rule["GHSA-35jh-r3h4-6jhm"].severity is Severity.HIGH
    assert by_rule["GHSA-vh95-rmgr-6w4m"].severity is Severity.MEDIUM


def test_each_package_path_is_its_own_finding_with_one_identity(tmp_path: Path, registry: str) -> None:
    root = write_files(
        tmp_path / "nested",
        {
            "package.json": fixture_text("nested-package.json"),
            "package-lock.json": fixture_text("nested-package-lock.json"),
        },
    )
    findings = audited(root, registry)
    assert located(findings) == {
        ("GHSA-jf85-cpcp-j695", "package-lock.json", 15), ("GHSA-jf85-cpcp-j695", "package-lock.json", 26),
        ("GHSA-35jh-r3h4-6jhm", "package-lock.json", 15), ("GHSA-35jh-r3h4-6jhm", "package-lock.json", 26),
    }  # `wrapper` is vulnerable only through lodash: no advisory of its own, no finding
    nested = [f for f in findings if f.start_line == 26]
    assert all(f.message.endswith("(at node_modules/wrapper/node_modules/lodash): no fix available") for f in nested)
    assert {f.identity for f in findings} == {"GHSA-jf85-cpcp-j695:lodash", "GHSA-35jh-r3h4-6jhm:lodash"}


def test_nothing_known_is_a_clean_audit(app: Path, registry: str) -> None:
    lock = json.loads((app / "package-lock.json").read_text())
    lock["packages"]["node_modules/lodash"]["version"] = "4.17.21"
    lock["packages"]["node_modules/minimist"]["version"] = "1.2.8"
    (app / "package-lock.json").write_text(json.dumps(lock, indent=2))
    assert audited(app, registry) == []


def test_unreachable_registry_is_an_error(app: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # port 9 (discard) on loopback: nothing listens, the connection is refused at once
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    with pytest.raises(VerifierError) as caught:
        build_verifier("npm-audit").scan(app)
    message = str(caught.value)
    assert message.startswith("npm-audit: could not audit: ") and "ECONNREFUSED" in message
    assert message.endswith("check the network, the proxy or the registry in .npmrc") and "\n" not in message
    assert caught.value.exit_code == 4


def test_no_lockfile_is_an_error_that_says_what_to_run(tmp_path: Path, registry: str) -> None:
    root = write_files(tmp_path / "app", {"package.json": fixture_text("package.json")})
    with pytest.raises(VerifierError, match=r"npm install --package-lock-only"):
        audited(root, registry)


def test_garbage_from_npm_is_an_error(app: Path, broken_tool) -> None:
    broken_tool("npm", '{"some": "thing"}\n', 0)
    with pytest.raises(VerifierError, match="could not audit"):
        build_verifier("npm-audit").scan(app)


def test_lockfile_and_manifest_lines() -> None:
    lock = fixture_text("package-lock.json")
    assert lockfile_lines(lock) == {"node_modules/lodash": 15, "node_modules/minimist": 20}
    assert manifest_lines(fixture_text("package.json")) == {"lodash": 10, "minimist": 11}


def test_configured_registry_never_reports_clean_when_it_cannot_audit(app: Path) -> None:
    """The real registry: either it audits (and knows this long-published lodash advisory) or the
    verifier fails; a mirror that refuses the audit endpoint (as here) must not read as clean."""
    if not npm_reachable():
        missing("the configured npm registry does not answer npm ping")
    try:
        findings = build_verifier("npm-audit").scan(app).findings
    except VerifierError as exc:
        assert str(exc).startswith("npm-audit: could not audit: ")
        return
    assert "GHSA-jf85-cpcp-j695" in {f.rule_id for f in findings}
