"""Do findings keep their identity when real code moves? truthplane against a GitHub-style line hash.

Takes real Python modules (the standard library's own sources, a seeded sample), puts one synthetic
finding on every call of a few common functions (so identical lines and duplicates occur), applies
each mutation to every module and diffs the findings of the two states:

  insert-top      comment and blank lines inserted at the top of the module
  insert-code     a new function inserted above the first top-level definition
  delete-above    import statements above the findings deleted
  reindent        every top-level definition holding findings wrapped in `if True:`
  rewrap          flagged calls re-wrapped like a formatter: break after '(' and before ')',
                  magic trailing comma, single quotes turned into double quotes
  swap-functions  two adjacent top-level definitions swapped
  parenthesise    like black on long lines: assigned / returned values wrapped in parentheses over lines
  into-class      the last top-level function holding findings moved into a new class at the end
  rename-git      the file renamed, the rename given (as git's rename detection reports it)
  rename-nogit    the file renamed, nothing said about it
  combined        insert-top, reindent, rewrap and parenthesise, then rename-nogit, all at once
  edit            up to 3 flagged calls really edited (an argument added): these SHOULD be reported changed
                  (new, or updated: still flagged on the edited line)
  move-function   a top-level function holding findings moved to the end of another module
  split-module    the module split in two new modules at a top-level definition
  move-class      a class holding findings moved into a new module, the old one staying
  copy-function   a function holding findings copied into another module: the copies SHOULD be new
  black-N, ruff-format-N   the module run through black / ruff format at line length N (50, 60, 88, 120);
                  black-60-no-magic-comma without the magic trailing comma, ruff-single-quotes with
                  quote-style 'single' (the other formatters turn quotes double)

false-new / false-fixed: reported though the flagged code did not change; missed-new: an edited
or copied finding reported as unchanged. The GitHub-style matcher keys on rule + path + primaryLocationLineHash
(with its occurrence), computed by truthplane.truth.fingerprint.github_line_hashes, which reproduces
codeql-action's fingerprints.ts. Target for truthplane: zero false-new and zero false-fixed.

    pip install -e '.[bench]'   # black, for the formatter kinds; ruff comes with the test extra
    python bench/fingerprint_stability.py [--modules 36] [--seed 20261123]
"""

from __future__ import annotations

import argparse
import ast
import io
import itertools
import random
import subprocess
import sys
import sysconfig
import time
import tokenize
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from truthplane.truth.fingerprint import GITHUB_KEY, annotate, match
from truthplane.models import Finding, Severity

CALLEES = {"eval", "exec", "open", "print", "len", "getattr", "isinstance", "str", "repr", "append"}
EDIT_MARK = "__bench_edit__"


@dataclass
class Mutation:
    text: str
    path: str
    renames: dict[str, str] | None = None
    files_known: bool = False
    edited_before: set[tuple[int, int]] = field(default_factory=set)
    other_before: str | None = None  # a second module of the before state (OTHER_PATH), for moves between files
    others_after: dict[str, str] = field(default_factory=dict)  # more modules of the after state
    copied: int = 0  # findings a copy added: these SHOULD be new


@dataclass
class Tally:
    findings: int = 0
    modules: int = 0
    skipped: int = 0
    counts: Counter[str] = field(default_factory=Counter)


# ---- the stand-in analyser ---------------------------------------------------------------------


def char_column(line: str, byte_offset: int) -> int:
    return len(line.encode("utf-8")[:byte_offset].decode("utf-8", errors="replace"))


def flagged_calls(tree: ast.AST) -> list[tuple[ast.Call, str]]:
    found = []
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.JoinedStr):
            continue  # calls inside f-strings: left alone, their positions are not reliable on every Python
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in CALLEES:
                found.append((node, name))
        pending.extend(ast.iter_child_nodes(node))
    return sorted(found, key=lambda item: (item[0].lineno, item[0].col_offset))


