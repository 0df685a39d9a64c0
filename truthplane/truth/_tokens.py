"""Reading source for fingerprints: logical lines, normalised tokens, enclosing symbols, neighbouring lines.

Everything here is a pure function of the bytes it is given; `truthplane.truth.fingerprint` decides what to
hash and how findings are paired.
"""

from __future__ import annotations

import ast
import functools
import io
import keyword
import re
import sys
import threading
import tokenize
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from truthplane import pyparse

PYTHON_SUFFIXES = (".py", ".pyi")
# a finding spanning a whole block is identified by its first few (logical) lines, not by the whole body
MAX_CONTEXT_LINES = 4
# in a statement longer than this (a big literal, a long call) only the flagged span is hashed
LONG_STATEMENT_TOKENS = 64

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_WHITESPACE = re.compile(r"\s+")
_DROPPED = {
    tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
    tokenize.ENCODING, tokenize.ENDMARKER,
}
_FSTRING_START = getattr(tokenize, "FSTRING_START", -1)  # Python 3.12+ splits f-strings into tokens
_FSTRING_END = getattr(tokenize, "FSTRING_END", -2)
_CLOSERS = {")", "]", "}"}
# a grouping holding these cannot lose its parentheses: a generator, a yield, a walrus
_NEEDS_PARENS = ("for", "yield", ":=")
_SLOT_OPENERS = {"(", "[", "{", ",", ":", "assert", "return", "if", "elif", "while", "del"}
_SLOT_CLOSERS = {",", ":", ")", "]", "}", "="}
_COMPOUND = {
    "if",
    "elif",
    "else",
    "for",
    "while",
    "with",
    "try",
    "except",
    "finally",
    "def",
    "class",
    "async",
    "match",
    "case",
}


@dataclass(frozen=True)
class Token:
    text: str  # normalised spelling
    start: tuple[int, int]  # (line 1-based, column 0-based), as tokenize reports
    end: tuple[int, int]


@dataclass(frozen=True)
class LogicalLine:
    """One simple statement: its first and last physical lines, and its tokens, normalised when first asked for
    (a gate asks for those of the few statements its findings are on and next to: normalising every statement
    of a changed file was a third of reading it)."""

    first: int
    last: int
    raw: tuple[tokenize.TokenInfo, ...] = field(repr=False, compare=False)
    lines: list[str] = field(repr=False, compare=False)  # the file's, which the tokens' positions are in

    @functools.cached_property
    def tokens(self) -> tuple[Token, ...]:
        return tuple(normalise_tokens(list(self.raw), self.lines))


@dataclass
class SourceFile:
    """One file's text, split the way Python numbers lines, with its logical lines and symbols if Python."""

    lines: list[str]
    logical: list[LogicalLine] = field(default_factory=list)
    line_to_logical: dict[int, int] = field(default_factory=dict)
    in_string: set[int] = field(default_factory=set)  # lines inside (after the first line of) a multi-line string
    symbols: list[str] = field(default_factory=list)  # enclosing qualified name per line (index line - 1)

    def symbol_at(self, line: int) -> str:
        return self.symbols[line - 1] if 0 < line <= len(self.symbols) else ""


def is_python(path: str) -> bool:
    return path.endswith(PYTHON_SUFFIXES)


def decode(content: bytes, python: bool) -> str:
    encoding = "utf-8"
    if python:
        try:
            encoding, _ = tokenize.detect_encoding(io.BytesIO(content).readline)
        except (SyntaxError, LookupError):
            encoding = "utf-8"
    try:
        text = content.decode(encoding, errors="replace")
    except LookupError:
        text = content.decode("utf-8", errors="replace")
    return text.removeprefix("\ufeff")


def load(path: str, content: bytes) -> SourceFile:
    python = is_python(path)
    lines = _LINE_BREAK.split(decode(content, python))
    source = SourceFile(lines=lines)
    if python:
        text = "\n".join(lines)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in the scanned code are not our business
            _read_logical_lines(source, text)
            source.symbols = _symbols(text, len(lines))
    return source


