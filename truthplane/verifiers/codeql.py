"""codeql: the original Truth Plane's gatekeeper over the real CodeQL CLI, as plain functions (so
they can be served as MCP tools) and as a verifier.

    build_db(scope, build_cmd, language)   codeql database create DB --language=L --source-root=SCOPE
                                           [--command=BUILD] --overwrite; cached in
                                           .truth-plane-results/codeql-dbs/<language>-<tree hash>
    analyze(db, query_pack)                codeql database analyze DB PACK --format=sarif-latest
                                           --output=FILE; the SARIF file's path
    diff_alerts(before, after)             two SARIF logs (or finding lists) matched by fingerprint:
                                           CodeQL's partialFingerprints.primaryLocationLineHash
    summarize(alerts)                      counts by severity and rule, for a report or an agent

truthplane.toml::

    [verifiers.codeql]
    language = "javascript"                # codeql's language name (javascript covers TypeScript)
    queries = "codeql/javascript-queries"  # a query pack or suite (default: the language's standard pack)
    command = ["npm", "run", "build"]      # only compiled languages need a build command

The tree hash covers every file the scan sees (uncommitted changes included), so a database is built
once per tree and language. `database create` runs the build command on the host: the CLI writes the
database there. For an untrusted repository use a language CodeQL extracts without building
(JavaScript/TypeScript, Python, Ruby) and no build command.
The CodeQL CLI is not in any package registry: it must be installed by hand (the CodeQL bundle).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


from truthplane.errors import ConfigError, InputError, VerifierError
from truthplane.leftovers import owned_prefix
from truthplane.models import Finding, ScanResult, ToolInfo, ToolStatus
from truthplane.paths import RESULTS_DIR, self_ignoring
from truthplane.verifiers._commands import which
from truthplane.verifiers._common import cached_tool_info, one_line, repo_path
from truthplane.verifiers.interface import Verifier
from truthplane.verifiers.tool import run_tool

DB_DIR = "codeql-dbs"
DB_MARKER = "codeql-database.yml"
VERIFIER = "codeql"
INSTALL_HINT = (
    "the CodeQL CLI is not installed and no package registry ships it: download the CodeQL bundle "
    "(github/codeql-action releases), put its `codeql` on PATH, or drop codeql from verifiers in truthplane.toml"
)
LANGUAGES = ("javascript", "javascript-typescript", "python", "java", "java-kotlin", "cpp", "c-cpp", "csharp",
             "go", "ruby", "swift", "actions", "rust")
TIMEOUT_S = 3600.0


def _codeql() -> str:
    found = which("codeql")
    if found is None:
        raise VerifierError(VERIFIER, INSTALL_HINT, status=ToolStatus.MISSING.value)
    return found


def tree_hash(scope: Path) -> str:
    """SHA-256 over every (path, git blob id) the scanner would see in `scope`, dirty files included."""
    from fnmatch import fnmatch

    from truthplane.config import DEFAULT_EXCLUDES
    from truthplane.git.repo import Repo, directory_files

    def skip(path: str) -> bool:
        return any(fnmatch(part, pattern) for part in path.split("/") for pattern in DEFAULT_EXCLUDES)

    repo = Repo.discover(scope)
    if repo is not None and repo.root.resolve() == scope.resolve():
        files = {f.path: f.blob for f in repo.worktree_state(skip)[0]}
    else:
        files = {path: blob for path, blob in directory_files(scope).items() if not skip(path)}
    digest = hashlib.sha256()
    for path, blob in sorted(files.items()):
        digest.update(f"{path}\0{blob}\n".encode("utf-8", errors="surrogatepass"))
    return digest.hexdigest()


def database_path(cache_root: Path, language: str, tree: str) -> Path:
    return cache_root / RESULTS_DIR / DB_DIR / f"{language}-{tree[:24]}"


def create_command(db: Path, scope: Path, language: str, build_cmd: str | Sequence[str] | None) -> list[str]:
    """The argv of `codeql database create` (without the executable)."""
    command = ["database", "create", str(db), f"--language={language}", f"--source-root={scope}", "--overwrite"]
    if build_cmd:
        import shlex

        shown = build_cmd if isinstance(build_cmd, str) else shlex.join(build_cmd)
        command.append(f"--command={shown}")
    return command


def analyze_command(db: Path, query_pack: str, output: Path) -> list[str]:
    """The argv of `codeql database analyze` (without the executable)."""
    return ["database", "analyze", str(db), query_pack, "--format=sarif-latest", f"--output={output}"]


def build_db(
    scope: Path, build_cmd: str | Sequence[str] | None = None, language: str = "javascript", *,
    cache_root: Path | None = None, timeout_s: float = TIMEOUT_S,
) -> Path:
    """A CodeQL database of `scope` for `language`: the cached one for this tree, else a new one.

    Built in a temporary directory beside the cache and renamed into place, so a crash never leaves
    a half-built database that looks finished."""
    if language not in LANGUAGES:
        raise ConfigError(f"codeql: unknown language {language!r}; choose from {', '.join(LANGUAGES)}")
    scope = scope.resolve()
    db = database_path((cache_root or scope).resolve(), language, tree_hash(scope))
    if (db / DB_MARKER).is_file():
        return db
    executable = _codeql()
    self_ignoring(db.parent.parent)  # <cache root>/.truth-plane-results
    db.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{db.name}.", dir=db.parent))
    try:
        building = staging / "db"
        run_tool(VERIFIER, [executable, *create_command(building, scope, language, build_cmd)],
                 cwd=scope, timeout_s=timeout_s)
        if not (building / DB_MARKER).is_file():
            raise VerifierError(VERIFIER, f"codeql database create wrote no {DB_MARKER}; run it by hand to see why")
        shutil.rmtree(db, ignore_errors=True)
        os.replace(building, db)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return db


def analyze(db: Path, query_pack: str, *, output: Path | None = None, timeout_s: float = TIMEOUT_S) -> Path:
    """Run `query_pack` over `db`; the path of the SARIF log it wrote (written atomically)."""
    if not (db / DB_MARKER).is_file():
        raise InputError(f"{db} is not a CodeQL database (no {DB_MARKER}); build it with build_db first")
    output = output or db.parent / f"{db.name}.{query_pack.replace('/', '_').replace(':', '_')}.sarif"
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    os.close(fd)
    try:
        run_tool(
            VERIFIER, [_codeql(), *analyze_command(db, query_pack, Path(partial))], cwd=db.parent, timeout_s=timeout_s
        )
        load_log(Path(partial))  # SARIF, or a VerifierError; never a silently empty result
        os.replace(partial, output)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return output


def load_log(path: Path) -> dict[str, Any]:
    try:
        log = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VerifierError(VERIFIER, f"codeql wrote no readable SARIF at {path.name} ({exc})") from None
    if not isinstance(log, dict) or log.get("version") != "2.1.0" or not isinstance(log.get("runs"), list):
        raise VerifierError(VERIFIER, f"{path.name} is not a SARIF 2.1.0 log")
    return log


Alerts = Path | Mapping[str, Any] | Sequence[Finding]


def alerts_of(alerts: Alerts, verifier: str = VERIFIER, root: Path | None = None) -> list[Finding]:
    """Findings from a SARIF file, a SARIF log, or findings as they are."""
    from truthplane.verifiers.sarif_input import findings_from_sarif

    if isinstance(alerts, Path):
        alerts = load_log(alerts)
    if isinstance(alerts, Mapping):
        try:
            found = findings_from_sarif(dict(alerts), verifier, root)
        except InputError as exc:
            raise VerifierError(verifier, f"unusable CodeQL SARIF: {exc}") from None
        return [f.model_copy(update={"path": repo_path(root, f.path)}) if root and f.path and "://" not in f.path else f
                for f in found]
    return list(alerts)


def detect_language(target: Path) -> str:
    if (target / "package.json").is_file() or (target / "tsconfig.json").is_file():
        return "javascript"
    if any((target / name).is_file() for name in ("pyproject.toml", "setup.py", "requirements.txt")):
        return "python"
    raise ConfigError('codeql: cannot tell the language; set language = "..." under [verifiers.codeql]')


class CodeqlVerifier(Verifier):
    name = "codeql"
    incremental = False
    file_local = False
    tree_cacheable = True
    suffixes = ()
    config_files = ("codeql-config.yml", "qlpack.yml", "codeql-pack.yml")
    project_root: Path | None = None

    def available(self) -> ToolInfo:
        if which("codeql") is None:
            return ToolInfo(name=self.instance_name, installed=False, reason=INSTALL_HINT)
        info = cached_tool_info(self.instance_name, ["codeql", "--version"], install_hint=INSTALL_HINT)
        # "CodeQL command-line toolchain release 2.19.3." ends its sentence with a full stop
        return info.model_copy(update={"version": info.version.rstrip(".")}) if info.version else info

    def scan(self, target: Path, files: list[str] | None = None) -> ScanResult:
        started = time.monotonic()
        info = self.available()
        if files is not None and not files:
            return ScanResult(verifier=self.instance_name, version=info.version)
        language = self.options.language or detect_language(target)
        queries = self.options.queries or f"codeql/{language.split('-')[0]}-queries"
        db = build_db(target, self.options.command, language, cache_root=self.project_root or target,
                      timeout_s=self.timeout_s)
        with tempfile.TemporaryDirectory(prefix=owned_prefix("codeql")) as scratch:
            sarif = analyze(db, queries, output=Path(scratch) / "results.sarif", timeout_s=self.timeout_s)
            findings = alerts_of(sarif, self.instance_name, target)
        return ScanResult(verifier=self.instance_name, version=info.version, findings=[
            f.model_copy(update={"message": one_line(f.message)}) for f in findings
        ], duration_s=time.monotonic() - started)
