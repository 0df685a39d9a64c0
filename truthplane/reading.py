"""Plain data (JSON, TOML) read into dataclasses the way pydantic's lax mode reads it into models: the same
conversions, the same first error, in the same words.

A gate reads its configuration and its tools' output on every run; importing pydantic and building its
validators costs a fresh process some 0.2 s of CPU, as much as the tools' own run on a changed file. What the
gate reads is a few dataclasses of plain types, read here. (pydantic still checks what is read rarely: an LLM
provider table, a cluster, a run-all task, a command's JSON findings.)

A dataclass read here says, in class attributes:
- `_EXTRA`: "ignore" (keys it does not name are dropped), "forbid" (they are an error), or the name of a
  dict field that takes them ("allow");
- `_FINITE`: whether a float field refuses inf and nan.
A field's metadata may hold bounds (`ge`, `gt`, `le`); `key`, the name the data gives it when that is not its
own; and `check`, a function of the value read that returns it (or a converted one), and raises ValueError with
what is wrong ("Value error, ..." as pydantic says it) or Unexpected (its place within the value).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, Literal, TypeVar

T = TypeVar("T")

Loc = tuple[str | int, ...]


class Unexpected(Exception):
    """The first thing in the data that does not fit, as pydantic reports it: where, what, and the value."""

    def __init__(self, loc: Loc, msg: str, value: Any = None, ctx: dict[str, Any] | None = None) -> None:
        super().__init__(msg)
        self.loc, self.msg, self.value, self.ctx = loc, msg, value, ctx

    def within(self, *outer: str | int) -> Unexpected:
        return Unexpected((*outer, *self.loc), self.msg, self.value, self.ctx)


_NO_VALUE = object()


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    key: str
    kind: Any
    required: bool
    bounds: tuple[tuple[str, float], ...]
    check: Any


@cache
def _fields(record: type) -> tuple[_Field, ...]:
    hints = typing.get_type_hints(record)
    out = []
    for item in dataclasses.fields(record):
        if not item.init or item.name == getattr(record, "_EXTRA", "ignore"):
            continue
        meta = item.metadata
        bounds = tuple((name, meta[name]) for name in ("ge", "gt", "le") if name in meta)
        required = item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING
        out.append(_Field(item.name, meta.get("key", item.name), hints[item.name], required, bounds, meta.get("check")))
    return tuple(out)


def read(record: type[T], data: Any, loc: Loc = ()) -> T:
    """`data` (a dict) as a `record`; Unexpected at the first thing that does not fit."""
    if not isinstance(data, dict):
        raise Unexpected(loc, f"Input should be a valid dictionary or instance of {record.__name__}", data)
    extra = getattr(record, "_EXTRA", "ignore")
    finite = getattr(record, "_FINITE", False)
    values: dict[str, Any] = {}
    named = _fields(typing.cast(Any, record))
    for item in named:
        value = data.get(item.key, _NO_VALUE)
        if value is _NO_VALUE:
            if item.required:
                raise Unexpected((*loc, item.key), "Field required", data)
            continue
        where = (*loc, item.key)
        given = value
        value = _read(item.kind, value, where, finite)
        for bound, limit in item.bounds:
            if value is not None and not _within(bound, value, limit):
                raise Unexpected(where, _BOUND_WORDS[bound].format(limit), given, {bound: limit})
        if item.check is not None:
            try:
                value = item.check(value)
            except ValueError as exc:
                raise Unexpected(where, f"Value error, {exc}", value) from None
            except Unexpected as exc:
                raise exc.within(*where) from None
        values[item.name] = value
    names = {item.key for item in named}
    unknown = {key: value for key, value in data.items() if key not in names}
    if unknown and extra == "forbid":
        key = next(iter(unknown))
        raise Unexpected((*loc, key), "Extra inputs are not permitted", unknown[key])
    if unknown and extra != "ignore":
        values[extra] = unknown
    return record(**values)


_BOUND_WORDS = {
    "ge": "Input should be greater than or equal to {}",
    "gt": "Input should be greater than {}",
    "le": "Input should be less than or equal to {}",
}


def _within(bound: str, value: float, limit: float) -> bool:
    if bound == "ge":
        return value >= limit
    if bound == "gt":
        return value > limit
    return value <= limit


def _read(kind: Any, value: Any, loc: Loc, finite: bool, strict: bool = False) -> Any:
    if kind is Any:
        return value
    origin = typing.get_origin(kind)
    if origin is typing.Union or origin is types.UnionType:
        options = [option for option in typing.get_args(kind) if option is not type(None)]
        if value is None and len(options) < len(typing.get_args(kind)):
            return None
        if len(options) == 1:
            return _read(options[0], value, loc, finite, strict)
        first: Unexpected | None = None
        for exact in (True, False):  # a member the value already is wins over one it converts to (smart mode)
            for option in options:
                try:  # a problem's place names the member, as pydantic's does
                    return _read(option, value, (*loc, _member_name(option)), finite, strict=exact)
                except Unexpected as exc:
                    first = first or exc
        assert first is not None
        raise first
    if origin is list:
        if not isinstance(value, list):
            raise Unexpected(loc, "Input should be a valid list", value)
        (item,) = typing.get_args(kind)
        return [_read(item, one, (*loc, n), finite) for n, one in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise Unexpected(loc, "Input should be a valid dictionary", value)
        _key, item = typing.get_args(kind)
        return {key: _read(item, one, (*loc, key), finite) for key, one in value.items()}
    if origin is Literal:
        allowed = typing.get_args(kind)
        if value in allowed and type(value) in {type(option) for option in allowed}:
            return value
        raise Unexpected(loc, f"Input should be {_alternatives(allowed)}", value)
    if isinstance(kind, type) and issubclass(kind, Enum):
        try:
            return kind(value)
        except ValueError:
            raise Unexpected(loc, f"Input should be {_alternatives([m.value for m in kind])}", value) from None
    if dataclasses.is_dataclass(kind):
        return read(kind, value, loc)  # type: ignore[arg-type]
    return _scalar(kind, value, loc, finite, strict)


def _member_name(kind: Any) -> str:
    if isinstance(kind, type):
        return kind.__name__
    return str(kind).replace(" ", "").replace("typing.Any", "any")


def _alternatives(values: typing.Iterable[Any]) -> str:
    shown = [repr(value) for value in values]
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _scalar(kind: Any, value: Any, loc: Loc, finite: bool, strict: bool) -> Any:
    if kind is str:
        if isinstance(value, str):
            return value
        raise Unexpected(loc, "Input should be a valid string", value)
    if kind is int:
        if isinstance(value, int) and not (strict and isinstance(value, bool)):
            return int(value)
        if not strict and isinstance(value, float):
            if value.is_integer():
                return int(value)
            raise Unexpected(loc, "Input should be a valid integer, got a number with a fractional part", value)
        if not strict and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise Unexpected(loc, "Input should be a valid integer, unable to parse string as an integer",
                                 value) from None
        raise Unexpected(loc, "Input should be a valid integer", value)
    if kind is float:
        number: float | None = None
        if isinstance(value, (int, float)) and not (strict and isinstance(value, bool)):
            number = float(value)
        elif not strict and isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise Unexpected(loc, "Input should be a valid number, unable to parse string as a number",
                                 value) from None
        if number is None:
            raise Unexpected(loc, "Input should be a valid number", value)
        if finite and not math.isfinite(number):
            raise Unexpected(loc, "Input should be a finite number", value)
        return number
    if kind is bool:
        if isinstance(value, bool):
            return value
        if not strict and isinstance(value, (int, str)):
            word = str(value).strip().lower()
            if word in _TRUE or word in _FALSE:
                return word in _TRUE
            raise Unexpected(loc, "Input should be a valid boolean, unable to interpret input", value)
        raise Unexpected(loc, "Input should be a valid boolean", value)
    raise TypeError(f"cannot read a {kind!r}")