def analyse(path: str, text: str) -> list[Finding]:
    lines = text.split("\n")
    findings = []
    for call, name in flagged_calls(ast.parse(text)):
        end_line = call.end_lineno or call.lineno
        findings.append(Finding(
            verifier="bench", rule_id=f"call-{name}", severity=Severity.LOW, message=f"call to {name}()",
            path=path, start_line=call.lineno, end_line=end_line,
            start_column=char_column(lines[call.lineno - 1], call.col_offset) + 1,
            end_column=char_column(lines[end_line - 1], call.end_col_offset or 0) + 1,
        ))
    return findings


# ---- mutations ---------------------------------------------------------------------------------


def offsets(text: str) -> list[int]:
    starts = [0]
    for line in text.split("\n")[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    return starts


def position(text: str, starts: list[int], line: int, byte_col: int) -> int:
    return starts[line - 1] + char_column(text.split("\n")[line - 1], byte_col)


def apply_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def string_interior_lines(text: str) -> set[int]:
    interior: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.STRING and tok.start[0] < tok.end[0]:
            interior.update(range(tok.start[0] + 1, tok.end[0] + 1))
    return interior


def top_level_blocks(tree: ast.Module) -> list[tuple[int, int]]:
    blocks = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            blocks.append((first, node.end_lineno or node.lineno))
    return blocks


def holds_findings(block: tuple[int, int], lines_with_findings: set[int]) -> bool:
    return any(block[0] <= line <= block[1] for line in lines_with_findings)


def insert_top(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    extra = [rng.choice(["", "# inserted by the benchmark", "#: another comment"]) for _ in range(rng.randint(3, 15))]
    return Mutation("\n".join(extra) + "\n" + text, path)


def insert_code(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    blocks = top_level_blocks(tree)
    if not blocks:
        return None
    lines = text.split("\n")
    at = blocks[0][0] - 1
    helper = ["def _bench_inserted(value):", "    return value * 2", "", ""]
    return Mutation("\n".join(lines[:at] + helper + lines[at:]), path)


def delete_above(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    first_finding = min((c.lineno for c, _ in flagged_calls(tree)), default=0)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))
               and (n.end_lineno or n.lineno) < first_finding
               and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
    if not imports:
        return None
    doomed = rng.sample(imports, min(len(imports), rng.randint(1, 3)))
    gone = {line for n in doomed for line in range(n.lineno, (n.end_lineno or n.lineno) + 1)}
    return Mutation("\n".join(line for i, line in enumerate(text.split("\n"), 1) if i not in gone), path)


def reindent(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    flagged = {c.lineno for c, _ in flagged_calls(tree)}
    blocks = [b for b in top_level_blocks(tree) if holds_findings(b, flagged)]
    if not blocks:
        return None
    interior = string_interior_lines(text)
    lines = text.split("\n")
    out: list[str] = []
    starts = {first for first, _ in blocks}
    inside = {line for first, last in blocks for line in range(first, last + 1)}
    for number, line in enumerate(lines, 1):
        if number in starts:
            out.append("if True:")
        indent = number in inside and number not in interior and line.strip()
        out.append("    " + line if indent else line)
    return Mutation("\n".join(out), path)


def rewrap(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    starts = offsets(text)
    lines = text.split("\n")
    edits: list[tuple[int, int, str]] = []
    for call, _ in flagged_calls(tree):
        if call.lineno != call.end_lineno or not (call.args or call.keywords):
            continue
        indent = " " * (len(lines[call.lineno - 1]) - len(lines[call.lineno - 1].lstrip()) + 4)
        func_end = position(text, starts, call.func.end_lineno or call.lineno, call.func.end_col_offset or 0)
        opening = text.index("(", func_end)
        closing = position(text, starts, call.end_lineno or call.lineno, call.end_col_offset or 0) - 1
        lone_generator = len(call.args) == 1 and not call.keywords and isinstance(call.args[0], ast.GeneratorExp)
        comma = "" if lone_generator or text[opening + 1 : closing].rstrip().endswith(",") else ","
        edits += [(opening + 1, opening + 1, "\n" + indent), (closing, closing, comma + "\n" + indent[:-4])]
        for arg in call.args:
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.lineno == arg.end_lineno:
                begin = position(text, starts, arg.lineno, arg.col_offset)
                end = position(text, starts, arg.lineno, arg.end_col_offset or 0)
                literal = text[begin:end]
                if literal[:1] == "'" and literal[-1:] == "'" and not any(c in literal[1:-1] for c in "'\"\\"):
                    edits.append((begin, end, '"' + literal[1:-1] + '"'))
    if not edits:
        return None
    return Mutation(apply_edits(text, edits), path)


def swap_functions(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    flagged = {c.lineno for c, _ in flagged_calls(tree)}
    blocks = top_level_blocks(tree)
    pairs = [(a, b) for a, b in itertools.pairwise(blocks) if holds_findings(a, flagged) or holds_findings(b, flagged)]
    if not pairs:
        return None
    (a1, a2), (b1, b2) = rng.choice(pairs)
    lines = text.split("\n")
    swapped = lines[: a1 - 1] + lines[b1 - 1 : b2] + lines[a2 : b1 - 1] + lines[a1 - 1 : a2] + lines[b2:]
    return Mutation("\n".join(swapped), path)


def parenthesise(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    """Like black on a long line: the value of an assignment or return wrapped in parentheses over lines."""
    flagged = {id(c) for c, _ in flagged_calls(tree)}
    starts, lines, edits = offsets(text), text.split("\n"), []
    for node in ast.walk(tree):
        value = getattr(node, "value", None) if isinstance(node, (ast.Assign, ast.AugAssign, ast.Return)) else None
        if value is None or node.lineno != node.end_lineno or not any(id(n) in flagged for n in ast.walk(value)):
            continue
        begin = position(text, starts, value.lineno, value.col_offset)
        end = position(text, starts, value.lineno, value.end_col_offset or 0)
        source = text[begin:end]
        indent = " " * (len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip()))
        comma = "," if isinstance(value, ast.Tuple) and source[:1] != "(" and source[-1:] != "," else ""
        edits.append((begin, end, f"(\n{indent}    {source}{comma}\n{indent})"))
    return Mutation(apply_edits(text, edits), path) if edits else None


def into_class(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    """The last top-level function holding findings moved into a new class at the end of the module."""
    flagged = {c.lineno for c, _ in flagged_calls(tree)}
    functions = [(min([n.lineno, *(d.lineno for d in n.decorator_list)]), n.end_lineno or n.lineno) for n in tree.body
                 if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    held = [block for block in functions if holds_findings(block, flagged)]
    if not held:
        return None
    (first, last), interior, lines = held[-1], string_interior_lines(text), text.split("\n")
    moved = [line if n in interior or not line.strip() else "    " + line
             for n, line in enumerate(lines[first - 1 : last], first)]
    rest = lines[: first - 1] + lines[last:]
    return Mutation("\n".join([*rest, "", "", "class _BenchMoved:", *moved, ""]), path)


def combined(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    """Lines inserted, definitions re-indented, calls re-wrapped, then the file moved without a word."""
    for step in (insert_top, reindent, rewrap, parenthesise):
        changed = step(path, text, ast.parse(text), rng)
        text = changed.text if changed else text
    return Mutation(text, renamed_path(path), files_known=True)


def renamed_path(path: str) -> str:
    return "renamed/" + path.replace(".py", "_moved.py")


def rename_git(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    return Mutation(text, renamed_path(path), renames={path: renamed_path(path)}, files_known=True)


def rename_nogit(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    return Mutation(text, renamed_path(path), files_known=True)


def edit(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    """Add an argument to up to 3 flagged calls that are alone in their statement."""
    calls = [c for c, _ in flagged_calls(tree)]
    owner: dict[int, int] = {}
    for statement in ast.walk(tree):
        if isinstance(statement, ast.stmt):
            for node in ast.walk(statement):
                owner[id(node)] = id(statement)  # ast.walk goes outer to inner: the innermost statement wins
    per_statement = Counter(owner[id(c)] for c in calls)
    alone = [c for c in calls if per_statement[owner[id(c)]] == 1]
    if not alone:
        return None
    targets = rng.sample(alone, min(3, len(alone)))
    starts = offsets(text)
    edits = []
    for call in targets:
        func_end = position(text, starts, call.func.end_lineno or call.lineno, call.func.end_col_offset or 0)
        opening = text.index("(", func_end)
        edits.append((opening + 1, opening + 1, f"{EDIT_MARK}, "))
    lines = text.split("\n")
    before = {(c.lineno, char_column(lines[c.lineno - 1], c.col_offset) + 1) for c in targets}
    return Mutation(apply_edits(text, edits), path, edited_before=before)


# ---- moves between files ----------------------------------------------------------------------

OTHER_PATH = "lib/_bench_other.py"
OTHER_TEXT = "import os\n\n\ndef _bench_other(path):\n    return os.path.join(path, 'x')\n"


def definitions(tree: ast.Module, kinds: tuple[type, ...]) -> list[tuple[int, int]]:
    return [(min([n.lineno, *(d.lineno for d in n.decorator_list)]), n.end_lineno or n.lineno)
            for n in tree.body if isinstance(n, kinds)]


def cut(text: str, block: tuple[int, int]) -> tuple[str, str]:
    """(the text without the block, the block's own lines)."""
    lines = text.split("\n")
    first, last = block
    return "\n".join(lines[: first - 1] + lines[last:]), "\n".join(lines[first - 1 : last])


def flagged_in(tree: ast.Module) -> set[int]:
    return {c.lineno for c, _ in flagged_calls(tree)}


def move_function(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    """A top-level function holding findings moved to the end of another module that exists on both sides."""
    held = [
        b for b in definitions(tree, (ast.FunctionDef, ast.AsyncFunctionDef)) if holds_findings(b, flagged_in(tree))
    ]
    if not held:
        return None
    rest, block = cut(text, rng.choice(held))
    return Mutation(rest, path, files_known=True, other_before=OTHER_TEXT,
                    others_after={OTHER_PATH: OTHER_TEXT + "\n\n" + block + "\n"})


def move_class(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    """A class holding findings moved into a new module, the old one staying."""
    held = [b for b in definitions(tree, (ast.ClassDef,)) if holds_findings(b, flagged_in(tree))]
    if not held:
        return None
    rest, block = cut(text, rng.choice(held))
    return Mutation(rest, path, files_known=True, others_after={"lib/_bench_moved_class.py": block + "\n"})


def split_module(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    """The module split in two new ones at a top-level definition: its first half and its second half."""
    blocks = top_level_blocks(tree)
    if len(blocks) < 2:
        return None
    at = blocks[len(blocks) // 2][0]
    lines = text.split("\n")
    first, second = "\n".join(lines[: at - 1]), "\n".join(lines[at - 1 :])
    stem = path.removesuffix(".py")
    return Mutation(first, f"{stem}_part1.py", files_known=True, others_after={f"{stem}_part2.py": second})


def copy_function(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
    """A top-level function holding findings copied into another module, the original staying: the copy is new."""
    held = [
        b for b in definitions(tree, (ast.FunctionDef, ast.AsyncFunctionDef)) if holds_findings(b, flagged_in(tree))
    ]
    if not held:
        return None
    block = rng.choice(held)
    _, lines = cut(text, block)
    copied = sum(block[0] <= line <= block[1] for line in [c.lineno for c, _ in flagged_calls(tree)])
    return Mutation(text, path, files_known=True, other_before=OTHER_TEXT,
                    others_after={OTHER_PATH: OTHER_TEXT + "\n\n" + lines + "\n"}, copied=copied)


# ---- formatters --------------------------------------------------------------------------------


Mutate = Callable[[str, str, ast.Module, random.Random], "Mutation | None"]


def black_format(length: int, magic_trailing_comma: bool = True) -> Mutate:
    def run_black(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
        import black  # the bench extra: pip install black

        mode = black.Mode(line_length=length, magic_trailing_comma=magic_trailing_comma)
        try:
            result = black.format_str(text, mode=mode)
        except black.InvalidInput:
            return None
        return Mutation(result, path) if result != text else None

    return run_black


def ruff_format(length: int, *extra: str) -> Mutate:
    def run_ruff(path: str, text: str, tree: ast.Module, rng: random.Random) -> Mutation | None:
        command = ["ruff", "format", "--isolated", "--line-length", str(length), *extra, "--stdin-filename", path, "-"]
        proc = subprocess.run(command, input=text, capture_output=True, text=True, timeout=120)
        return Mutation(proc.stdout, path) if proc.returncode == 0 and proc.stdout != text else None

    return run_ruff


FORMATTERS = {
    **{f"black-{n}": black_format(n) for n in (50, 60, 88, 120)},
    "black-60-no-magic-comma": black_format(60, magic_trailing_comma=False),
    **{f"ruff-format-{n}": ruff_format(n) for n in (50, 60, 88, 120)},
    "ruff-single-quotes": ruff_format(88, "--config", "format.quote-style='single'"),
}

MUTATIONS = {
    "insert-top": insert_top, "insert-code": insert_code, "delete-above": delete_above,
    "reindent": reindent, "rewrap": rewrap, "swap-functions": swap_functions,
    "parenthesise": parenthesise, "into-class": into_class, "rename-git": rename_git,
    "rename-nogit": rename_nogit, "combined": combined, "edit": edit,
    "move-function": move_function, "split-module": split_module, "move-class": move_class,
    "copy-function": copy_function, **FORMATTERS,
}


# ---- scoring -----------------------------------------------------------------------------------


def github_style(before: list[Finding], after: list[Finding]) -> tuple[list[Finding], list[Finding]]:
    """(new, fixed) by rule + path + primaryLocationLineHash:N, counted per key."""
    def key(f: Finding) -> tuple[str, str, str]:
        return (f.rule_id, f.path, f.partial_fingerprints.get(GITHUB_KEY, ""))

    def surplus(mine: list[Finding], theirs: list[Finding]) -> list[Finding]:
        extra = Counter(map(key, mine)) - Counter(map(key, theirs))
        chosen = []
        for finding in mine:
            if extra[key(finding)] > 0:
                extra[key(finding)] -= 1
                chosen.append(finding)
        return chosen

    return surplus(after, before), surplus(before, after)


def is_edited(finding: Finding, lines_after: list[str]) -> bool:
    """Whether the flagged call's own text carries the benchmark's edit."""
    start, end = (finding.start_line or 1), (finding.end_line or finding.start_line or 1)
    span = [lines_after[start - 1][(finding.start_column or 1) - 1 :], *lines_after[start:end]]
    if start == end:
        span = [lines_after[start - 1][(finding.start_column or 1) - 1 : (finding.end_column or 1) - 1]]
    return any(EDIT_MARK in piece for piece in span)


def score(counts: Counter[str], side: str, new: list[Finding], fixed: list[Finding],
          edited_before: set[tuple[int, int]], edited_after: int, texts_after: dict[str, str], copied: int) -> None:
    """A copy's findings are expected new: as many new findings in the copy's module as were copied."""
    true_new = sum(is_edited(f, texts_after[f.path].split("\n")) for f in new)
    in_copy = min(copied, sum(f.path == OTHER_PATH for f in new)) if copied else 0
    counts[f"{side} false-new"] += len(new) - true_new - in_copy
    counts[f"{side} false-fixed"] += sum((f.start_line, f.start_column) not in edited_before for f in fixed)
    counts[f"{side} missed-new"] += edited_after - true_new + copied - in_copy


def run_module(path: str, text: str, seed: int, tallies: dict[str, Tally]) -> int:
    tree = ast.parse(text)
    before_findings = analyse(path, text)
    before = annotate(before_findings, {path: text.encode()}.get)
    for name, mutate in MUTATIONS.items():
        tally = tallies.setdefault(name, Tally())
        mutation = mutate(path, text, tree, random.Random(f"{seed}:{path}:{name}"))
        if mutation is None:
            continue
        after_texts = {mutation.path: mutation.text, **mutation.others_after}
        try:
            after_findings = [f for rel, body in after_texts.items() for f in analyse(rel, body)]
        except SyntaxError:
            tally.skipped += 1
            continue
        if len(after_findings) != len(before_findings) + mutation.copied:
            sys.exit(f"bench: {name} changed the number of findings in {path}: the mutation is broken")
        after_sources = {rel: body.encode() for rel, body in after_texts.items()}
        after = annotate(after_findings, after_sources.get)
        before_paths = {path} | ({OTHER_PATH} if mutation.other_before is not None else set())
        files = {"before_files": before_paths, "after_files": set(after_texts)} if mutation.files_known else {}
        # what a gate knows: the files whose content did not change (none here, but the other module's may)
        same = [OTHER_PATH] if after_texts.get(OTHER_PATH) == mutation.other_before else []
        diff = match(before, after, mutation.renames, same_files=same, **files)
        edited = sum(is_edited(f, after_texts[f.path].split("\n")) for f in after_findings)
        tally.modules += 1
        tally.findings += len(before)
        # an edited call is still reported on its edited line: updated, which tells the change apart as new does
        score(tally.counts, "truthplane", diff.new + diff.updated, diff.fixed, mutation.edited_before, edited,
              after_texts, mutation.copied)
        tally.counts["truthplane updated"] += len(diff.updated)
        gh_new, gh_fixed = github_style(before, after)
        score(tally.counts, "github", gh_new, gh_fixed, mutation.edited_before, edited, after_texts, mutation.copied)
        tally.counts["edited"] += edited + mutation.copied
    return len(before)


def choose_modules(count: int, seed: int) -> list[Path]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    candidates = []
    for file in sorted(stdlib.glob("*.py")):
        size = file.stat().st_size
        if 4_000 <= size <= 80_000:
            candidates.append(file)
    return sorted(random.Random(seed).sample(candidates, min(count, len(candidates))))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=36)
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()
    started = time.perf_counter()
    tallies: dict[str, Tally] = {}
    modules = choose_modules(args.modules, args.seed)
    per_state = sum(run_module(f"lib/{file.name}", file.read_text(encoding="utf-8").replace("\r\n", "\n"),
                               args.seed, tallies) for file in modules)
    total = Tally()
    for tally in tallies.values():
        total.findings += tally.findings
        total.counts.update(tally.counts)
    print(f"fingerprint stability: {len(modules)} stdlib modules (Python {sys.version.split()[0]}, seed {args.seed}), "
          f"{per_state} findings per state")
    header = f"{'mutation':<23} {'modules':>7} {'findings':>8} {'edited':>6} |" \
             f" {'truthplane: false-new':>21} {'false-fixed':>11} {'missed-new':>10} {'updated':>7} |" \
             f" {'github-style: false-new':>23} {'false-fixed':>11} {'missed-new':>10}"
    print(header)
    print("-" * len(header))
    for name, tally in [*tallies.items(), ("overall", total)]:
        c = tally.counts
        modules_cell = str(tally.modules) if name != "overall" else ""
        print(f"{name:<23} {modules_cell:>7} {tally.findings:>8} {c['edited']:>6} |"
              f" {c['truthplane false-new']:>21} {c['truthplane false-fixed']:>11} {c['truthplane missed-new']:>10}"
              f" {c['truthplane updated']:>7} |"
              f" {c['github false-new']:>23} {c['github false-fixed']:>11} {c['github missed-new']:>10}")
    skipped = sum(t.skipped for t in tallies.values())
    if skipped:
        print(f"({skipped} mutated modules did not compile and were left out)")
    ok = total.counts["truthplane false-new"] == 0 and total.counts["truthplane false-fixed"] == 0
    print(
        f"target: truthplane 0 false-new and 0 false-fixed -> {'PASS' if ok else 'FAIL'}"
        f" (github-style: {total.counts['github false-new']} false-new, {total.counts['github false-fixed']} "
        f"false-fixed;"
        f" truthplane missed-new {total.counts['truthplane missed-new']} of {total.counts['edited']} edits)"
    )
    print(f"took {time.perf_counter() - started:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
