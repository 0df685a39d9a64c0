"""`ast.parse` that is safe to call from several threads at once.

CPython before 3.13 keeps the recursion counter of the AST converter per interpreter, not per thread: when a
garbage collection runs a finalizer that switches threads in the middle of a conversion, two threads' counts
mix and `ast.parse` fails with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905).
A gate annotates files and the fix loop checks candidates on several threads, so every parse of truthplane's
takes one lock (`ast.literal_eval` of a string parses too: `literal_eval` here is the same under the lock).
Code of other projects that parses on its own (pydantic reads builtin signatures with `ast.parse`) cannot take
the lock: a parse that one of those spoiled is made again.
"""

from __future__ import annotations

import ast
import threading
from typing import Any

_LOCK = threading.Lock()
_ATTEMPTS = 5
_MIXED = "recursion depth mismatch"


def parse(source: str | bytes, filename: str = "<unknown>", mode: str = "exec", **kwargs: Any) -> Any:
    for attempt in range(_ATTEMPTS):
        with _LOCK:
            try:
                return ast.parse(source, filename=filename, mode=mode, **kwargs)
            except SystemError as exc:
                # another thread's converter ran in the middle of this one's: nothing was wrong with the source
                if _MIXED not in str(exc) or attempt == _ATTEMPTS - 1:
                    raise
    raise AssertionError("unreachable")


def literal_eval(source: str) -> Any:
    """`ast.literal_eval` of a string, parsed under the lock."""
    return ast.literal_eval(parse(source.lstrip(" \t"), mode="eval"))