# a parse is shared by the verifiers of a scan that annotate the same content (each reads a gate's changed files
# in turn, often at the same time); only files of ordinary size are kept, so a large generated file is never held,
# and no more of them than SHARED_TOTAL bytes of content
SHARED_BYTES = 256 * 1024
SHARED_TOTAL = 8 * 1024 * 1024

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Shared(Generic[K, V]):
    """Values made once per key and shared by every thread that asks (one makes it, the others wait for it),
    the most recently used kept while their contents' sizes add up to at most `budget` bytes. A change of a
    hundred files is annotated by each verifier in turn: a memo of a fixed number of files would make each parse
    again for every verifier."""

    def __init__(self, make: Callable[[K], V], budget: int = SHARED_TOTAL) -> None:
        self._make = make
        self._budget = budget
        self._lock = threading.Lock()
        self._done: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._making: dict[K, threading.Event] = {}
        self._size = 0

    def get(self, key: K, size: int) -> V:
        while True:
            with self._lock:
                found = self._done.get(key)
                if found is not None:
                    self._done.move_to_end(key)
                    return found[0]
                made_elsewhere = self._making.get(key)
                if made_elsewhere is None:
                    mine = self._making[key] = threading.Event()
                    break
            made_elsewhere.wait()  # then found, or made here if that failed or was not kept
        try:
            value = self._make(key)
            with self._lock:
                if size <= self._budget:
                    self._done[key] = (value, size)
                    self._size += size
                    while self._size > self._budget:
                        _, (_, dropped) = self._done.popitem(last=False)
                        self._size -= dropped
            return value
        finally:
            with self._lock:
                del self._making[key]
            mine.set()


_PARSES: Shared[tuple[str, bytes], SourceFile] = Shared(lambda key: load(*key))


def load_shared(path: str, content: bytes) -> SourceFile:
    """`load`, remembered for files of ordinary size; the result is read-only."""
    return _PARSES.get((path, content), len(content)) if len(content) <= SHARED_BYTES else load(path, content)


# ---- Python: logical lines and their normalised tokens ------------------------------------------


def _read_logical_lines(source: SourceFile, text: str) -> None:
    """Fill in logical lines; on a tokenize error keep those completed before it (the rest falls back)."""
    pending: list[tokenize.TokenInfo] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.start[0] < tok.end[0] and tok.type not in _DROPPED:
                source.in_string.update(range(tok.start[0] + 1, tok.end[0] + 1))
            if tok.type == tokenize.NEWLINE:
                if pending:
                    _close_logical_line(source, pending, source.lines)
                pending = []
            elif tok.type not in _DROPPED:
                pending.append(tok)
    except (tokenize.TokenError, SyntaxError, ValueError):
        return


def _close_logical_line(source: SourceFile, raw: list[tokenize.TokenInfo], lines: list[str]) -> None:
    """One entry per simple statement: `a; b` and `if x: y` are what a formatter puts on separate lines."""
    for statement in _statements(raw):
        first, last = statement[0].start[0], statement[-1].end[0]
        index = len(source.logical)
        source.logical.append(LogicalLine(first, last, tuple(statement), lines))
        for line in range(first, last + 1):
            source.line_to_logical.setdefault(line, index)


def _statements(raw: list[tokenize.TokenInfo]) -> list[list[tokenize.TokenInfo]]:
    """The logical line cut after each top-level `;` and after a compound statement's header colon."""
    if raw[0].string not in _COMPOUND and not any(tok.string == ";" for tok in raw):
        return [raw]  # nearly every line
    parts: list[list[tokenize.TokenInfo]] = []
    current: list[tokenize.TokenInfo] = []
    depth = 0
    lambdas = 0  # a top-level lambda's own colon is not the header's
    for tok in raw:
        text = tok.string if tok.type == tokenize.OP else ""
        depth += (text in ("(", "[", "{")) - (text in _CLOSERS)
        if tok.type == tokenize.NAME and tok.string == "lambda" and depth == 0:
            lambdas += 1
        if depth == 0 and text == ";":
            if current:
                parts.append(current)
            current, lambdas = [], 0
            continue
        current.append(tok)
        if depth == 0 and text == ":" and current[0].string in _COMPOUND:
            if lambdas:
                lambdas -= 1
            else:
                parts.append(current)
                current, lambdas = [], 0
    if current:
        parts.append(current)
    return parts


