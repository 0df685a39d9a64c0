"""The knowledge plane: what a patcher needs to know about one file and one problem, within a budget.

Given a repository, a file, and a Finding or an error text (a traceback: its frames that point into
the repository are extracted), `build_context` gathers, most relevant first: the problem, the
enclosing function or class of the flagged line, the repository frames of the traceback, the file's
imports, the repository's conventions (ruff/mypy/flake8/pytest settings, .editorconfig, trimmed),
test functions that name the symbol, the whole file, the file's test module, and the files that
import it. Parts that do not fit the token budget are left out, least relevant first, and the
context says what was cut. Tokens are estimated as characters / 4 (`estimate_tokens`): close enough
for English and code with the common BPE tokenisers, and needing none of them.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field

from truthplane import pyparse
from truthplane.config import DEFAULT_EXCLUDES
from truthplane.errors import UsageError
from truthplane.models import Finding

CHARS_PER_TOKEN = 4
DEFAULT_TOKEN_BUDGET = 6000
# the directories a scan never looks into (the configuration's default excludes), nor does the context
_SKIP_DIRS = {name for name in DEFAULT_EXCLUDES if "*" not in name}
_SKIP_PATTERNS = [name for name in DEFAULT_EXCLUDES if "*" in name]
_MAX_FILES = 5000  # Python files looked at for tests and importers
_MAX_TEST_FUNCTIONS = 6
_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+)(?:, in (?P<function>[^\n]+))?')
_CONVENTION_FILES = {
    "pyproject.toml": re.compile(r"^\[tool\.(ruff|mypy|black|isort|pytest|pyright|pylint|flake8)\b"),
    "setup.cfg": re.compile(r"^\[(flake8|mypy|tool:pytest|isort|pycodestyle|pydocstyle)\b"),
    "tox.ini": re.compile(r"^\[(flake8|pytest|pycodestyle)\b"),
    "ruff.toml": None, ".ruff.toml": None, "mypy.ini": None, ".flake8": None, ".editorconfig": None,
}
_MAX_CONVENTION_LINES = 30


def estimate_tokens(text: str) -> int:
    """About one token per four characters (rounded up)."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


@dataclass(frozen=True)
class Frame:
    path: str  # repo-relative POSIX
    line: int
    function: str


class ContextPart(BaseModel):
    kind: str
    title: str
    text: str
    truncated: bool = False

    def render(self) -> str:
        return f"## {self.title}\n{self.text.rstrip()}\n"


class Context(BaseModel):
    path: str
    line: int | None = None
    symbol: str | None = None
    parts: list[ContextPart] = Field(default_factory=list)
    omitted: list[str] = Field(default_factory=list, description="what was cut to fit the budget")
    token_budget: int
    tokens: int = 0

    def part(self, kind: str) -> ContextPart | None:
        return next((p for p in self.parts if p.kind == kind), None)

    def render(self) -> str:
        sections = [p.render() for p in self.parts]
        if self.omitted:
            cut = "\n".join(f"- {line}" for line in self.omitted)
            sections.append(f"## Left out to fit the token budget (~{self.token_budget} tokens)\n{cut}\n")
        return "\n".join(sections)


def traceback_frames(error: str, root: Path) -> list[Frame]:
    """The frames of a Python traceback that point at files of the repository, in traceback order."""
    root = root.resolve()
    frames = []
    for match in _FRAME.finditer(error):
        rel = _repo_path(match.group("path"), root)
        if rel is not None:
            frames.append(Frame(rel, int(match.group("line")), (match.group("function") or "").strip()))
    return frames


def _repo_path(raw: str, root: Path) -> str | None:
    if "site-packages" in raw or "dist-packages" in raw or raw.startswith("<"):
        return None
    path = Path(raw)
    if path.is_absolute():
        try:
            return path.resolve().relative_to(root).as_posix()
        except (ValueError, OSError):
            pass
        parts = path.parts[1:]
        # a traceback from a sandbox or another checkout: the longest path suffix that exists here
        for start in range(len(parts)):
            candidate = root.joinpath(*parts[start:])
            if candidate.is_file():
                return PurePosixPath(*parts[start:]).as_posix()
        return None
    return path.as_posix() if (root / path).is_file() else None


