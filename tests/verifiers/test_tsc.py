"""tsc on real TypeScript projects: diagnostics (with their continuation lines) as findings, the
project's tsconfig deciding what is checked, whole-program results, configuration errors as errors,
and results cached by the tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.js_harness import link_node_modules, write_files
from tests.verifiers.conftest import build_verifier, located
from truthplane.config import Config, VerifierConfig
from truthplane.errors import VerifierError
from truthplane.models import Severity
from truthplane.truth.cache import ResultCache
from truthplane.truth.scanner import scan as run_scan
from truthplane.truth.sources import worktree_source
from truthplane.verifiers.interface import Verifier

pytestmark = pytest.mark.tool("tsc")

TSCONFIG = (
    '{"compilerOptions": {"strict": true, "noEmit": true, "types": [], "target": "ES2022"}, "include": ["src"]}\n'
)
SHAPES = (
    "export interface Point { x: number; y: number }\n"
    "export function norm(p: Point): number {\n"
    "  return Math.hypot(p.x, p.y);\n"
    "}\n"
)
MAIN = (
    'import { norm } from "./shapes";\n'
    "export const total: number = norm({ x: 1, y: 2 });\n"
    "export const label: string = total;\n"              # 3 TS2322
    'export const bad = norm({ x: "1", y: 2 });\n'       # 4 TS2322 with a continuation chain
)


def tsc(root: Path, **options: object) -> Verifier:
    verifier = build_verifier("tsc", **options)
    verifier.project_root = root  # type: ignore[attr-defined]
    return verifier


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = write_files(tmp_path / "svc", {
        "tsconfig.json": TSCONFIG, "src/shapes.ts": SHAPES, "src/main.ts": MAIN,
        "scripts/outside.ts": "export const ignored: number = 'not in include';\n",
    })
    link_node_modules(root)
    return root


def test_diagnostics_become_findings(project: Path) -> None:
    verifier = tsc(project)
    assert verifier.available().version == "5.9.3"
    findings = verifier.scan(project).findings
    assert located(findings) == {("TS2322", "src/main.ts", 3), ("TS2322", "src/main.ts", 4)}
    by_line = {f.start_line: f for f in findings}
    assert by_line[3].message == "Type 'number' is not assignable to type 'string'."
    assert by_line[3].start_column == 14 and by_line[3].severity is Severity.HIGH  # the project no longer compiles
    assert by_line[4].start_column == 27
    assert by_line[4].message == "Type 'string' is not assignable to type 'number'."


def test_message_chains_are_kept_on_one_line(tmp_path: Path) -> None:
    root = write_files(
        tmp_path / "svc",
        {
            "tsconfig.json": TSCONFIG,
            "src/a.ts": "function f(o: { a: { b: string } }): void { void o; }\nf({ a: { b: 1 } } as { a: { b: number "
                        "} });\n",
        },
    )
    (finding,) = tsc(root).scan(root).findings
    assert finding.rule_id == "TS2345" and finding.start_line == 2
    assert finding.message == (
        "Argument of type '{ a: { b: number; }; }' is not assignable to parameter of type '{ a: { b: string; }; }'. "
        "The types of 'a.b' are incompatible between these types. Type 'number' is not assignable to type 'string'."
    )


def test_whole_program_a_change_in_one_file_breaks_another(project: Path) -> None:
    (project / "src/shapes.ts").write_text(SHAPES.replace("p: Point): number", "p: Point): string").replace(
        "return Math.hypot(p.x, p.y);", "return String(Math.hypot(p.x, p.y));"))
    findings = tsc(project).scan(project, files=["src/shapes.ts"]).findings
    # only shapes.ts changed, yet the errors are in main.ts: tsc always checks the whole program
    assert ("TS2322", "src/main.ts", 2) in located(findings)


def test_another_tsconfig_by_option(project: Path) -> None:
    (project / "tsconfig.scripts.json").write_text('{"extends": "./tsconfig.json", "include": ["scripts"]}\n')
    verifier = tsc(project, project="tsconfig.scripts.json")
    assert "tsconfig.scripts.json" in verifier.config_files
    assert located(verifier.scan(project).findings) == {("TS2322", "scripts/outside.ts", 1)}


def test_missing_tsconfig_and_unusable_config_are_errors(project: Path, tmp_path: Path) -> None:
    with pytest.raises(VerifierError, match='tsconfig.other.json not found; set project = '):
        tsc(project, project="tsconfig.other.json").scan(project)
    empty = write_files(tmp_path / "empty", {"tsconfig.json": '{"include": ["src"]}\n', "README.md": "x\n"})
    with pytest.raises(VerifierError, match=r"tsc cannot use tsconfig.json: TS18003 No inputs were found"):
        tsc(empty).scan(empty)


def test_results_are_cached_by_the_whole_tree(project: Path, tmp_path: Path) -> None:
    config = Config(verifiers=["tsc"], verifier_options={"tsc": VerifierConfig()})
    config._root = project
    cache = ResultCache(tmp_path / "cache")
    first = run_scan(worktree_source(project, config), config, cache=cache)
    second = run_scan(worktree_source(project, config), config, cache=cache)
    assert second.findings == first.findings and len(first.findings) == 2
    assert first.verifiers[0].cached_files == 0
    assert second.verifiers[0].cached_files == 4  # tsconfig.json and the three .ts files: one tree entry
    (project / "src/shapes.ts").write_text(SHAPES + "export const z: number = 'z';\n")
    third = run_scan(worktree_source(project, config), config, cache=cache)
    assert third.verifiers[0].cached_files == 0 and len(third.findings) == 3
