"""Finding identity across moves, renames and reformatting; new only when the flagged code changes."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truthplane.truth.fingerprint import FINGERPRINT_KEY, GITHUB_KEY, annotate, github_line_hashes, match
from truthplane.models import Diff, Finding, Severity


def finding(path: str, line: int, rule: str = "S307", verifier: str = "ruff", **extra: object) -> Finding:
    fields: dict[str, object] = {"message": f"{rule} flagged", "end_line": line, **extra}
    return Finding(verifier=verifier, rule_id=rule, severity=Severity.HIGH, path=path, start_line=line, **fields)


def scan(files: dict[str, str], needle: str = "eval(", rule: str = "S307") -> list[Finding]:
    """A stand-in analyser: one finding per line containing `needle`, annotated against `files`."""
    found = []
    for path, text in sorted(files.items()):
        for number, line in enumerate(text.splitlines(), start=1):
            if needle in line:
                found.append(finding(path, number, rule))
    sources = {path: text.encode() for path, text in files.items()}
    return annotate(found, sources.get)


def diff(before: dict[str, str], after: dict[str, str], **kwargs: object) -> Diff:
    return match(scan(before), scan(after), **kwargs)  # type: ignore[arg-type]


def counts(result: Diff) -> tuple[int, int, int]:
    """(new, fixed, unchanged) identities: an updated finding is one that went and one that came."""
    return len(result.new) + len(result.updated), len(result.fixed) + len(result.updated), len(result.unchanged)


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


BASE = src('''
    import os


    def load(data):
        value = eval(data)
        return value


    def other(path):
        return open(path).read()
''')


def test_same_code_is_all_unchanged() -> None:
    assert counts(diff({"a.py": BASE}, {"a.py": BASE})) == (0, 0, 1)


def test_lines_inserted_above_keep_identity() -> None:
    after = "import sys\nimport json\n\n# setup\nX = 1\n" + BASE
    result = diff({"a.py": BASE}, {"a.py": after})
    assert counts(result) == (0, 0, 1)
    assert result.unchanged[0].start_line == 10


def test_lines_deleted_above_keep_identity() -> None:
    assert counts(diff({"a.py": BASE}, {"a.py": BASE.replace("import os\n", "")})) == (0, 0, 1)


def test_reindenting_and_whitespace_keep_identity() -> None:
    after = src('''
        import os


        def load(data):
            if True:
                value   =   eval( data )
            return value
    ''')
    assert counts(diff({"a.py": BASE}, {"a.py": after})) == (0, 0, 1)


def test_formatter_rewrapping_the_flagged_statement_keeps_identity() -> None:
    before = src('''
        def run(code, scope):
            result = eval(compile(code, "<x>", 'eval'), {"scope": scope, "limit": 10_000})
            return result
    ''')
    after = src('''
        def run(code, scope):
            result = (
                eval(
                    compile(code, '<x>', "eval"),
                    {
                        'scope': scope,
                        "limit": 10000,
                    },
                )
            )
            return result
    ''')
    result = diff({"a.py": before}, {"a.py": after})
    assert counts(result) == (0, 0, 1)


def test_finding_reported_on_a_continuation_line_matches_the_joined_statement() -> None:
    before = "x = compute(\n    1,\n    eval(y),\n)\n"
    after = "x = compute(1, eval(y))\n"
    sources = {"b": before.encode(), "a": after.encode()}
    old = annotate([finding("m.py", 3)], lambda p: sources["b"])
    new = annotate([finding("m.py", 1)], lambda p: sources["a"])
    assert counts(match(old, new)) == (0, 0, 1)


def test_black_wrapping_a_tuple_value_keeps_identity_but_regrouping_does_not() -> None:
    before = "def f(pat):\n    i, n = 0, len(pat)\n    return i, eval(n)\n"
    after = "def f(pat):\n    i, n = (\n        0,\n        len(pat),\n    )\n    return (i, eval(n))\n"
    assert counts(diff({"a.py": before}, {"a.py": after})) == (0, 0, 1)
    regrouped = "def f(pat):\n    i, n = 0, len(pat)\n    return i, (eval(n), 1)\n"
    nested = "def f(pat):\n    i, n = 0, len(pat)\n    return i, eval(n), 1\n"
    assert counts(diff({"a.py": regrouped}, {"a.py": nested})) == (1, 1, 0)


def scan_at_columns(text: str, needle: str = "eval(", rule: str = "S307") -> list[Finding]:
    """Like scan(), with the columns a real analyser gives: one finding per occurrence of `needle`."""
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        column = line.find(needle)
        while column >= 0:
            found.append(finding("a.py", number, rule, start_column=column + 1, end_column=column + len(needle) + 1))
            column = line.find(needle, column + 1)
    return annotate(found, {"a.py": text.encode()}.get)


def diff_at_columns(before: str, after: str, needle: str = "eval(") -> Diff:
    return match(scan_at_columns(before, needle), scan_at_columns(after, needle))


@pytest.mark.parametrize(
    "before, after",
    [
        ('assert isinstance(x, int) and eval(x), "bad"\n', 'assert (\n    isinstance(x, int) and eval(x)\n), "bad"\n'),
        ('assert ok, "bad %s" % eval(x)\n', 'assert ok, (\n    "bad %s" % eval(x)\n)\n'),
        (
            "show(value=lambda v: '=' + eval(v), other=1)\n",
            "show(\n    value=lambda v: (\n        '=' + eval(v)\n    ),\n    other=1,\n)\n",
        ),
        ("table = {key: a or eval(b)}\n", "table = {\n    key: (a or eval(b))\n}\n"),
        ("if ready and eval(x):\n    pass\n", "if (\n    ready and eval(x)\n):\n    pass\n"),
    ],
)
def test_redundant_grouping_parentheses_a_formatter_adds_keep_identity(before: str, after: str) -> None:
    assert counts(diff_at_columns(before, after)) == (0, 0, 1)


@pytest.mark.parametrize("before, after", [
    ("x = (a + b) * eval(c)\n", "x = a + b * eval(c)\n"),
    ("ok = not (a and eval(b))\n", "ok = not a and eval(b)\n"),
    ("x = (a or eval(b)).real\n", "x = a or eval(b).real\n"),
    ("x = f((eval(a), b))\n", "x = f(eval(a), b)\n"),
])
def test_parentheses_that_change_the_meaning_are_kept(before: str, after: str) -> None:
    assert counts(diff_at_columns(before, after)) == (1, 1, 0)


def test_findings_sharing_a_line_keep_identity_when_a_formatter_splits_it() -> None:
    before = "def f(blob, code):\n    data = eval(blob); run(eval(code))\n    if data: return eval(data)\n"
    after = "def f(blob, code):\n    data = eval(blob)\n    run(eval(code))\n    if data:\n        return eval(data)\n"
    result = diff_at_columns(before, after)
    assert counts(result) == (0, 0, 3)
    assert [f.start_line for f in result.unchanged] == [2, 3, 5]


def test_of_statements_sharing_a_line_only_the_flagged_one_is_its_identity() -> None:
    before = "def f(blob, code):\n    data = eval(blob); run(code)\n"
    after = "def f(blob, code):\n    data = eval(blob); run(code, timeout=1)\n"
    assert counts(diff_at_columns(before, after)) == (0, 0, 1)
    edited = "def f(blob, code):\n    data = eval(blob, {}); run(code)\n"
    assert counts(diff_at_columns(before, edited)) == (1, 1, 0)


def test_quote_style_and_implicit_concatenation_keep_identity() -> None:
    before = "value = eval('1 + ' 'x', {\"a\": f'{k}'})\n"
    after = "value = eval(\"1 + x\", {'a': f\"{k}\"})\n"
    assert counts(diff({"a.py": before}, {"a.py": after})) == (0, 0, 1)


def test_comment_on_the_flagged_line_keeps_identity() -> None:
    after = BASE.replace("value = eval(data)", "value = eval(data)  # noqa: S307 trusted input")
    assert counts(diff({"a.py": BASE}, {"a.py": after})) == (0, 0, 1)


def test_editing_nearby_lines_keeps_identity() -> None:
    after = BASE.replace("return value", "return value * 2")
    assert counts(diff({"a.py": BASE}, {"a.py": after})) == (0, 0, 1)


def test_rename_reported_by_git_keeps_identity() -> None:
    result = diff({"a.py": BASE}, {"pkg/b.py": BASE}, renames={"a.py": "pkg/b.py"})
    assert counts(result) == (0, 0, 1)
    assert result.unchanged[0].path == "pkg/b.py"


def test_move_git_did_not_report_is_found_by_content() -> None:
    other = "def f():\n    return 1\n"
    after = BASE.replace("import os", "import os\nimport sys")
    result = diff({"a.py": BASE, "z.py": other}, {"moved/a2.py": after, "z.py": other})
    assert counts(result) == (0, 0, 1)


def test_several_unreported_moves_pair_each_file_with_its_own_copy() -> None:
    first = BASE + "\n\ndef first(s):\n    return eval(s + '1')\n"
    second = BASE + "\n\ndef second(s):\n    return eval(s + '2')\n\n\ndef third(s):\n    return eval(s + '3')\n"
    result = diff({"a.py": first, "b.py": second}, {"x/one.py": "\n" + first, "y/two.py": second})
    assert counts(result) == (0, 0, 5)
    assert {f.path for f in result.unchanged if f.symbol == "second"} == {"y/two.py"}


def test_code_moved_out_of_a_file_that_still_exists_is_unchanged() -> None:
    before = {"a.py": BASE, "b.py": "X = 1\n"}
    after = {"a.py": "X = 1\n", "b.py": "X = 1\n", "c.py": BASE}
    result = diff(before, after, before_files=set(before), after_files=set(after))
    assert counts(result) == (0, 0, 1)
    assert result.unchanged[0].path == "c.py"


def test_code_moved_between_files_pairs_by_symbol_before_code() -> None:
    body = "def {name}(s):\n    return eval(s)\n\n\n"
    before = {"a.py": body.format(name="one") + body.format(name="two"), "b.py": "X = 1\n"}
    after = {"a.py": body.format(name="one"), "b.py": "X = 1\n\n\n" + body.format(name="two")}
    result = diff(before, after, same_files=[])
    assert counts(result) == (0, 0, 2)
    assert {(f.path, f.symbol) for f in result.unchanged} == {("a.py", "one"), ("b.py", "two")}


def test_of_two_places_code_may_have_moved_to_the_one_with_the_same_surroundings_wins() -> None:
    moved = "def renamed(s):\n    s = s.strip()\n    return eval(s)\n"
    similar = "\n\n\n\n\ndef other(s):\n    s = s.lower()\n    return eval(s)\n"
    before = {"a.py": "\n\n\n\n\ndef original(s):\n    s = s.strip()\n    return eval(s)\n", "b.py": "", "c.py": ""}
    result = diff(before, {"a.py": "", "b.py": moved, "c.py": similar}, same_files=[])
    assert counts(result) == (1, 0, 1)
    assert [f.path for f in result.new] == ["c.py"] and [f.path for f in result.unchanged] == ["b.py"]


def test_copied_code_is_one_new_finding_and_the_original_stays() -> None:
    before = {"a.py": BASE, "b.py": "X = 1\n"}
    after = {"a.py": BASE, "b.py": "X = 1\n\n\n" + BASE}
    result = diff(before, after, same_files=["a.py"])
    assert counts(result) == (1, 0, 1)
    assert result.new[0].path == "b.py" and result.unchanged[0].path == "a.py"


def test_a_finding_fixed_in_an_unchanged_file_never_pairs_with_one_elsewhere() -> None:
    before = [finding("lib.py", 3, context_hash="same-code", symbol="f")]
    after = [finding("app.py", 9, context_hash="same-code", symbol="f")]
    both = {"lib.py", "app.py"}
    result = match(before, after, before_files=both, after_files=both, same_files=["lib.py"])
    assert counts(result) == (1, 1, 0)


def test_findings_known_only_by_their_message_never_pair_across_files() -> None:
    before = [finding("a.c", 3, message="value is never read")]
    after = [finding("b.c", 7, message="value is never read")]
    both = {"a.c", "b.c"}
    assert counts(match(before, after, before_files=both, after_files=both)) == (1, 1, 0)


def test_function_moved_within_the_file_keeps_identity() -> None:
    after = src('''
        import os


        def other(path):
            return open(path).read()


        def load(data):
            value = eval(data)
            return value
    ''')
    assert counts(diff({"a.py": BASE}, {"a.py": after})) == (0, 0, 1)


def test_function_moved_into_a_class_keeps_identity() -> None:
    after = src('''
        import os


        class Loader:
            def load_it(self, data):
                value = eval(data)
                return value
    ''')
    result = diff({"a.py": BASE}, {"a.py": after})
    assert counts(result) == (0, 0, 1)
    assert result.unchanged[0].symbol == "Loader.load_it"


def test_third_identical_finding_is_exactly_one_new() -> None:
    two = "def f(x):\n    eval(x)\n    eval(x)\n"
    three = "def f(x):\n    eval(x)\n    eval(x)\n    eval(x)\n"
    result = diff({"a.py": two}, {"a.py": three})
    assert counts(result) == (1, 0, 2)
    assert [f.fingerprint.split(":")[1] for f in scan({"a.py": three})] == ["0", "1", "2"]


def test_one_of_two_identical_findings_removed_is_exactly_one_fixed() -> None:
    two = "def f(x):\n    eval(x)\n    eval(x)\n"
    assert counts(diff({"a.py": two}, {"a.py": "def f(x):\n    eval(x)\n"})) == (0, 1, 1)


def test_the_edited_one_of_identical_findings_is_the_one_reported_updated() -> None:
    before = "def f(x):\n    eval(x)\n    y = 1\n    eval(x)\n"
    result = diff({"a.py": before}, {"a.py": before.replace("eval(x)", "eval(z)", 1)})
    assert [f.start_line for f in result.updated] == [2] and result.fixed == result.new == []
    assert [f.start_line for f in result.unchanged] == [4]


def test_identical_findings_follow_the_line_shift_of_their_neighbours() -> None:
    body = "".join(f"    step_{i}()\n" for i in range(25))
    before = {"a.py": f"def f(x, p):\n    eval(x)\n    open(p)\n{body}    eval(x)\n"}
    after = {"a.py": "import os\n" * 20 + f"def f(x, p):\n    eval(x)\n    open(p)\n{body}"}

    def both(files: dict[str, str]) -> list[Finding]:
        return scan(files) + scan(files, needle="open(", rule="SIM115")

    result = match(both(before), both(after))
    assert counts(result) == (0, 1, 2)
    assert result.fixed[0].start_line == 29


def test_editing_the_flagged_expression_is_updated_not_new_and_fixed() -> None:
    after = BASE.replace("eval(data)", "eval(data.strip())")
    result = diff({"a.py": BASE}, {"a.py": after})
    assert (result.new, result.fixed, result.unchanged) == ([], [], [])
    assert [f.start_line for f in result.updated] == [5]


COMBINATIONS = src('''
    def binomial(n, r):
        total = 0
        for k in range(0, r):
            total += eval(f"comb({n}, {k})")
        return total


    def other(n):
        return eval(str(n))
''')


def test_a_one_token_fix_on_a_flagged_line_is_updated_while_lines_move_around_it() -> None:
    fixed = COMBINATIONS.replace("range(0, r)", "range(0, r + 1)").replace(
        "def binomial", "# r is inclusive\ndef binomial"
    )
    before = annotate(
        [finding("a.py", 3, "PIE808"), finding("a.py", 4), finding("a.py", 9)], {"a.py": COMBINATIONS.encode()}.get
    )
    after = annotate(
        [finding("a.py", 4, "PIE808"), finding("a.py", 5), finding("a.py", 10)], {"a.py": fixed.encode()}.get
    )
    result = match(before, after)
    assert (result.new, result.fixed) == ([], [])
    assert [(f.rule_id, f.start_line) for f in result.updated] == [("PIE808", 4)]
    assert len(result.unchanged) == 2


def test_an_edited_line_is_updated_by_the_code_around_it_when_no_other_finding_stayed() -> None:
    lone = "import os\n\n\n" + COMBINATIONS.split("\n\n\n")[0] + "\n"
    edited = lone.replace("import os\n\n\n", "").replace('eval(f"comb({n}, {k})")', 'eval(f"comb({n}, {k + 1})")')
    result = diff({"a.py": lone}, {"a.py": edited})
    assert [(f.start_line, f.symbol) for f in result.updated] == [(4, "binomial")]
    assert (result.new, result.fixed, result.unchanged) == ([], [], [])
    # the code around it rewritten too: nothing says it is the same line
    rewritten = edited.replace("range(0, r)", "range(r)").replace("return total", "return -total")
    assert counts(diff({"a.py": lone}, {"a.py": rewritten})) == (1, 1, 0)
    assert diff({"a.py": lone}, {"a.py": rewritten}).updated == []


def test_a_finding_on_a_line_that_had_none_is_new_even_next_to_an_edit() -> None:
    after = COMBINATIONS.replace("total = 0", "total = eval('0')")
    result = diff({"a.py": COMBINATIONS}, {"a.py": after})
    assert [f.start_line for f in result.new] == [2] and result.updated == [] and len(result.unchanged) == 2


def test_an_edit_that_moves_the_rule_to_another_symbol_or_line_is_new_and_fixed() -> None:
    before = [finding("a.py", 4, symbol="f", context_hash="old code")]
    elsewhere = [finding("a.py", 7, symbol="f", context_hash="new code")]
    other_symbol = [finding("a.py", 4, symbol="g", context_hash="new code")]
    for after in (elsewhere, other_symbol):
        result = match(before, after)
        assert (len(result.new), len(result.fixed), result.updated) == (1, 1, [])


def test_two_findings_edited_on_one_line_pair_one_to_one() -> None:
    before = [finding("a.py", 4, context_hash="a"), finding("a.py", 4, context_hash="a")]
    after = [
        finding("a.py", 4, context_hash="b"),
        finding("a.py", 4, context_hash="b"),
        finding("a.py", 4, context_hash="b"),
    ]
    result = match(before, after)
    assert (len(result.updated), len(result.new), result.fixed) == (2, 1, [])


def test_brand_new_finding_is_new_and_removed_code_is_fixed() -> None:
    added = BASE + "\n\ndef more(s):\n    return eval(s)\n"
    assert counts(diff({"a.py": BASE}, {"a.py": added})) == (1, 0, 1)
    removed = BASE.replace("    value = eval(data)\n", "    value = data\n")
    assert counts(diff({"a.py": BASE}, {"a.py": removed})) == (0, 1, 0)


def test_same_message_different_code_is_not_matched() -> None:
    before = {"a.py": "def f(a):\n    eval(a)\n"}
    after = {"a.py": "def f(a):\n    eval(a + 'x')\n"}
    old, new = scan(before), scan(after)
    assert old[0].message == new[0].message
    assert counts(match(old, new)) == (1, 1, 0)


def test_edit_elsewhere_in_a_long_statement_keeps_identity_of_the_flagged_call() -> None:
    entries = ",\n".join(f"    'key{i}': handler_{i}" for i in range(30))
    before = f"TABLE = {{\n{entries},\n    'calc': eval(expr),\n}}\n"
    after = before.replace("handler_3", "handler_three")
    column = before.splitlines()[31].index("eval(") + 1
    end = column + len("eval(expr)")

    def scanned(text: str, code: str) -> list[Finding]:
        line = text.splitlines().index(f"    'calc': {code},") + 1
        spot = finding("t.py", line, start_column=column, end_column=end)
        return annotate([spot], {"t.py": text.encode()}.get)

    assert counts(match(scanned(before, "eval(expr)"), scanned(after, "eval(expr)"))) == (0, 0, 1)
    edited = before.replace("eval(expr)", "eval(expr2)")
    assert counts(match(scanned(before, "eval(expr)"), scanned(edited, "eval(expr2)"))) == (1, 1, 0)


def test_identity_findings_match_by_identity_regardless_of_line() -> None:
    def failing(line: int, node: str) -> Finding:
        return finding("tests/test_x.py", line, rule="test-failure", verifier="pytest", identity=node)

    text = "def test_a():\n    assert False\n" * 3
    old = annotate([failing(2, "tests/test_x.py::test_a")], {"tests/test_x.py": text.encode()}.get)
    new = annotate(
        [failing(40, "tests/test_x.py::test_a"), failing(50, "tests/test_x.py::test_b")],
        {"tests/test_x.py": ("\n" * 38 + text).encode()}.get,
    )
    result = match(old, new)
    assert counts(result) == (1, 0, 1)
    assert result.new[0].identity == "tests/test_x.py::test_b"
    assert new[0].fingerprint != new[1].fingerprint


def test_findings_without_source_match_by_github_hash_then_message() -> None:
    def sarif(line: int, partials: dict[str, str], message: str = "bad") -> Finding:
        return finding("x.js", line, rule="js/xss", verifier="codeql", message=message, partial_fingerprints=partials)

    old = annotate([sarif(3, {GITHUB_KEY: "abc:1"}), sarif(9, {}, "uses md5")], lambda p: None)
    new = annotate([sarif(30, {GITHUB_KEY: "abc:2"}), sarif(90, {}, "uses md5"), sarif(91, {}, "uses sha1")],
                   lambda p: None)
    result = match(old, new)
    assert counts(result) == (1, 0, 2)
    assert result.new[0].message == "uses sha1"
    again = annotate([sarif(30, {GITHUB_KEY: "abc:2"})], lambda p: None)
    assert again[0].fingerprint == new[0].fingerprint


def test_stored_fingerprints_survive_reannotation_without_source() -> None:
    scanned = scan({"a.py": BASE})
    stripped = [f.model_copy(update={"context_hash": "", "symbol": "", "fingerprint": ""}) for f in scanned]
    again = annotate(stripped, lambda p: None)
    assert again[0].fingerprint == scanned[0].fingerprint
    assert counts(match(scanned, again)) == (0, 0, 1)


def test_fingerprint_is_path_free_and_partial_fingerprints_are_emitted() -> None:
    one, two = scan({"a.py": BASE})[0], scan({"deep/b.py": BASE})[0]
    assert one.fingerprint == two.fingerprint
    assert len(one.fingerprint.split(":")[0]) == 32 and one.fingerprint.endswith(":0")
    assert one.partial_fingerprints[FINGERPRINT_KEY] == one.fingerprint.split(":")[0]
    line_hash = github_line_hashes(BASE.encode())[4]
    assert one.partial_fingerprints[GITHUB_KEY] == f"{line_hash}:1"
    assert one.symbol == "load"


def test_symbols_are_qualified_names() -> None:
    text = src('''
        class Outer:
            @staticmethod
            def method():
                def inner():
                    return eval("1")
                return eval("2")
        eval("3")
    ''')
    symbols = [f.symbol for f in scan({"s.py": text})]
    assert symbols == ["Outer.method.inner", "Outer.method", ""]
    decorated = annotate([finding("s.py", 2)], {"s.py": text.encode()}.get)
    assert decorated[0].symbol == "Outer.method"


def test_text_files_and_untokenizable_python_fall_back_to_whitespace_free_lines() -> None:
    js_before = "function f(x) {\n  return eval(x);\n}\n"
    js_after = "// header\nfunction f(x) {\n      return   eval( x );\n}\n"
    assert counts(diff({"f.js": js_before}, {"f.js": js_after})) == (0, 0, 1)
    broken = "def f(:\n    eval(x)\n"
    assert counts(diff({"b.py": broken}, {"b.py": "\n\n" + broken.replace("    ", "\t")})) == (0, 0, 1)
    assert counts(diff({"f.js": js_before}, {"f.js": js_before.replace("eval(x)", "eval(y)")})) == (1, 1, 0)


def test_findings_inside_a_multiline_string_use_their_own_line() -> None:
    text = 'DOC = """\npassword = "a"\npassword = "b"\n"""\n'
    found = scan({"d.py": text}, needle="password")
    assert len({f.context_hash for f in found}) == 2
    edited = text.replace('"b"', '"c"')
    assert counts(match(found, scan({"d.py": edited}, needle="password"))) == (1, 1, 1)


def test_diff_lists_are_sorted_and_independent_of_input_order() -> None:
    files = {"b.py": BASE, "a.py": BASE + "\n\ndef x(s):\n    eval(s)\n"}
    old, new = scan({"a.py": BASE}), scan(files)
    forward, backward = match(old, new), match(list(reversed(old)), list(reversed(new)))
    assert forward == backward
    assert [(f.path, f.start_line) for f in forward.new] == [("a.py", 14), ("b.py", 5)]


def test_files_with_the_same_content_give_what_full_matching_gives() -> None:
    """A gate names the files whose content did not change: their alike findings are settled without
    keying them, and everything else is matched in full. The result must not depend on that shortcut."""
    third = BASE + "\n\ndef z(s):\n    eval(s)\n"
    old = scan({"a.py": BASE, "b.py": BASE, "c.py": BASE, "gone.py": BASE})
    new = scan({"a.py": BASE, "b.py": third, "c.py": BASE, "d.py": BASE})
    # the head reuses the base's own findings where the content is the same, as a gate's head scan does
    reused = [f for f in old if f.path in ("a.py", "c.py")] + [f for f in new if f.path not in ("a.py", "c.py")]
    # c.py: the same content, but a tool reported one finding fewer: not settled, matched in full
    reused = [f for f in reused if not (f.path == "c.py" and f.start_line == 5)]
    files = {"before_files": ["a.py", "b.py", "c.py", "gone.py"], "after_files": ["a.py", "b.py", "c.py", "d.py"]}
    shortcut = match(old, reused, same_files=["a.py", "c.py"], **files)  # type: ignore[arg-type]
    assert shortcut == match(old, reused, **files)  # type: ignore[arg-type]
    assert [(f.path, f.start_line) for f in shortcut.new] == [("b.py", 14)]
    assert [(f.path, f.start_line) for f in shortcut.fixed] == [("c.py", 5)]
    assert [f.path for f in shortcut.unchanged] == ["a.py", "b.py", "d.py"]  # gone.py moved to d.py


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["c129715d7a2bc9a3"]),
        (" a\nb\n  \t\tc\n d", ["271789c17abda88f", "54703d4cd895b18", "180aee12dab6264", "a23a3dc5e078b07b"]),
        (
            " hello; \t\nworld!!!\r\n\n\r  \t\tGreetings\r End\r\n",
            ["e9496ae3ebfced30", "fb7c023a8b9ccb3f", "ce8ba1a563dcdaca", "e20e36e16fcb0cc8",
             "b3edc88f2938467e", "c8e28b0b4002a3a0", "c129715d7a2bc9a3"],
        ),
        (
            "x = 2\nx = 1\nprint(x)\nx = 3\nprint(x)\nx = 4\nprint(x)\n",
            ["e54938cc54b302f1", "bb609acbe9138d60", "1131fd5871777f34", "5c482a0f8b35ea28",
             "54517377da7028d2", "2c644846cb18d53e", "f1b89f20de0d133", "c129715d7a2bc9a3"],
        ),
        (
            "Lorem ipsum dolor sit amet.\n" * 10,
            ["a7f2ff13bc495cf2"] * 6
            + ["a7f2ff1481e87703", "a9cf91f7bbf1862b", "55ec222b86bcae53", "cc97dc7b1d7d8f7b", "c129715d7a2bc9a3"],
        ),
    ],
)
def test_github_line_hash_matches_codeql_action_reference_vectors(text: str, expected: list[str]) -> None:
    assert github_line_hashes(text.encode()) == expected


def test_github_occurrence_counts_repeated_lines_from_one() -> None:
    text = "Lorem ipsum dolor sit amet.\n" * 10
    found = annotate([finding("l.txt", 1), finding("l.txt", 3)], {"l.txt": text.encode()}.get)
    assert [f.partial_fingerprints[GITHUB_KEY] for f in found] == ["a7f2ff13bc495cf2:1", "a7f2ff13bc495cf2:3"]


# ---- properties over generated modules ---------------------------------------------------------

_NAMES = st.sampled_from(["a", "b", "data", "path"])
_SIMPLE = st.one_of(
    _NAMES.map(lambda n: f"x = eval({n})"),
    _NAMES.map(lambda n: f"y = open({n}).read()"),
    _NAMES.map(lambda n: f"print(eval('s'), {n})"),
    _NAMES.map(lambda n: f"call(\n    eval({n}),\n    'k',\n)"),
    _NAMES.map(lambda n: f"z = [\n    {n},\n    eval({n}),\n]"),
    st.just("pass"),
)


def _indent(lines: list[str]) -> list[str]:
    return ["    " + line for block in lines for line in block.splitlines()]


def _blocks(depth: int) -> st.SearchStrategy[str]:
    if depth == 0:
        return _SIMPLE
    body = st.lists(_blocks(depth - 1), min_size=1, max_size=3).map(_indent)
    return st.one_of(
        _SIMPLE,
        st.tuples(_NAMES, body).map(lambda t: "\n".join([f"if {t[0]}:", *t[1]])),
        st.tuples(_NAMES, body).map(lambda t: "\n".join([f"def f_{t[0]}(a, b):", *t[1]])),
        st.tuples(_NAMES, body).map(lambda t: "\n".join([f"class C_{t[0]}:", "    def m(self, a, b):",
                                                         *_indent(t[1])])),
    )


_MODULES = st.lists(_blocks(2), min_size=1, max_size=6).map(lambda blocks: "\n".join(blocks) + "\n")


def _analyse(text: str) -> list[Finding]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        for needle, rule in (("eval(", "S307"), ("open(", "SIM115")):
            if needle in line:
                found.append(finding("gen.py", number, rule))
    return annotate(found, {"gen.py": text.encode()}.get)


@settings(max_examples=150, deadline=None)
@given(_MODULES)
def test_property_a_module_matches_itself(text: str) -> None:
    compile(text, "gen.py", "exec")
    found = _analyse(text)
    result = match(found, _analyse(text))
    assert (result.new, result.fixed, len(result.unchanged)) == ([], [], len(found))


@settings(max_examples=150, deadline=None)
@given(_MODULES, st.lists(st.tuples(st.integers(0, 200), st.sampled_from(["", "  ", "# note", "        # x"]))))
def test_property_blank_and_comment_lines_never_change_the_diff(
    text: str, insertions: list[tuple[int, str]]
) -> None:
    lines = text.splitlines()
    for position, extra in insertions:
        lines.insert(position % (len(lines) + 1), extra)
    mutated = "\n".join(lines) + "\n"
    compile(mutated, "gen.py", "exec")
    result = match(_analyse(text), _analyse(mutated))
    assert (result.new, result.fixed) == ([], [])


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\'\""), max_size=30))
def test_property_quoting_and_prefixes_of_a_string_never_matter(value: str) -> None:
    spellings = [f"x = eval('{value}')", f'x = eval("{value}")', f"x = eval(r'{value}')",
                 f'x = eval(U"""{value}""")', f"x = eval('{value[:3]}' '{value[3:]}')"]
    contexts = {scan({"q.py": text + "\n"})[0].context_hash for text in spellings}
    assert len(contexts) == 1


@settings(max_examples=100, deadline=None)
@given(_MODULES)
def test_property_reindenting_the_module_never_changes_the_diff(text: str) -> None:
    wrapped = "if True:\n" + "\n".join(_indent([text])) + "\n"
    result = match(_analyse(text), _analyse(wrapped))
    assert (result.new, result.fixed) == ([], [])


def test_annotating_a_large_scan_holds_one_file_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full scan of a large repository has findings in thousands of files: their contents and parses are let go
    file by file, not kept to the end (a 28k-file repository needed 7.8 GB when they were)."""
    import gc
    import weakref

    from truthplane.truth import _tokens

    made: list[weakref.ref[object]] = []
    most = 0

    def load_shared(path: str, content: bytes) -> object:
        parsed = _tokens.load(path, content)
        made.append(weakref.ref(parsed))
        return parsed

    monkeypatch.setattr(_tokens, "load_shared", load_shared)
    files = {f"pkg/m{n}.py": f"import os\n\n\ndef f{n}(x):\n    return eval(x)\n\n\ndef g{n}(y):\n    return eval(y)\n"
             for n in range(40)}

    def read(path: str) -> bytes | None:
        nonlocal most
        gc.collect()
        most = max(most, sum(1 for ref in made if ref() is not None))
        return files[path].encode()

    found = [finding(path, line) for path in sorted(files) for line in (5, 9)]
    annotated = annotate(list(reversed(found)), read)
    assert most <= 1  # when a file is read, no other file's parse is held any more
    # the same identities as annotating each file on its own, in the order given
    each = [f for path in sorted(files)
            for f in annotate([finding(path, 5), finding(path, 9)], lambda p: files[p].encode())]
    assert [f.fingerprint for f in annotated] == [f.fingerprint for f in reversed(each)]
    assert {f.fingerprint.split(":")[1] for f in annotated} == {"0"}


