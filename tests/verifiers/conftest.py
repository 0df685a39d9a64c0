"""Verifier test harness: build any verifier through the registry as a scanner would, write small
repositories, put a deliberately broken tool first on PATH, and serve vulnerability data in OSV's
wire format on 127.0.0.1 so pip-audit can be exercised without the internet."""

from __future__ import annotations

import json
import os
import stat
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import register_probe
from truthplane.config import VerifierConfig
from truthplane.models import Finding
from truthplane.registry import load
from truthplane.verifiers.interface import Verifier, VerifierContext

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "verifiers"


@cache
def _pypi_vulnerability_data() -> bool:
    """PyPI's per-release JSON (where pip-audit reads advisories) answers from here."""
    try:
        with urllib.request.urlopen("https://pypi.org/pypi/requests/2.19.0/json", timeout=10) as response:
            return response.status == 200 and bool(json.load(response).get("vulnerabilities"))
    except (OSError, ValueError):
        return False


register_probe("pypi-vulnerability-data", _pypi_vulnerability_data)


def build_verifier(kind: str, instance: str | None = None, **options: Any) -> Verifier:
    """A verifier made the way truthplane makes them: registry type name + validated options."""
    cls = load("verifiers", kind)
    return cls(instance or kind, VerifierConfig.model_validate(options), VerifierContext(timeout_s=120))


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """tree({"a.py": "..."}) -> a directory holding those files (not a git repository)."""

    def make(files: dict[str, str]) -> Path:
        root = tmp_path / "repo"
        root.mkdir(exist_ok=True)
        return write_tree(root, files)

    return make


def located(findings: list[Finding]) -> set[tuple[str, str, int | None]]:
    return {(f.rule_id, f.path, f.start_line) for f in findings}


@pytest.fixture
def broken_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str, int], None]:
    """broken_tool("ruff", "garbage", 0): a `ruff` first on PATH that answers --version like a real
    tool but otherwise prints `output` and exits with `code` (what a crashed or foreign tool does)."""
    bin_dir = tmp_path / "broken-bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    def make(name: str, output: str, code: int) -> None:
        (bin_dir / "payload").write_text(output, encoding="utf-8")
        script = bin_dir / name
        script.write_text(
            "#!/bin/sh\n"
            f'if [ "$1" = "--version" ]; then echo "{name} 0.0.1"; exit 0; fi\n'
            f'cat "{bin_dir / "payload"}"\n'
            f"exit {code}\n",
            encoding="utf-8",
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    return make


@pytest.fixture
def no_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing on PATH and no interpreter directory to fall back on: every tool is missing."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(sys, "executable", str(empty / "python"))


# ---- an OSV-format vulnerability service on 127.0.0.1 ------------------------------------------

def _advisory(vuln_id: str, aliases: list[str], summary: str, package: str, fixed: str) -> dict[str, Any]:
    return {
        "id": vuln_id,
        "aliases": aliases,
        "summary": summary,
        "affected": [
            {
                "package": {"name": package, "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
            }
        ],
    }


# real advisories (osv.dev), trimmed to the fields pip-audit reads
REQUESTS_REDIRECT = _advisory(
    "PYSEC-2018-28", ["CVE-2018-18074", "GHSA-x84v-xcm2-53pg"],
    "Requests sends the Authorization header to an http URI after an https redirect", "requests", "2.20.0",
)
PYYAML_FULL_LOAD = _advisory(
    "PYSEC-2020-96", ["CVE-2020-14343", "GHSA-8q59-q68h-6hv4"],
    "full_load and FullLoader allow arbitrary code execution", "pyyaml", "5.4",
)
OSV_ADVISORIES: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("requests", "2.19.0"): [REQUESTS_REDIRECT],
    ("requests", "2.19.1"): [REQUESTS_REDIRECT],
    ("pyyaml", "5.3"): [PYYAML_FULL_LOAD],
}


class _OsvHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        key = (body.get("package", {}).get("name", ""), body.get("version", ""))
        vulns = OSV_ADVISORIES.get(key)
        payload = json.dumps({"vulns": vulns} if vulns else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def osv_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OsvHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    finally:
        server.shutdown()
        server.server_close()
