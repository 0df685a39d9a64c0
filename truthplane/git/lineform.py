"""Keep a file's form where a change did not touch it: line endings, a byte-order mark, a missing final newline.

Tools and models that rewrite a file often rewrite all of it: an autofix writes LF into a CRLF file, a model
drops the BOM or adds a final newline. Only the lines the change really rewrote may change; everywhere else
the old bytes are kept.
"""

from __future__ import annotations

import difflib

BOM = b"\xef\xbb\xbf"


def _split(content: bytes) -> list[tuple[bytes, bytes]]:
    """(text, ending) per line, split at LF only; the ending is b"\\r\\n", b"\\n" or b"" (a last line without one)."""
    parts = content.split(b"\n")
    lines = [(part[:-1], b"\r\n") if part.endswith(b"\r") else (part, b"\n") for part in parts[:-1]]
    return lines + ([(parts[-1], b"")] if parts[-1] else [])


def _replaced(block: list[tuple[bytes, bytes]], offset: int, text: bytes) -> tuple[bytes, bytes]:
    """The old line a rewritten line stands for: the most alike in the block it replaces (by position in a large
    one)."""
    if len(block) == 1 or len(block) > 50:
        return block[min(offset, len(block) - 1)]
    return max(block, key=lambda old: difflib.SequenceMatcher(a=old[0], b=text, autojunk=False).ratio())


def keep_form(old: bytes, new: bytes) -> bytes:
    """`new`, with `old`'s line endings on every line whose text did not change, its BOM, and its final newline
    (or lack of one) when the last line did not change. Lines the change rewrote take the ending of the old
    line they replace (or of the nearest old line), so the file keeps one convention where it had one."""
    if old == new or b"\0" in old or b"\0" in new:
        return new
    bom = old.startswith(BOM)
    old_lines = _split(old[len(BOM):] if bom else old)
    new_lines = _split(new[len(BOM):] if new.startswith(BOM) and bom else new)
    if not old_lines or not new_lines:
        return new
    endings = [ending for _, ending in old_lines if ending]
    usual = max(set(endings), key=endings.count) if endings else b"\n"
    matcher = difflib.SequenceMatcher(a=[t for t, _ in old_lines], b=[t for t, _ in new_lines], autojunk=False)
    out: list[tuple[bytes, bytes]] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.extend(old_lines[i1:i2])
            continue
        for offset, (text, ending) in enumerate(new_lines[j1:j2]):
            near = _replaced(old_lines[i1:i2], offset, text) if i2 > i1 else old_lines[i1 - 1] if i1 else old_lines[0]
            out.append((text, (near[1] or usual) if ending else b""))
    last = len(out) - 1
    # an old last line without a newline that the change added lines after needs an ending now
    out = [(text, ending or usual) if k < last else (text, ending) for k, (text, ending) in enumerate(out)]
    return (BOM if bom else b"") + b"".join(text + ending for text, ending in out)
