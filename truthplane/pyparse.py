"""`ast.parse` that is safe to call from several threads at once.

CPython before 3.13 keeps the recursion counter of the AST converter per interpreter, not per thread: when a
garbage collection runs a finalizer that switches threads in the middle of a conversion, two threads' counts
mix and `ast.parse` fails with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905).
A gate annotates files and the fix loop checks candidates on several threads, so every parse takes one lock.
"""

from __future__ import annotations

import ast
import threading
from typing import Any

_LOCK = threading.Lock()


def parse(source: str | bytes, filename: str = "<unknown>", mode: str = "exec", **kwargs: Any) -> Any:
    with _LOCK:
        return ast.parse(source, filename=filename, mode=mode, **kwargs)