def build_context(
    root: Path, path: str | Path, *, finding: Finding | None = None, error: str | None = None,
    token_budget: int = DEFAULT_TOKEN_BUDGET,
) -> Context:
    root = root.resolve()
    rel = _relative(root, Path(path))
    source = (root / rel).read_text(encoding="utf-8", errors="replace")
    lines = source.splitlines()
    tree = _parse(source) if rel.endswith(".py") else None
    frames = traceback_frames(error, root) if error else []
    line = finding.start_line if finding and finding.start_line else None
    if line is None:
        line = next((f.line for f in reversed(frames) if f.path == rel), None)
    node = _enclosing(tree, line) if tree is not None and line else None
    symbol = node.name if node is not None else None
    module = _module_name(rel)

    candidates: list[tuple[ContextPart, bool]] = []  # most relevant first; True: truncate rather than drop
    if finding is not None:
        candidates.append((ContextPart(kind="finding", title="Finding", text=_describe(finding)), True))
    if error:
        candidates.append((ContextPart(kind="error", title="Error", text=_relative_paths(error, root)), True))
    if line is not None:
        first, last = _span(node, line, len(lines))
        kind = f"{type(node).__name__.removesuffix('Def').lower()} {symbol}" if node is not None else "lines"
        title = f"{rel}: {kind} (lines {first}-{last}; flagged line {line})"
        candidates.append((ContextPart(kind="enclosing", title=title, text=_lines(lines, first, last)), True))
    repo_frames = [f for f in frames if (f.path, f.line) != (rel, line)][-5:]
    if repo_frames:
        candidates.append((ContextPart(kind="frames", title="Traceback frames in the repository",
                                       text=_frames_text(root, repo_frames)), False))
    if tree is not None:
        imports = [
            ast.get_source_segment(source, n) or "" for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
        ]
        if imports:
            candidates.append((ContextPart(kind="imports", title=f"Imports of {rel}", text="\n".join(imports)), False))
    conventions = _conventions(root)
    if conventions:
        candidates.append((ContextPart(kind="conventions", title="Repository conventions", text=conventions), False))
    python_files = _python_files(root) if rel.endswith(".py") else []
    tests = [p for p in python_files if _is_test(p) and p != rel]
    if symbol:
        functions = _test_functions(root, tests, symbol)
        if functions:
            candidates.append((ContextPart(kind="test_functions", title=f"Tests that name {symbol}",
                                           text="\n\n".join(functions)), False))
    candidates.append((ContextPart(kind="file", title=f"The whole of {rel}", text=source), line is None))
    stem = PurePosixPath(rel).stem
    for test_path in [p for p in tests if PurePosixPath(p).name in (f"test_{stem}.py", f"{stem}_test.py")][:2]:
        text = (root / test_path).read_text(encoding="utf-8", errors="replace")
        candidates.append((ContextPart(kind="test_module", title=f"Test module {test_path}", text=text), False))
    importers = _importers(root, python_files, module, rel) if module else []
    if importers:
        candidates.append((ContextPart(kind="importers", title=f"Files importing {module}",
                                       text="\n".join(importers)), False))
    return _fit(Context(path=rel, line=line, symbol=symbol, token_budget=token_budget), candidates)


