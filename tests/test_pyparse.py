"""Parsing Python on several threads at once, as a gate's verifier threads and the fix loop's candidates do."""

from __future__ import annotations

import ast
import sys
import threading

import pytest

from truthplane import pyparse

from truthplane.truth import _tokens as _source
from truthplane.executors.preflight import preflight_source

SOURCE = "\n".join(
    f"def f{i}(a):\n    if a:\n        return [{{'k': (a, b)}} for b in range(a) if b]\n    return None"
    for i in range(300)
) + "\n"


NUMBERS = [f"0x{i:x}" for i in range(200)]


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
            for number in NUMBERS:  # a number's spelling is read with literal_eval, which parses too
                _source._canonical_number(number)
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


REAL_PARSE = ast.parse


def test_a_parse_another_threads_converter_spoiled_is_made_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def spoiled_once(*args: object, **kwargs: object) -> ast.AST:
        calls.append(args)
        if len(calls) == 1:
            raise SystemError("AST constructor recursion depth mismatch (before=72, after=75)")
        return REAL_PARSE(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ast, "parse", spoiled_once)
    tree = pyparse.parse("x = 1\n")
    assert isinstance(tree.body[0], ast.Assign) and len(calls) == 2


def test_any_other_system_error_is_raised_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> ast.AST:
        raise SystemError("something else")

    monkeypatch.setattr(ast, "parse", broken)
    with pytest.raises(SystemError, match="something else"):
        pyparse.parse("x = 1\n")


def test_a_literal_is_read_under_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    held = []

    def watching(*args: object, **kwargs: object) -> ast.AST:
        held.append(pyparse._LOCK.locked())
        return REAL_PARSE(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ast, "parse", watching)
    assert [pyparse.literal_eval(text) for text in ("0x10", " 1_000", "1e3", "'a'")] == [16, 1000, 1000.0, "a"]
    assert held == [True] * 4
    with pytest.raises(ValueError):
        pyparse.literal_eval("f(x)")