def normalise_tokens(raw: list[tokenize.TokenInfo], lines: list[str]) -> list[Token]:
    """Spelling-insensitive tokens: canonical strings and numbers, no magic trailing comma, no wrapping parens."""
    merged: list[Token] = []
    i = 0
    while i < len(raw):
        tok = raw[i]
        if tok.type == tokenize.STRING or tok.type == _FSTRING_START:
            parts, start, end = [], tok.start, tok.end
            while i < len(raw) and raw[i].type in (tokenize.STRING, _FSTRING_START):
                j = _string_end(raw, i)
                parts.append(_slice(lines, raw[i].start, raw[j].end))
                end = raw[j].end
                i = j + 1
            merged.append(Token(_canonical_string(parts), start, end))
            continue
        spelling = _canonical_number(tok.string) if tok.type == tokenize.NUMBER else tok.string
        merged.append(Token(spelling, tok.start, tok.end))
        i += 1
    without_commas = [
        t for k, t in enumerate(merged)
        if not (t.text == "," and k + 1 < len(merged) and merged[k + 1].text in _CLOSERS)
    ]
    return _drop_wrapping_parens(without_commas)


def _string_end(raw: list[tokenize.TokenInfo], i: int) -> int:
    if raw[i].type != _FSTRING_START:
        return i
    depth = 0
    for j in range(i, len(raw)):
        depth += (raw[j].type == _FSTRING_START) - (raw[j].type == _FSTRING_END)
        if depth == 0:
            return j
    return len(raw) - 1


def _slice(lines: list[str], start: tuple[int, int], end: tuple[int, int]) -> str:
    if start[0] == end[0]:
        return lines[start[0] - 1][start[1] : end[1]]
    chunk = lines[start[0] - 1 : end[0]]
    return "\n".join([chunk[0][start[1] :], *chunk[1:-1], chunk[-1][: end[1]]])


def _canonical_string(parts: list[str]) -> str:
    """Adjacent literals as one value: quote style, prefixes' case and implicit concatenation do not matter."""
    plain = [_plain_value(part) for part in parts]
    if all(value is not None for value in plain):
        return repr("".join(value for value in plain if value is not None))
    source = " ".join(parts)
    return _compiled_string(source) if len(source) <= _REMEMBERED_CHARS else _compile_string(source)


# a file's literals that need compiling (escapes, prefixes, f-strings) repeat ('\n', f"{name}"): each is compiled
# once per process, up to this size (a long docstring is not kept)
_REMEMBERED_CHARS = 200


def _compile_string(source: str) -> str:
    try:
        node = pyparse.parse("(" + source + "\n)", mode="eval").body
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return source
    if isinstance(node, ast.Constant):
        return repr(node.value)
    return ast.dump(node)  # an f-string: its structure, whatever its quoting


_compiled_string = functools.lru_cache(maxsize=4096)(_compile_string)


def _plain_value(literal: str) -> str | None:
    """The value of a prefix-free literal without escapes, read without compiling (most strings are)."""
    if literal[:1] not in ("'", '"') or "\\" in literal:
        return None
    quote = literal[:3] if literal[:3] in ('"""', "'''") else literal[0]
    if len(literal) < 2 * len(quote) or not literal.endswith(quote):
        return None
    return literal[len(quote) : -len(quote)]


def _canonical_number(spelling: str) -> str:
    if spelling.isdigit() and spelling.isascii() and len(spelling) < 19 and (spelling[0] != "0" or spelling == "0"):
        return spelling  # a plain decimal integer (most numbers) is its own canonical spelling
    return _compiled_number(spelling)


@functools.lru_cache(maxsize=4096)
def _compiled_number(spelling: str) -> str:
    try:
        return repr(pyparse.literal_eval(spelling))
    except (SyntaxError, ValueError):
        return spelling