def _fit(context: Context, candidates: list[tuple[ContextPart, bool]]) -> Context:
    """Take parts most relevant first while they fit; cut essential ones rather than drop them. Then,
    while the list of what was cut pushes the total over the budget, drop the least relevant part left."""
    left = context.token_budget
    essential: list[bool] = []
    for part, must in candidates:
        cost = estimate_tokens(part.render()) + 1
        if cost <= left:
            context.parts.append(part)
        elif must and left > 40:
            part = _cut(part, (left - (cost - estimate_tokens(part.text)) - 10) * CHARS_PER_TOKEN)
            context.parts.append(part)
            context.omitted.append(_cut_note(part, candidates))
        else:
            context.omitted.append(f"{part.title} (~{cost} tokens)")
            continue
        essential.append(must)
        left -= estimate_tokens(context.parts[-1].render()) + 1
    while estimate_tokens(context.render()) > context.token_budget and context.parts:
        optional = [i for i, must in enumerate(essential) if not must]
        if optional:
            index = optional[-1]
            dropped = context.parts.pop(index)
            essential.pop(index)
            context.omitted.append(f"{dropped.title} (~{estimate_tokens(dropped.render())} tokens)")
            continue
        overflow = estimate_tokens(context.render()) - context.token_budget
        index = len(context.parts) - 1
        part = context.parts[index]
        keep = len(part.text) - (overflow + 12) * CHARS_PER_TOKEN
        context.omitted = [line for line in context.omitted if not line.startswith(f"{part.title}: cut to")]
        if keep < 200:
            context.parts.pop(index)
            essential.pop(index)
            context.omitted.append(f"{part.title} (~{estimate_tokens(part.render())} tokens)")
        else:
            context.parts[index] = _cut(part, keep)
            context.omitted.append(_cut_note(context.parts[index], candidates))
    context.tokens = estimate_tokens(context.render())
    return context


def _cut(part: ContextPart, keep: int) -> ContextPart:
    keep = max(0, keep)
    if part.kind == "error":  # a traceback ends with the news: keep its tail
        original = part.text.split("\n", 1)[1] if part.truncated else part.text
        text = "[... earlier lines cut ...]\n" + original[len(original) - keep :]
    else:
        original = part.text.rsplit("\n", 1)[0] if part.truncated else part.text
        text = original[:keep] + "\n[... rest cut ...]"
    return part.model_copy(update={"text": text, "truncated": True})


def _cut_note(part: ContextPart, candidates: list[tuple[ContextPart, bool]]) -> str:
    whole = next(c.text for c, _ in candidates if c.title == part.title)
    return f"{part.title}: cut to ~{estimate_tokens(part.text)} of ~{estimate_tokens(whole)} tokens"


def _relative(root: Path, path: Path) -> str:
    full = path if path.is_absolute() else root / path
    try:
        rel = full.resolve().relative_to(root)
    except ValueError:
        raise UsageError(f"{path} is outside the repository {root}") from None
    if not (root / rel).is_file():
        raise UsageError(f"{rel.as_posix()} does not exist in {root}")
    return rel.as_posix()


def _parse(source: str) -> ast.Module | None:
    try:
        return pyparse.parse(source)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _enclosing(tree: ast.Module, line: int) -> Definition | None:
    """The innermost def or class whose lines (decorators included) hold `line`."""
    found: Definition | None = None
    statements: list[ast.AST] = list(tree.body)
    while statements:
        node = statements.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            if first <= line <= (node.end_lineno or node.lineno):
                found = node
                statements = list(node.body)
            continue
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                statements.extend(c for c in children if isinstance(c, ast.AST))
    return found


def _span(node: Definition | None, line: int, count: int) -> tuple[int, int]:
    if node is None:
        return max(1, line - 15), min(count, line + 15)
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return first, node.end_lineno or node.lineno


def _lines(lines: list[str], first: int, last: int) -> str:
    return "\n".join(lines[first - 1 : last])


def _describe(finding: Finding) -> str:
    where = finding.path + (f":{finding.start_line}" if finding.start_line else "")
    return (f"{finding.verifier} {finding.rule_id} ({finding.severity.value}) at {where}: {finding.message}"
            + (f"\nfingerprint: {finding.fingerprint}" if finding.fingerprint else ""))


def _relative_paths(error: str, root: Path) -> str:
    """Absolute paths never leave the process: frames in the repository (here, or in a sandbox's copy)
    become repo-relative, and the repository root becomes ''."""

    def relative(match: re.Match[str]) -> str:
        rel = _repo_path(match.group("path"), root)
        return match.group(0) if rel is None else match.group(0).replace(match.group("path"), rel, 1)

    return _FRAME.sub(relative, error).replace(str(root) + os.sep, "").replace(str(root), ".")


