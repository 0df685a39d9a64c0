"""What the JavaScript/TypeScript tests share: the node tools .ci/npm.sh installed (one prefix for every
test: projects get a node_modules symlink to it, never an npm install of their own), small real TS
projects, and an npm registry on 127.0.0.1 that answers npm audit's bulk advisory request and the
packument requests that follow, with recorded real advisories (tests/fixtures/js/advisories.json).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from tests.conftest import register_probe

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "js"
NPM_PREFIX = Path(os.environ.get("TRUTHPLANE_NPM_PREFIX", "/opt/truthplane/npm"))
NODE_MODULES = NPM_PREFIX / "node_modules"
PACKAGES = ("eslint", "typescript", "@eslint/js", "typescript-eslint", "@microsoft/eslint-formatter-sarif")


def _installed(*packages: str) -> bool:
    return shutil.which("node") is not None and all((NODE_MODULES / p / "package.json").is_file() for p in packages)


# `tool("eslint")` / `tool("tsc")`: the pinned packages .ci/npm.sh installs, not whatever is on PATH
register_probe(
    "eslint", lambda: _installed("eslint", "@eslint/js", "typescript-eslint", "@microsoft/eslint-formatter-sarif")
)
register_probe("tsc", lambda: _installed("typescript"))


def write_files(root: Path, files: dict[str, str]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


def link_node_modules(root: Path) -> None:
    """The project's node_modules: a symlink to the shared prefix (it also resolves in the sandbox)."""
    (root / "node_modules").symlink_to(NODE_MODULES, target_is_directory=True)


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def ts_project(lockfile: bool = False) -> dict[str, str]:
    """A TypeScript project's configuration files (flat eslint config, strict tsconfig, package.json)."""
    files = {
        "package.json": fixture_text("package.json"),
        "tsconfig.json": fixture_text("tsconfig.json"),
        "eslint.config.mjs": fixture_text("eslint.config.mjs"),
        ".gitignore": "node_modules\n",
    }
    if lockfile:
        files["package-lock.json"] = fixture_text("package-lock.json")
    return files


# ---- an npm registry on 127.0.0.1 for npm audit ----------------------------------------------------


def advisories() -> dict[str, list[dict[str, Any]]]:
    return json.loads(fixture_text("advisories.json"))


def _affected(name: str, version: str) -> list[dict[str, Any]]:
    """The recorded advisories whose `vulnerable_versions` (all of the form "<X.Y.Z") cover `version`."""
    def key(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split("."))

    return [a for a in advisories().get(name, []) if key(version) < key(a["vulnerable_versions"].lstrip("<"))]


class _RegistryHandler(BaseHTTPRequestHandler):
    versions: ClassVar[dict[str, list[str]]] = {
        "lodash": ["4.17.4", "4.17.11", "4.17.21"],
        "minimist": ["0.0.8", "1.2.8"],
    }

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if not self.path.endswith("/-/npm/v1/security/advisories/bulk"):
            self._send(404, {"error": "not found"})
            return
        asked: dict[str, list[str]] = json.loads(body or b"{}")
        found = {name: [a for v in versions for a in _affected(name, v)] for name, versions in asked.items()}
        self._send(200, {name: hits for name, hits in found.items() if hits})

    def do_GET(self) -> None:
        name = self.path.strip("/").replace("%2f", "/").replace("%2F", "/")
        versions = self.versions.get(name)
        if not versions:
            self._send(404, {"error": "not found"})
            return
        self._send(200, {
            "name": name,
            "dist-tags": {"latest": versions[-1]},
            "versions": {v: {"name": name, "version": v, "dist": {"tarball": f"http://127.0.0.1/{name}-{v}.tgz"}}
                         for v in versions},
        })

    def log_message(self, format: str, *args: Any) -> None:
        return


def local_registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RegistryHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def npm_reachable() -> bool:
    """The configured registry answers `npm ping` (the real registry, for the one real-service test)."""
    try:
        return subprocess.run(["npm", "ping"], check=False, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
