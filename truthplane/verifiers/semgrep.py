"""semgrep: pattern-based security rules, always offline (--metrics=off, no version check, local rule
files only). truthplane's rules in truthplane/rules/ always run; the repository's `.semgrep.yml`,
`.semgrep.yaml` or `.semgrep/` rules and any `rules` from truthplane.toml run in addition, and its
`.semgrepignore` / `.gitignore` apply. A file subset is scanned with --include, so ignore files apply to
it exactly as to a whole scan.

Engine: by default semgrep's compiled CLI (`semgrep scan --experimental`, "osemgrep"), which gives the
same findings as the Python CLI on truthplane's rules and starts in a fraction of the time; set
`engine = "classic"` under [verifiers.semgrep] for the Python CLI. The engine is part of the cache key.

Exit codes: 0 ok, 1 findings (with --error); anything else could not run. Errors in the JSON `errors`
list at level "error" that are not about one target file (a rule that does not parse, a missing config)
are fatal; a problem parsing one target file is not.
Severity: the rule's `metadata: {truthplane-severity: ...}` if set, else ERROR -> high, WARNING -> medium,
INFO -> low (semgrep's newer CRITICAL/HIGH/MEDIUM/LOW map to the same names).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import field
from pathlib import Path
from typing import Any

from truthplane.errors import ConfigError, VerifierError
from truthplane.models import Finding, Severity, ToolInfo
from truthplane.verifiers._commands import Command, Recipe, semgrep_memo, semgrep_plan
from truthplane.verifiers._common import (
    ToolRecord,
    cached_tool_info,
    one_line,
    parse_json,
    positive,
    repo_path,
    severity_from_word,
    validate,
)
from truthplane.verifiers.file_tool import FileToolVerifier
from truthplane.verifiers.tool import ToolOutput

INSTALL_HINT = "pip install semgrep, or drop it from verifiers in truthplane.toml"
RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
REPO_RULES = (".semgrep.yml", ".semgrep.yaml", ".semgrep")
_RULE_ID = re.compile(r"""^\s*-?\s*id:\s*["']?([^\s"'#]+)""", re.MULTILINE)
_REMOTE_CONFIG = re.compile(r"^(auto|p/|r/|s/|https?://|supply-chain|policy)")


class _Position(ToolRecord):
    line: int
    col: int | None = None


class _Extra(ToolRecord):
    message: str = ""
    severity: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class _SemgrepResult(ToolRecord):
    check_id: str
    path: str
    start: _Position
    end: _Position | None = None
    extra: _Extra


class _SemgrepError(ToolRecord):
    level: str = "error"
    type: Any = None
    message: str = ""
    long_msg: str = ""  # rule schema errors carry these instead of `message`
    short_msg: str = ""
    rule_id: str | None = None
    path: str | None = None

    def text(self) -> str:
        said = self.message or self.long_msg or self.short_msg or str(self.type or "unknown error")
        return said if not self.rule_id or self.rule_id in said else f"rule {self.rule_id}: {said}"


class _Skipped(ToolRecord):
    path: str
    reason: str = ""


class _Paths(ToolRecord):
    scanned: list[str] = field(default_factory=list)
    skipped: list[_Skipped] = field(default_factory=list)


class _SemgrepOutput(ToolRecord):
    results: list[_SemgrepResult]
    errors: list[_SemgrepError] = field(default_factory=list)
    version: str | None = None
    paths: _Paths | None = None


def shipped_rule_files() -> list[Path]:
    return sorted(p for p in RULES_DIR.glob("*.yml") if p.is_file())


def rule_ids(paths: list[Path]) -> set[str]:
    """Every rule id declared in these rule files (semgrep prefixes ids with the config's directory)."""
    ids: set[str] = set()
    for path in paths:
        candidates = sorted(path.rglob("*.y*ml")) if path.is_dir() else [path]
        for candidate in candidates:
            try:
                ids.update(_RULE_ID.findall(candidate.read_text(encoding="utf-8", errors="replace")))
            except OSError:
                continue
    return ids


def declared_rule_id(check_id: str, known: set[str]) -> str:
    """Undo semgrep's path prefix: the longest declared id that check_id is or ends with."""
    matches = [rule for rule in known if check_id == rule or check_id.endswith("." + rule)]
    return max(matches, key=len) if matches else check_id


def semgrep_severity(word: str | None, metadata: dict[str, Any]) -> Severity:
    declared = metadata.get("truthplane-severity")
    if isinstance(declared, str):
        try:
            return Severity(declared.strip().lower())
        except ValueError:
            pass
    if word and word.upper() in ("EXPERIMENT", "INVENTORY"):
        return Severity.NOTE
    return severity_from_word(word, Severity.MEDIUM)


def help_uri(metadata: dict[str, Any]) -> str | None:
    for key in ("source", "shortlink"):
        if isinstance(metadata.get(key), str):
            return metadata[key]
    references = metadata.get("references")
    if isinstance(references, str):
        return references
    if isinstance(references, list) and references and isinstance(references[0], str):
        return references[0]
    return None


class SemgrepVerifier(FileToolVerifier):
    name = "semgrep"
    file_local = True
    suffixes = (".py", ".pyi")
    config_files = (".semgrep.yml", ".semgrep.yaml", ".semgrep", ".semgrepignore", ".gitignore")
    reads_only_given = True  # each file on its own, with its rules

    def available(self) -> ToolInfo:
        return cached_tool_info(self.instance_name, ["semgrep", "--version"], install_hint=INSTALL_HINT)

    def config_fingerprint(self) -> str:
        digest = hashlib.sha256(self.options.model_dump_json().encode())
        for path in shipped_rule_files():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()

    def rule_paths(self, target: Path) -> list[Path]:
        paths = shipped_rule_files()
        if not paths:
            raise VerifierError(self.instance_name, f"no rules found in {RULES_DIR}; reinstall truthplane")
        paths += [target / name for name in REPO_RULES if (target / name).exists()]
        configs_in_args = [
            arg.split("=", 1)[1] if "=" in arg else nxt
            for arg, nxt in zip(self.options.args, [*self.options.args[1:], ""], strict=False)
            if arg in ("--config", "-c", "-f") or arg.startswith("--config=")
        ]
        for config in configs_in_args:
            if _REMOTE_CONFIG.match(config):
                raise ConfigError(
                    f"verifiers.{self.instance_name}.args: --config {config} needs the semgrep registry; "
                    "truthplane runs semgrep offline, so use local rules (the `rules` option)"
                )
        for rule in self.options.rules or []:
            if _REMOTE_CONFIG.match(rule):
                raise ConfigError(
                    f"verifiers.{self.instance_name}.rules: {rule!r} needs the semgrep registry; "
                    "truthplane runs semgrep offline, so name local rule files or directories"
                )
            path = Path(rule) if Path(rule).is_absolute() else target / rule
            if not path.exists():
                raise ConfigError(f"verifiers.{self.instance_name}.rules: {rule} does not exist")
            paths.append(path)
        return paths

    def recipe(self, target: Path, rules: list[Path] | None = None) -> Recipe:
        rules = self.rule_paths(target) if rules is None else rules
        cache_dir = self.context.cache_dir
        return Recipe(
            "semgrep",
            {
                "native": self.options.engine == "native",
                "rules": [str(p) for p in rules],
                "args": list(self.options.args),
                # what semgrep's walk decided on which files (truthplane.verifiers._targets), kept with the cache
                "memo": str(Path(cache_dir) / "semgrep-targets.sqlite3") if cache_dir is not None else None,
            },
        )

    # every exit status is read, so a failed run is explained by semgrep's own JSON errors
    ok_exit_codes = tuple(range(256))

    def command(self, target: Path, files: list[str] | None) -> Command:
        return self.recipe(target, self.rule_paths(target)).command(target, files)

    def findings(self, target: Path, output: ToolOutput, files: list[str] | None) -> list[Finding]:
        rules = self.rule_paths(target)
        report = self.report(output)
        findings = [self._finding(target, item, rule_ids(rules)) for item in report.results]
        self._learn(target, self.recipe(target, rules), report, files)
        if files is not None:  # beyond MAX_INCLUDES files semgrep scans everything: keep the requested ones
            wanted = set(files)
            findings = [f for f in findings if f.path in wanted]
        return findings

    def _learn(self, target: Path, recipe: Recipe, report: _SemgrepOutput, files: list[str] | None) -> None:
        """Keep what semgrep's walk decided on the files it walked for (truthplane.verifiers._targets)."""
        if report.paths is None:
            return
        memo = semgrep_memo(recipe.inputs, target)
        if memo is None:
            return
        scanned = {repo_path(target, path) for path in report.paths.scanned}
        if files is None:
            from truthplane.verifiers._targets import PATH_REASONS

            decisions = {path: True for path in scanned if path.endswith(self.suffixes)}
            decisions.update(
                (path, False) for path in (repo_path(target, s.path) for s in report.paths.skipped
                                           if s.reason in PATH_REASONS) if path.endswith(self.suffixes)
            )
            memo.learn(target, decisions)
            return
        named, _walked = semgrep_plan(recipe.inputs, target, files)
        troubled = {repo_path(target, error.path) for error in report.errors if error.path}
        memo.learn_from_walk(target, sorted(set(files) - set(named)), scanned, troubled)

    def parse(self, target: Path, output: ToolOutput, known: set[str]) -> list[Finding]:
        """semgrep's JSON report as findings (rule ids as declared in `known`); else a VerifierError."""
        return [self._finding(target, item, known) for item in self.report(output).results]

    def report(self, output: ToolOutput) -> _SemgrepOutput:
        """semgrep's JSON report, checked; else a VerifierError."""
        if output.returncode not in (0, 1) and not output.stdout.strip().startswith("{"):
            tail = " | ".join(output.stderr.strip().splitlines()[-3:]) or "no output"
            raise VerifierError(
                self.instance_name, f"semgrep exited with {output.returncode}: {one_line(tail, 200)}"
            )
        report = validate(
            self.instance_name,
            _SemgrepOutput,
            parse_json(self.instance_name, output.stdout, "semgrep", output.stderr),
            "semgrep",
        )
        fatal = [e for e in report.errors if e.level == "error" and not e.path]
        if fatal or output.returncode not in (0, 1):
            reason = one_line(fatal[0].text(), 200) if fatal else f"exited with {output.returncode}"
            raise VerifierError(self.instance_name, f"semgrep could not run: {reason}")
        if output.returncode == 1 and not report.results:
            raise VerifierError(
                self.instance_name, "semgrep exited 1 (findings) but reported none; run semgrep by hand"
            )
        return report

    def _finding(self, target: Path, item: _SemgrepResult, known: set[str]) -> Finding:
        end = item.end or item.start
        return Finding(
            verifier=self.instance_name,
            rule_id=declared_rule_id(item.check_id, known),
            severity=semgrep_severity(item.extra.severity, item.extra.metadata),
            tool_severity=item.extra.severity,
            message=one_line(item.extra.message),
            path=repo_path(target, item.path),
            start_line=positive(item.start.line),
            start_column=positive(item.start.col),
            end_line=positive(end.line),
            end_column=positive(end.col),
            help_uri=help_uri(item.extra.metadata),
        )
