"""Keeping a file's form outside the lines a change rewrote: endings, BOM, final newline."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from truthplane.git.lineform import BOM, keep_form


def test_a_tool_that_rewrites_every_ending_changes_only_its_own_lines() -> None:
    old = b"a = 1\r\nb = 2\r\nc = 3\r\n"
    assert keep_form(old, b"a = 1\nb = 20\nc = 3\n") == b"a = 1\r\nb = 20\r\nc = 3\r\n"
    assert keep_form(old, b"a = 1\nb = 2\nc = 3\n") == old  # a change of endings alone is no change


def test_mixed_endings_bom_and_a_missing_final_newline_are_kept() -> None:
    old = BOM + b"a\r\nb\nc\r\nd"
    assert keep_form(old, b"a\nb\nC\nd\n") == BOM + b"a\r\nb\nC\r\nd"
    assert keep_form(old, b"a\nb\nc\nd\ne\n") == BOM + b"a\r\nb\nc\r\nd\r\ne\r\n"  # lines added after the last


def test_binary_content_is_left_as_the_change_made_it() -> None:
    assert keep_form(b"a\r\n\0", b"b\n\0") == b"b\n\0"


lines = st.lists(st.sampled_from([b"x = 1", b"y = 2", b"", b"# c", b"z = 3"]), max_size=8)
endings = st.sampled_from([b"\n", b"\r\n"])


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(lines, lines, st.lists(endings, min_size=8, max_size=8), st.lists(endings, min_size=8, max_size=8),
       st.booleans(), st.booleans())
def test_the_text_is_the_changes_and_untouched_lines_keep_their_bytes(old_lines, new_lines, old_ends, new_ends,
                                                                      bom, last_newline) -> None:
    old = (BOM if bom else b"") + b"".join(t + e for t, e in zip(old_lines, old_ends, strict=False))
    if old_lines and not last_newline:
        old = old[: -len(old_ends[len(old_lines) - 1])]
    new = b"".join(t + e for t, e in zip(new_lines, new_ends, strict=False))
    kept = keep_form(old, new)
    assert texts(kept.removeprefix(BOM) if bom else kept) == texts(new)
    if old and new and texts(old.removeprefix(BOM)) == texts(new):
        assert kept == old  # nothing but the form differs: the old bytes, exactly


def texts(content: bytes) -> list[bytes]:
    """The lines' text, whatever their endings and whether the last one has one."""
    plain = content.replace(b"\r\n", b"\n")
    if not plain:
        return []
    return (plain[:-1] if plain.endswith(b"\n") else plain).split(b"\n")
