"""`truthplane report RUN_ID --html FILE`: one self-contained page, escaped, rendered by a real headless chromium
that makes no request on the page's behalf."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.change.test_loop import CALC, REPRO, RIGHT, TESTS, WRONG
from tests.evidence.test_ledger import private_env, run_all_record  # noqa: F401
from truthplane.cli.main import run
from truthplane.change.record import write_execution

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bwrap")]
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "h4", "p", "table", "tr", "th", "td",
        "span", "section", "pre", "code"}
ATTRIBUTES = {"lang", "charset", "class", "colspan"}


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.css = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)
        self._in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css += data


def assert_self_contained(page: str) -> None:
    """Only plain markup: no script, image, frame or link element, no attribute that loads anything, no CSS url()."""
    markup = _Markup()
    markup.feed(page)
    assert markup.tags <= TAGS, markup.tags - TAGS
    assert markup.attributes <= ATTRIBUTES, markup.attributes - ATTRIBUTES
    assert markup.css and not re.search(r"(?i)url\(|@import", markup.css)


@pytest.fixture
def fix_run(make_repo, tmp_path: Path, capsys, monkeypatch) -> tuple[Path, dict]:
    root = make_repo(
        {"calc.py": CALC, "tests/test_calc.py": TESTS, "truthplane.toml": 'verifiers = ["ruff", "pytest"]\n'}
    )
    (tmp_path / "right.diff").write_text(RIGHT)
    (tmp_path / "wrong.diff").write_text(WRONG)
    monkeypatch.chdir(root)
    code = run(["fix", str(root / "calc.py"), "--repro-cmd", REPRO, "--repro-runs", "1", "--test-cmd",
                "python -m pytest -q", "--candidate", str(tmp_path / "right.diff"), "--candidate",
                str(tmp_path / "wrong.diff"), "--commit", "--format", "json"])
    doc = json.loads(capsys.readouterr()[0])
    assert code == 0 and doc["commit"], doc
    return root, json.loads((root / doc["evidence"]).read_text())


def report(capsys, root: Path, run_id: str) -> str:
    out = root.parent / "report.html"
    code = run(["report", run_id, "--html", str(out)])
    assert code == 0 and f"wrote {out}" in capsys.readouterr()[0]
    return out.read_text()


def test_the_report_shows_verdicts_diffs_outputs_and_evidence(fix_run, capsys) -> None:
    root, record = fix_run
    page = report(capsys, root, record["run_id"])
    right = next(t for t in record["tasks"] if t["task_id"].endswith("right.diff"))
    assert page.startswith("<!DOCTYPE html>") and not re.search("https?://", page)
    assert_self_contained(page)
    assert (
        '<span class="verdict APPROVE">APPROVE</span>' in page and '<span class="verdict REJECT">REJECT</span>' in page
    )
    before, after = "    return sum(values) / len(values) + 1", "    return sum(values) / len(values)"
    assert (f'<td class="n">2</td><td class="del">{before}</td><td class="n">2</td><td class="add">{after}</td>'
            in page)  # one row: before on the left, after on the right
    assert "test-failure" in page  # the fixed finding
    assert "python -m pytest -q" in page and "passed" in page  # test output
    assert "python -c &#x27;from calc import mean" in page  # the reproduction command, escaped
    assert right["git_evidence"]["commit_sha"] in page and right["modifications"][0]["sha256_after"] in page
    assert record["record_hash"] in page and f"truthplane verify {record['run_id']}" in page


def test_everything_from_the_record_is_escaped(make_repo, capsys, monkeypatch) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    hostile = "<script>alert(1)</script>"
    diff = "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = '<img src=x onerror=alert(1)>'\n"
    record = run_all_record([{"task_id": hostile, "title": hostile, "reason": '"><iframe src=https://evil.example>',
                              "output": "</pre><link href=http://x>", "logs": {"diff": diff}}])
    write_execution(root, record)
    monkeypatch.chdir(root)
    page = report(capsys, root, record["run_id"])
    assert_self_contained(page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "x = &#x27;&lt;img src=x onerror=alert(1)&gt;&#x27;" in page


def _chromium(page: Path, work: Path, *extra: str) -> tuple[str, list[str]]:
    """(the DOM chromium rendered, URLs it requested on the page's behalf)."""
    netlog = work / "netlog.json"
    proc = subprocess.run(
        [shutil.which("chromium") or "chromium", "--headless", "--no-sandbox", "--disable-gpu",
         f"--user-data-dir={work / 'profile'}", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", '--host-resolver-rules=MAP * ~NOTFOUND',
         f"--log-net-log={netlog}", *extra, page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    requested = [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job and event.get("params", {}).get("initiator") not in (None, "not an origin")
    ]
    return proc.stdout, requested  # the browser's own background traffic has no page initiator


@pytest.mark.tool("chromium")
def test_chromium_renders_the_report_without_any_request(fix_run, capsys, tmp_path: Path) -> None:
    root, record = fix_run
    page = tmp_path / "report.html"
    page.write_text(report(capsys, root, record["run_id"]))
    dom, requested = _chromium(page, tmp_path / "a", "--dump-dom")
    assert requested == []
    assert f"truthplane fix run {record['run_id']}" in dom and "APPROVE" in dom
    assert '<table class="diff">' in dom and "<th>before</th>" in dom and "<th>after</th>" in dom
    shot = tmp_path / "report.png"
    _, requested = _chromium(page, tmp_path / "b", f"--screenshot={shot}", "--window-size=1280,2000")
    assert requested == [] and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


@pytest.mark.tool("chromium")
def test_the_request_check_sees_a_page_that_does_reach_out(tmp_path: Path) -> None:
    page = tmp_path / "leaky.html"
    page.write_text('<!DOCTYPE html><img src="http://example.invalid/x.png"><link rel="stylesheet" '
                    'href="https://cdn.example.invalid/a.css"><p>leaky</p>')
    dom, requested = _chromium(page, tmp_path / "c", "--dump-dom")
    assert "leaky" in dom
    assert set(requested) == {"http://example.invalid/x.png", "https://cdn.example.invalid/a.css"}


def test_the_report_reads_winner_first_with_no_blank_field(make_repo, tmp_path: Path, capsys, monkeypatch) -> None:
    root = make_repo({"calc.py": CALC, "tests/test_calc.py": TESTS, "truthplane.toml": 'verifiers = ["ruff"]\n'})
    (tmp_path / "wrong.diff").write_text(WRONG)
    (tmp_path / "right.diff").write_text(RIGHT)
    monkeypatch.chdir(root)
    code = run(["fix", str(root / "calc.py"), "--repro-cmd", REPRO, "--repro-runs", "1", "--no-autofix",
                "--test-cmd", "python -m pytest -q -p no:cacheprovider", "--candidate", str(tmp_path / "wrong.diff"),
                "--candidate", str(tmp_path / "right.diff"), "--format", "json"])
    doc = json.loads(capsys.readouterr()[0])
    assert code == 0 and doc["winner"].endswith("right.diff"), doc
    record = json.loads((root / doc["evidence"]).read_text())
    assert [t["task_id"] for t in record["tasks"]][0].endswith("wrong.diff")  # judged in the order given
    page = report(capsys, root, record["run_id"])
    assert_self_contained(page)
    cards = page.split('<section class="task')[1:]
    assert (
        cards[0].startswith(' winner">') and "right.diff" in cards[0] and '<span class="mark">winner</span>' in cards[0]
    )
    assert "wrong.diff" in cards[1] and 'class="mark"' not in cards[1]
    assert "right.diff (winner)" in page.split("<h2>Verdicts</h2>")[1].split("</table>")[0]
    assert "exit before the patch 1, after [0]" in page  # the tests' exit code before any patch is recorded
    assert "output before the patch (it failed then)" in page and "test_mean" in page
    assert "the reproduction" in page.split("<h2>Verdicts</h2>")[0]  # the target, in the header
    assert "none: the target is the reproduction" in page
    fields = re.sub(r'<table class="diff">.*?</table>', "", page, flags=re.S)  # a diff's empty side is no field
    assert not re.search(r"<td( class=mono)?></td>|exit before ,|before the patch , ", fields)