def test_a_change_of_many_files_is_parsed_once_for_all_the_verifiers_that_annotate_it(monkeypatch) -> None:
    """Each verifier of a gate annotates the changed files in turn: a hundred files must not be parsed (nor hashed
    the way GitHub does) again by each of them."""
    from truthplane.truth import _github_hash, _tokens

    parsed: list[str] = []
    hashed: list[bytes] = []
    load, numbered = _tokens.load, _github_hash._numbered
    monkeypatch.setattr(_tokens, "load", lambda path, content: parsed.append(path) or load(path, content))
    monkeypatch.setattr(_github_hash, "_numbered", lambda content: hashed.append(content) or numbered(content))
    files = {f"pkg/m{n}.py": f"def f{n}(x):\n    return eval(x + {n!r})\n".encode() for n in range(100)}
    findings = [Finding(verifier=verifier, rule_id="R", message="m", path=path, start_line=2, end_line=2,
                        severity=Severity.HIGH) for verifier in ("ruff", "bandit", "semgrep") for path in files]
    for verifier in ("ruff", "bandit", "semgrep"):  # one annotation per verifier, as a scan makes them
        annotate([f for f in findings if f.verifier == verifier], files.get)
    assert sorted(parsed) == sorted(files)
    assert len(hashed) <= len(files)


