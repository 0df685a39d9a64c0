"""A gate that only counts what the change left alone (`carry`) judges exactly as one that lists everything.

With `carry`, the findings on files both states have alike are neither decoded nor listed on either side; the
verdict, reasons, new, fixed, updated findings and every count must be the same as without it, whatever the change.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.config import load_config
from truthplane.models import Finding, GateResult, Severity
from truthplane.truth.cache import ResultCache
from truthplane.truth.pipeline import ScanOptions, gate

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bandit")]

A = ("import os\nimport json  # noqa: F401\n\n\ndef run(text):\n    return eval(text)\n\n\n"
     "def size(path):\n    return os.path.getsize(path)\n")
B = ("import subprocess\nimport sys\n\n\ndef call(cmd):\n    return subprocess.call(cmd, shell=True)\n\n\n"
     "def argv():\n    return sys.argv\n")
C = "import re\n\n\ndef words(text):\n    return re.findall(r'\\w+', text)\n"
D = "import pickle\n\n\ndef load(blob):\n    return pickle.loads(blob)\n"
E = "import hashlib\n\n\ndef digest(data):\n    return hashlib.md5(data).hexdigest()\n"
FILES = {"pkg/a.py": A, "pkg/b.py": B, "pkg/c.py": C, "pkg/d.py": D, "pkg/e.py": E,
         "pkg/same1.py": A.replace("run", "run1"), "pkg/same2.py": B.replace("call", "call2"),
         "pyproject.toml": "[project]\nname = 'x'\nversion = '1'\n"}


def _edit(root: Path) -> None:
    (root / "pkg/a.py").write_text(A + "\n\ndef again(text):\n    return eval(text + '1')\n")


def _move(root: Path) -> None:
    # a flagged function moves from one file that stays to another
    (root / "pkg/b.py").write_text("import sys\n\n\ndef argv():\n    return sys.argv\n")
    (root / "pkg/c.py").write_text("import subprocess\n" + C + "\n\ndef call(cmd):\n"
                                   "    return subprocess.call(cmd, shell=True)\n")


def _delete_rename_untracked(root: Path) -> None:
    (root / "pkg/d.py").unlink()
    git(root, "mv", "pkg/e.py", "pkg/renamed.py")
    (root / "pkg/new.py").write_text("import os\n\n\ndef shell(cmd):\n    return os.system(cmd)\n")


def _suppress(root: Path) -> None:
    (root / "pkg/a.py").write_text(A.replace("return eval(text)", "return eval(text)  # nosec B307"))


def _configure(root: Path) -> None:
    (root / "pyproject.toml").write_text(
        "[project]\nname = 'x'\nversion = '1'\n\n[tool.ruff.lint]\nignore = ['F401']\n")
    _edit(root)


def _committed(root: Path) -> None:
    _move(root)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "moved")


CHANGES: dict[str, Callable[[Path], None]] = {
    "edit": _edit, "move": _move, "delete, rename, untracked": _delete_rename_untracked, "suppress": _suppress,
    "configure": _configure, "committed": _committed,
}


def _judged(result: GateResult) -> dict[str, object]:
    def keys(findings: list[Finding]) -> list[tuple[str, str, str, int | None]]:
        return sorted((f.verifier, f.path, f.fingerprint, f.start_line) for f in findings)

    return {
        "verdict": result.verdict, "reasons": result.reasons, "new": keys(result.new), "fixed": keys(result.fixed),
        "updated": keys(result.updated), "silenced": keys(result.silenced_by_config),
        "added": keys(result.added_by_config), "unchanged": result.unchanged_count,
        "suppressed": result.suppressed_count,
        "verifiers": [(r.name, r.status, r.count) for r in result.verifiers],
    }


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_gate_that_carries_judges_as_one_that_lists_everything(make_repo, tmp_path: Path, change: str) -> None:
    root = make_repo(FILES)
    git(root, "checkout", "-qb", "feature")
    CHANGES[change](root)
    head = "HEAD" if change == "committed" else None
    options = ScanOptions(only=["ruff", "bandit"], cache_dir=tmp_path / "cache")

    def judged(carry: bool) -> GateResult:
        return gate(root, load_config(root), options, base_ref="main", head_ref=head, carry=carry)

    carried_cold = judged(True)  # the base's tree is not in the cache yet: scanned, stored, then split
    carried_warm = judged(True)  # read from the cache, the files alike left undecoded
    full = judged(False)
    shutil.rmtree(tmp_path / "cache")
    full_cold = judged(False)
    assert full.complete and full_cold.complete
    assert _judged(full) == _judged(full_cold)
    assert _judged(carried_cold) == _judged(full)
    assert _judged(carried_warm) == _judged(full)
    assert full.unchanged_count == len(full.unchanged) > 0
    if change == "configure":  # weighing a configuration change needs every finding: nothing is carried
        assert carried_warm.complete and len(carried_warm.unchanged) == len(full.unchanged)
        assert full.silenced_by_config or full.added_by_config
    else:
        assert not carried_warm.complete and len(carried_warm.unchanged) < full.unchanged_count


def test_a_gate_that_carries_cannot_be_written_out_as_a_list(make_repo, tmp_path: Path) -> None:
    from truthplane.cli import render
    from truthplane.cli.ci_formats import head_findings

    root = make_repo(FILES)
    _edit(root)
    result = gate(root, load_config(root), ScanOptions(only=["ruff"], cache_dir=tmp_path / "cache"), base_ref="main",
                  carry=True)
    assert not result.complete
    for lists in (render.gate_json, render.gate_sarif, head_findings):
        with pytest.raises(ValueError, match="without listing them"):
            lists(result)
    assert f"{result.unchanged_count} unchanged" in render.gate_markdown(result)


def test_the_cli_counts_in_text_and_lists_in_json_the_same_findings(make_repo, tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from truthplane.cli.main import run

    root = make_repo(FILES)
    _edit(root)
    args = ["gate", str(root), "--base", "main", "--verifier", "ruff", "--verifier", "bandit",
            "--cache-dir", str(tmp_path / "cache")]
    listed = run([*args, "--format", "json"])
    document = json.loads(capsys.readouterr().out)
    counted = run(args)
    text = capsys.readouterr().out
    assert listed == counted == 3, text
    assert f"({len(document['new'])} new, 0 fixed, {len(document['unchanged'])} unchanged)" in text
    assert len(document["unchanged"]) > 10


def _finding(path: str, line: int, suppressed: bool = False) -> Finding:
    return Finding(verifier="ruff", rule_id="F401", severity=Severity.LOW, message="m", path=path, start_line=line,
                   fingerprint=f"{path}:{line}", suppressed="inSource" if suppressed else None)


def test_a_tree_entry_decodes_only_what_is_needed_and_counts_the_rest(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    findings = [_finding("a.py", 1), _finding("b.py", 1), _finding("b.py", 2, suppressed=True), _finding("c.py", 3)]
    cache.put_tree("k", findings)
    fresh = ResultCache(tmp_path)
    entry = fresh.get_tree("k", {"a.py", "c.py", "clean.py"})
    assert entry is not None
    assert sorted((f.path, f.start_line) for f in entry.findings) == [("a.py", 1), ("c.py", 3)]
    assert (entry.carried_active, entry.carried_suppressed) == (1, 1)
    whole = fresh.get_tree("k")
    assert whole is not None and sorted(whole.findings, key=lambda f: (f.path, f.start_line or 0)) == findings
    assert (whole.carried_active, whole.carried_suppressed) == (0, 0)
    assert fresh.get_tree("other") is None
    cache.put_tree("k", findings[:1])  # stored again: the earlier files are gone with it
    again = ResultCache(tmp_path).get_tree("k")
    assert again is not None and again.findings == findings[:1]


@pytest.mark.parametrize("damage", ["file", "totals", "missing file"])
def test_a_damaged_tree_entry_is_a_miss_and_is_dropped(tmp_path: Path, damage: str) -> None:
    import sqlite3

    cache = ResultCache(tmp_path)
    cache.put_tree("k", [_finding("a.py", 1), _finding("b.py", 1)])
    conn = sqlite3.connect(cache.path)
    if damage == "file":
        body = conn.execute("SELECT body FROM tree_files WHERE tree = 'k' AND path = 'b.py'").fetchone()[0]
        conn.execute("UPDATE tree_files SET body = ? WHERE tree = 'k' AND path = 'b.py'",
                     (body.replace(b"b.py", b"x.py"),))
    elif damage == "totals":
        conn.execute("UPDATE results SET body = ? WHERE key = 'k'", (b'{"active": 9}',))
    else:
        conn.execute("DELETE FROM tree_files WHERE tree = 'k' AND path = 'a.py'")
    conn.commit()
    conn.close()
    assert ResultCache(tmp_path).get_tree("k", None if damage == "missing file" else {"b.py"}) is None
    conn = sqlite3.connect(cache.path)
    assert conn.execute("SELECT count(*) FROM results WHERE key = 'k'").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM tree_files WHERE tree = 'k'").fetchone()[0] == 0
    conn.close()


def test_a_long_lived_process_decodes_a_tree_once_and_splits_it_from_memory(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from truthplane.truth import cache as result_cache

    findings = [_finding("a.py", 1), _finding("b.py", 1), _finding("b.py", 2, suppressed=True)]
    ResultCache(tmp_path).put_tree("k", findings)
    monkeypatch.setattr(result_cache, "_memory", None)
    monkeypatch.setattr(result_cache, "_memory_size", 0)
    result_cache.remember_in_memory()
    first = ResultCache(tmp_path).get_tree("k", {"a.py"})
    (tmp_path / "results.sqlite3").unlink()  # from now on only the memory can answer
    again = ResultCache(tmp_path).get_tree("k", {"b.py"})
    assert first is not None and [f.path for f in first.findings] == ["a.py"]
    assert (first.carried_active, first.carried_suppressed) == (1, 1)
    assert again is not None and [f.path for f in again.findings] == ["b.py", "b.py"]
    assert (again.carried_active, again.carried_suppressed) == (1, 0)


def test_a_verifier_whose_every_file_changed_has_nothing_to_carry(make_repo, tmp_path: Path) -> None:
    """Files alike on both sides that no verifier reads (a README) carry nothing for it: both sides say so."""
    root = make_repo({"app.py": B, "README.md": "# app\n", "docs/index.md": "docs\n"})
    git(root, "checkout", "-qb", "feature")
    (root / "app.py").write_text(B + "\n\ndef again(text):\n    return eval(text)\n")
    options = ScanOptions(only=["ruff", "bandit"], cache_dir=tmp_path / "cache")
    judged = [gate(root, load_config(root), options, base_ref="main", carry=carry) for carry in (True, True, False)]
    assert _judged(judged[0]) == _judged(judged[1]) == _judged(judged[2])
    assert judged[1].complete and judged[2].new


def test_a_configuration_change_the_first_look_missed_is_judged_again_with_every_finding(
        make_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Which files configure a verifier is first guessed from their names; should the change review still find a
    configuration change after a gate that carried, the gate is made again without carrying."""
    from truthplane.truth import pipeline

    root = make_repo(FILES)
    git(root, "checkout", "-qb", "feature")
    # truthplane's own setting: no verifier's configuration hash changes with it, so every verifier would carry
    (root / "truthplane.toml").write_text('exclude = ["pkg/same2.py"]\n')
    _edit(root)
    options = ScanOptions(only=["ruff", "bandit"], cache_dir=tmp_path / "cache")
    full = gate(root, load_config(root), options, base_ref="main")
    guessed = []

    def missed(base, head, verifiers):  # noqa: ANN001, ANN202 - the guess that overlooks the configuring file
        guessed.append(True)
        return frozenset(p for p, blob in head.files.items() if base.files.get(p) == blob)

    monkeypatch.setattr(pipeline, "_alike", missed)
    again = gate(root, load_config(root), options, base_ref="main", carry=True)
    assert guessed == [True]  # the second gate carries nothing, so it does not guess
    assert again.complete and _judged(again) == _judged(full)
    assert full.silenced_by_config  # the excluded file's findings: silenced by the change, not fixed