def _frames_text(root: Path, frames: list[Frame]) -> str:
    chunks = []
    for frame in frames:
        lines = (root / frame.path).read_text(encoding="utf-8", errors="replace").splitlines()
        first, last = max(1, frame.line - 3), min(len(lines), frame.line + 3)
        body = "\n".join(f"{'>' if n == frame.line else ' '} {lines[n - 1]}" for n in range(first, last + 1))
        chunks.append(f"{frame.path}:{frame.line} in {frame.function}\n{body}")
    return "\n\n".join(chunks)


def _conventions(root: Path) -> str:
    chunks = []
    for name, sections in _CONVENTION_FILES.items():
        path = root / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        kept = _sections(text, sections) if sections is not None else _meaningful(text.splitlines())
        if kept:
            if len(kept) > _MAX_CONVENTION_LINES:
                kept = [*kept[:_MAX_CONVENTION_LINES], f"[... {len(kept) - _MAX_CONVENTION_LINES} more lines cut ...]"]
            chunks.append(f"{name}:\n" + "\n".join(kept))
    return "\n\n".join(chunks)


def _sections(text: str, wanted: re.Pattern[str]) -> list[str]:
    kept: list[str] = []
    keeping = False
    for line in text.splitlines():
        if line.startswith("["):
            keeping = bool(wanted.match(line))
        if keeping:
            kept.extend(_meaningful([line]))
    return kept


def _meaningful(lines: list[str]) -> list[str]:
    return [line.rstrip() for line in lines if line.strip() and not line.lstrip().startswith(("#", ";"))]


def _python_files(root: Path) -> list[str]:
    found: list[str] = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not any(fnmatch(d, p) for p in _SKIP_PATTERNS))
        for name in sorted(files):
            if name.endswith(".py"):
                found.append(Path(directory, name).relative_to(root).as_posix())
                if len(found) >= _MAX_FILES:
                    return found
    return found


def _is_test(rel: str) -> bool:
    path = PurePosixPath(rel)
    return path.name.startswith("test_") or path.name.endswith("_test.py") or "tests" in path.parts[:-1]


def _module_name(rel: str) -> str:
    parts = list(PurePosixPath(rel).with_suffix("").parts)
    if parts and parts[0] in ("src", "lib"):
        parts = parts[1:]
    if parts and parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) if rel.endswith(".py") else ""


def _importers(root: Path, files: list[str], module: str, rel: str) -> list[str]:
    package, _, last = module.rpartition(".")
    patterns = [rf"^\s*import\s+{re.escape(module)}\b", rf"^\s*from\s+{re.escape(module)}\s+import\b"]
    if package:
        patterns.append(rf"^\s*from\s+{re.escape(package)}\s+import\s+[^#\n]*\b{re.escape(last)}\b")
    wanted = re.compile("|".join(patterns), re.MULTILINE)
    found = []
    for path in files:
        if path == rel:
            continue
        text = (root / path).read_text(encoding="utf-8", errors="replace")
        match = wanted.search(text)
        if match:
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            found.append(f"{path}: {text[start : end if end >= 0 else len(text)].strip()}")
    return found


def _test_functions(root: Path, tests: list[str], symbol: str) -> list[str]:
    word = re.compile(rf"\b{re.escape(symbol)}\b")
    found: list[str] = []
    for path in tests:
        source = (root / path).read_text(encoding="utf-8", errors="replace")
        if not word.search(source):
            continue
        tree = _parse(source)
        for node in ast.walk(tree) if tree is not None else []:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                segment = ast.get_source_segment(source, node) or ""
                if word.search(segment):
                    found.append(f"# {path}:{node.lineno}\n{segment}")
                    if len(found) >= _MAX_TEST_FUNCTIONS:
                        return found
    return found