def _drop_wrapping_parens(tokens: list[Token]) -> list[Token]:
    """Drop grouping parentheses a formatter may add or take away: around the rest of a statement, or
    around a whole operand of one (`assert (a and b), msg`). Dropping inner ones never changes the verdict
    on outer ones already passed, so one pass from the left, staying in place after a drop, finds them all."""
    i = 0
    while i < len(tokens):
        close = _redundant_group(tokens, i)
        if close is None:
            i += 1
        else:
            tokens = tokens[:i] + tokens[i + 1 : close] + tokens[close + 1 :]
    return tokens


def _redundant_group(tokens: list[Token], i: int) -> int | None:
    """The index of the `)` closing a redundant grouping that opens at i, else None."""
    if tokens[i].text != "(" or _is_call_position(tokens, i):
        return None
    close = _matching_close(tokens, i)
    if close is None or close == i + 1:
        return None
    wraps_the_rest = close + 1 == len(tokens) or (close + 2 == len(tokens) and tokens[-1].text == ":")
    if not _fills_a_slot(tokens, i, close, wraps_the_rest):
        return None
    inside = _top_level(tokens, i, close)
    # around the rest of a statement only a generator keeps its parentheses: `x = (yield)` is `x = yield`
    if "for" in inside or (not wraps_the_rest and not inside.isdisjoint(_NEEDS_PARENS)):
        return None
    # `x = (a, b)` is `x = a, b`, but `f, (a, b)` is not `f, a, b`
    if "," in inside and not (wraps_the_rest and i > 0 and _takes_bare_tuple(tokens[i - 1].text)):
        return None
    return close


def _is_call_position(tokens: list[Token], i: int) -> bool:
    if i == 0:
        return False
    before = tokens[i - 1].text
    if before in _CLOSERS:
        return True
    return before.isidentifier() and not keyword.iskeyword(before)


def _matching_close(tokens: list[Token], i: int) -> int | None:
    depth = 0
    for j in range(i, len(tokens)):
        text = tokens[j].text
        depth += (text in ("(", "[", "{")) - (text in _CLOSERS)
        if depth == 0:
            return j if text == ")" else None
    return None


def _top_level(tokens: list[Token], open_index: int, close_index: int) -> set[str]:
    """The spellings found directly inside the brackets, not nested deeper."""
    found = set()
    depth = 0
    for tok in tokens[open_index + 1 : close_index]:
        depth += (tok.text in ("(", "[", "{")) - (tok.text in _CLOSERS)
        if depth == 0:
            found.add(tok.text)
    return found


def _fills_a_slot(tokens: list[Token], open_index: int, close_index: int, wraps_the_rest: bool) -> bool:
    """Parentheses that hold a whole operand of a statement or an item of a list (`assert (a and b), msg`,
    `f(x=(a or b))`, `{k: (a + b)}`): without them the expression means the same. `not (a or b)` is no such."""
    before = tokens[open_index - 1].text if open_index else ""
    opens = not before or before in _SLOT_OPENERS or _is_assignment(before)
    if wraps_the_rest:
        return opens or before in ("yield", "in")  # `for x in (a or b):`
    return opens and tokens[close_index + 1].text in _SLOT_CLOSERS


def _is_assignment(text: str) -> bool:
    return text.endswith("=") and text not in ("==", "!=", "<=", ">=")


def _takes_bare_tuple(text: str) -> bool:
    """After these a parenthesised tuple means the same without its parentheses."""
    return _is_assignment(text) or text in ("return", "yield", "in", "del")


# ---- Python: enclosing symbols ------------------------------------------------------------------


