"""Parsing Python on several threads at once, as a gate's verifier threads and the fix loop's candidates do."""

from __future__ import annotations

import sys
import threading

from truthplane.truth import _tokens as _source
from truthplane.executors.preflight import preflight_source

SOURCE = "\n".join(
    f"def f{i}(a):\n    if a:\n        return [{{'k': (a, b)}} for b in range(a) if b]\n    return None"
    for i in range(300)
) + "\n"


class _Finalized:
    """Garbage with a finalizer: a collection in the middle of a parse runs Python code and can switch threads."""

    def __del__(self) -> None:
        pass


def _parse_often(errors: list[BaseException]) -> None:
    for _ in range(40):
        garbage = [_Finalized() for _ in range(50)]
        for item in garbage:
            item.cycle = item  # type: ignore[attr-defined]
        del garbage
        try:
            _source._symbols(SOURCE, SOURCE.count("\n"))
            preflight_source(SOURCE)
        except BaseException as exc:  # noqa: BLE001 - any failure of a thread is the finding
            errors.append(exc)
            return


def test_threads_parse_at_once_without_a_recursion_depth_mismatch() -> None:
    # CPython before 3.13 fails here with "SystemError: AST constructor recursion depth mismatch"
    errors: list[BaseException] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=_parse_often, args=(errors,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
