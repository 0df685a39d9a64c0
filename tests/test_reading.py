"""truthplane.reading reads tools' output and the configuration as pydantic's lax mode would: checked here
against pydantic itself, on the same classes (pydantic reads a plain dataclass too)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ConfigDict, TypeAdapter, ValidationError

from truthplane.errors import VerifierError
from truthplane.models import Severity
from truthplane.reading import Unexpected, read
from truthplane.verifiers._common import ToolRecord, validate


@dataclass(kw_only=True)
class Inner:
    __pydantic_config__ = ConfigDict(extra="forbid")
    _EXTRA: ClassVar[str] = "forbid"
    line: int
    col: int | None = None


@dataclass(kw_only=True)
class Outer:
    __pydantic_config__ = ConfigDict(extra="ignore")
    name: str
    ratio: float = 1.0
    flag: bool = False
    level: Severity = Severity.LOW
    form: Literal["sarif", "json"] = "sarif"
    where: Inner | None = None
    tags: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    either: int | str = 0
    anything: Any = None


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, 1.0, 1.5, -2.0]),
                    st.sampled_from(["", "1", " 2 ", "1.5", "x", "yes", "off", "inf", "sarif", "json", "high"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["line", "col", "a", "b"]), inner, max_size=3)),
    max_leaves=6)
KEYS = ["name", "ratio", "flag", "level", "form", "where", "tags", "counts", "either", "anything", "extra"]


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6))
def test_reads_what_pydantic_reads_and_refuses_what_it_refuses(data: dict[str, Any]) -> None:
    try:
        expected = TypeAdapter(Outer).validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        with pytest.raises(Unexpected) as info:
            read(Outer, data)
        assert (info.value.loc, info.value.msg) == (first["loc"], first["msg"])
    else:
        assert read(Outer, data) == expected


class Position(ToolRecord):
    line: int


class Result(ToolRecord):
    path: str
    start: Position
    lines: list[int] = field(default_factory=list)


class Output(ToolRecord):
    results: list[Result]


def test_a_tool_record_ignores_what_it_does_not_name_and_says_where_a_shape_is_wrong() -> None:
    read_back = validate("t", Output, {"results": [{"path": "a.py", "start": {"line": "3"}, "other": 1}]}, "tool")
    assert read_back == Output(results=[Result(path="a.py", start=Position(line=3))])
    with pytest.raises(VerifierError, match=r"\(results\.0\.start\.line: Field required\)"):
        validate("t", Output, {"results": [{"path": "a.py", "start": {}}]}, "tool")
    with pytest.raises(VerifierError, match=r"\(top level: Input should be a valid dictionary"):
        validate("t", Output, [], "tool")
    with pytest.raises(VerifierError, match=r"results\.0\.lines\.1: Input should be a valid integer"):
        validate("t", Output, {"results": [{"path": "a", "start": {"line": 1}, "lines": [1, []]}]}, "tool")