def _symbols(text: str, line_count: int) -> list[str]:
    """The qualified name of the innermost def/class around each line ('' at module level)."""
    names = [""] * line_count
    try:
        tree = pyparse.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return names
    spans: list[tuple[int, int, str]] = []
    # definitions are statements: walking statement lists (not expressions) finds them all
    pending: list[tuple[list[ast.AST], str]] = [(list(tree.body), "")]
    while pending:
        statements, prefix = pending.pop()
        for node in statements:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}.{node.name}" if prefix else node.name
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                spans.append((first, node.end_lineno or node.lineno, name))
                pending.append((list(node.body), name))
                continue
            for field_name in ("body", "orelse", "finalbody", "handlers", "cases"):
                children = getattr(node, field_name, None)
                if isinstance(children, list):
                    pending.append((children, prefix))
    for first, last, name in sorted(spans, key=lambda span: (span[0], -span[1])):
        names[first - 1 : last] = [name] * (min(last, line_count) - first + 1)
    return names


# ---- contexts ----------------------------------------------------------------------------------


def python_context(
    source: SourceFile, start: int, end: int, start_column: int | None, end_column: int | None
) -> str | None:
    """Normalised tokens of the logical line(s) covering start..end; None when the lines are not code."""
    if start in source.in_string or start not in source.line_to_logical:
        return None
    index = source.line_to_logical[start]
    span_start = (start, start_column - 1 if start_column else 0)
    span_end = (end, end_column - 1 if end_column and end_column > 1 else sys.maxsize)
    chosen: list[LogicalLine] = []
    for logical in source.logical[index:]:
        if logical.first > end or len(chosen) == MAX_CONTEXT_LINES:
            break
        # of statements sharing a line, those the finding's columns cover (all of them without columns)
        if not logical.tokens or (logical.tokens[-1].end > span_start and logical.tokens[0].start < span_end):
            chosen.append(logical)
    chosen = chosen or [source.logical[index]]
    tokens = [tok for logical in chosen for tok in logical.tokens]
    if len(tokens) > LONG_STATEMENT_TOKENS:
        tokens = _flagged_span(tokens, start, end, start_column, end_column) or tokens
    return "\x1f".join(tok.text for tok in tokens)


def _flagged_span(
    tokens: list[Token], start: int, end: int, start_column: int | None, end_column: int | None
) -> list[Token]:
    """The tokens a finding's 1-based, end-exclusive columns cover (or its whole lines without columns)."""
    if start_column is None:
        return [tok for tok in tokens if start <= tok.start[0] <= end]
    span_start = (start, start_column - 1)
    span_end = (end, end_column - 1) if end_column is not None and end_column > 0 else (end, sys.maxsize)
    return [tok for tok in tokens if tok.start < span_end and tok.end > span_start]


def text_context(lines: list[str], start: int, end: int) -> str:
    """The flagged physical lines without any whitespace; if blank, the nearest non-blank line below."""
    last = min(end, start + MAX_CONTEXT_LINES - 1, len(lines))
    squeezed = "".join(_WHITESPACE.sub("", line) for line in lines[start - 1 : last])
    if squeezed:
        return squeezed
    for line in lines[last:]:
        squeezed = _WHITESPACE.sub("", line)
        if squeezed:
            return squeezed
    return ""


def neighbours(source: SourceFile, python: bool, start: int, end: int) -> tuple[str, str]:
    """The code just above and just below the flagged lines (normalised like a context): what an edit of
    the flagged line itself leaves as it was."""
    if python and start in source.line_to_logical and start not in source.in_string:
        logical = source.logical
        index = source.line_to_logical[start]
        above = index - 1
        while above >= 0 and logical[above].last >= start:
            above -= 1
        below = index
        while below < len(logical) and logical[below].first <= end:
            below += 1
        return _spelled(logical, above), _spelled(logical, below)
    lines = source.lines
    squeezed_above = (_WHITESPACE.sub("", lines[i]) for i in range(min(start, len(lines) + 1) - 2, -1, -1))
    squeezed_below = (_WHITESPACE.sub("", lines[i]) for i in range(end, len(lines)))
    return next((s for s in squeezed_above if s), ""), next((s for s in squeezed_below if s), "")


def _spelled(logical: list[LogicalLine], index: int) -> str:
    return "\x1f".join(tok.text for tok in logical[index].tokens) if 0 <= index < len(logical) else ""
