"""GitHub code scanning's primaryLocationLineHash, as codeql-action's fingerprints.ts computes it."""

from __future__ import annotations

import operator
import sys
from array import array

from truthplane.truth._tokens import SHARED_BYTES, Shared

_GH_BLOCK_SIZE = 100
_GH_MASK = (1 << 64) - 1
_GH_EOF = 65535
# 37^(99-j) mod 2^64: the weight of the j-th character of a line's 100-character window
_GH_WEIGHTS = [pow(37, _GH_BLOCK_SIZE - 1 - j, 1 << 64) for j in range(_GH_BLOCK_SIZE)]


def github_line_hashes(content: bytes) -> list[str]:
    """The rolling hash codeql-action's fingerprints.ts gives each line, without the ':N' occurrence.

    It hashes the 100 UTF-16 code units starting at the line, after dropping spaces and tabs and
    turning CR LF and CR into LF, with 65535 marking the end of the file and zeros after it.
    """
    text = content.decode("utf-8", errors="replace")
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace(" ", "").replace("\t", "")
    units = array("H")
    units.frombytes(text.encode("utf-16-le", errors="surrogatepass"))
    if sys.byteorder == "big":
        units.byteswap()
    stream = [*units, _GH_EOF, *([0] * _GH_BLOCK_SIZE)]
    starts = [0, *(i + 1 for i, unit in enumerate(units) if unit == 10)]
    return [
        format(sum(map(operator.mul, _GH_WEIGHTS, stream[p : p + _GH_BLOCK_SIZE])) & _GH_MASK, "x")
        for p in starts
    ]


def numbered_github_hashes(content: bytes) -> tuple[str, ...]:
    """Per line, GitHub's hash with its 1-based occurrence among the file's lines (remembered like load_shared)."""
    return _NUMBERED.get(content, len(content)) if len(content) <= SHARED_BYTES else _numbered(content)


def _numbered(content: bytes) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    numbered = []
    for value in github_line_hashes(content):
        seen[value] = seen.get(value, 0) + 1
        numbered.append(f"{value}:{seen[value]}")
    return tuple(numbered)


_NUMBERED: Shared[bytes, tuple[str, ...]] = Shared(_numbered)