def test_what_is_shared_is_made_once_however_many_threads_ask_and_kept_within_its_budget() -> None:
    import threading
    import time

    from truthplane.truth._tokens import Shared

    made: list[str] = []

    def make(key: str) -> str:
        made.append(key)
        time.sleep(0.05)  # long enough for every thread to ask while the first makes it
        return key.upper()

    shared: Shared[str, str] = Shared(make, budget=10)
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(shared.get("a", 4))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == ["A"] * 4 and made == ["a"]
    shared.get("b", 4)
    shared.get("c", 4)  # 12 bytes over the budget of 10: the least recently used ("a") is dropped
    assert shared.get("c", 4) == "C" and made == ["a", "b", "c"]
    shared.get("a", 4)
    assert made == ["a", "b", "c", "a"]
    assert shared.get("huge", 11) == "HUGE" and shared.get("huge", 11) == "HUGE"  # never kept: made each time
    assert made.count("huge") == 2


def test_only_the_statements_a_finding_asks_about_are_normalised_and_as_they_were_read_whole() -> None:
    """A changed file's statements are normalised when a fingerprint asks for them (those a finding is on, and
    next to): the tokens are what normalising every statement as the file is read gives."""
    from truthplane.truth import _tokens

    text = textwrap.dedent('''\
        import os
        X = (1_000, 0x1F, 0o17, 1e3, 00, 7)
        def f(a, b,):
            s = rb"\\x00" f"{a!r:>{b}}" 'c' "d"
            return (a +
                    b), s
        class K:
            y = [i for i in (X)]; z = u"\\N{BULLET}"
    ''')
    source = _tokens.load("m.py", text.encode())
    assert all("tokens" not in logical.__dict__ for logical in source.logical)  # nothing normalised yet
    context = _tokens.python_context(source, 5, 6, None, None)
    asked = {index for index, logical in enumerate(source.logical) if "tokens" in logical.__dict__}
    assert asked == {source.line_to_logical[5]}
    for logical in source.logical:
        eager = _tokens.normalise_tokens(list(logical.raw), source.lines)
        assert list(logical.tokens) == eager
    assert context == "\x1f".join(tok.text for tok in source.logical[source.line_to_logical[5]].tokens)
    numbers = [tok.text for tok in source.logical[1].tokens]
    assert numbers == ["X", "=", "1000", ",", "31", ",", "15", ",", "1000.0", ",", "0", ",", "7"]