@pytest.mark.parametrize("change", ["edit", "delete, rename, untracked", "committed"])
def test_a_warm_gate_that_carries_goes_through_the_paths_that_differ_not_every_file(
        make_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    """A one-file change of a large repository costs a gate its tools on that file, not a pass over every path of
    both states for each verifier: once the base's counts are kept, no listing by suffix is made at all."""
    from truthplane.truth.sources import Source

    root = make_repo(FILES)
    git(root, "checkout", "-qb", "feature")
    CHANGES[change](root)
    options = ScanOptions(only=["ruff", "bandit"], cache_dir=tmp_path / "cache")

    def judged(carry: bool) -> GateResult:
        return gate(root, load_config(root), options, base_ref="main", carry=carry)

    judged(False)
    full = judged(False)  # every file in the cache by now, as for the gates below
    judged(True)  # a first gate against this base keeps its counts
    listed: list[int] = []
    suffixed = Source.suffixed
    monkeypatch.setattr(Source, "suffixed", lambda self, suffixes: listed.append(len(self.files)) or suffixed(
        self, suffixes))
    warm = judged(True)
    assert listed == []
    assert _judged(warm) == _judged(full) and not warm.complete
    assert [(r.name, r.cached_files, r.scanned_files) for r in warm.verifiers] == [
        (r.name, r.cached_files, r.scanned_files) for r in full.verifiers]
