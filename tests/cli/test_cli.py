"""End to end through the CLI with the real analysers: what a user would see."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git
from tests.truth.test_sarif import validate_sarif
from truthplane.cli.main import run

CLEAN = "import subprocess\n\n\ndef run(args):\n    return subprocess.run(args, check=True)\n"
RISKY = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
FAST = ["--verifier", "ruff", "--verifier", "bandit"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def tp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed command in a child process: for exit codes and the absence of tracebacks."""
    return subprocess.run([sys.executable, "-m", "truthplane", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=300)


pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bandit")]


def test_baseline_then_change_then_fix(make_repo, capsys) -> None:
    root = make_repo({"app/tool.py": CLEAN, "app/other.py": "x = eval(input())\n"})
    code, out, _ = cli(capsys, "scan", str(root), "--baseline", *FAST)
    assert code == 0, out
    baselines = list((root / ".truth-plane-results").glob("baseline_*.json"))
    assert len(baselines) == 1
    sarif_files = sorted(p.name for p in (root / ".sarif-results").glob("*.sarif"))
    assert sarif_files == ["bandit.sarif", "ruff.sarif"]
    for path in (root / ".sarif-results").glob("*.sarif"):
        validate_sarif(json.loads(path.read_text()))

    code, out, _ = cli(capsys, "scan", str(root), *FAST, "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["verdict"] == "APPROVE" and doc["new"] == [] and doc["unchanged"]
    assert {"verifier", "rule_id", "severity", "message", "path", "start_line", "end_line", "fingerprint"} <= set(
        doc["unchanged"][0]
    )

    (root / "app" / "tool.py").write_text("# moved down\n\n" + RISKY)
    code, out, _ = cli(capsys, "scan", str(root), *FAST, "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["verdict"] == "REJECT"
    assert {(f["verifier"], f["rule_id"], f["path"], f["start_line"]) for f in doc["new"]} >= {
        ("bandit", "B602", "app/tool.py", 7)
    }
    # the rewritten call is no longer the flagged code; the untouched import and other.py are unchanged
    assert {(f["rule_id"], f["path"]) for f in doc["fixed"]} <= {("B603", "app/tool.py")}
    assert {("B404", "app/tool.py")} <= {(f["rule_id"], f["path"]) for f in doc["unchanged"]}

    (root / "app" / "tool.py").write_text(CLEAN)
    (root / "app" / "other.py").write_text("x = int(input())\n")
    code, out, _ = cli(capsys, "scan", str(root), *FAST)
    assert code == 0 and "APPROVE" in out and "Fixed (" in out


def test_gate_on_a_branch_with_sarif_and_summary(make_repo, capsys, tmp_path: Path) -> None:
    root = make_repo({"pkg/a.py": "value = eval(input())\n" + "\n" * 3, "pkg/b.py": CLEAN})
    git(root, "checkout", "-qb", "feature")
    git(root, "mv", "pkg/a.py", "pkg/renamed.py")  # a rename keeps its finding's identity
    (root / "pkg" / "b.py").write_text(RISKY)
    git(root, "commit", "-qam", "feature work")
    sarif_out, summary_out = tmp_path / "out.sarif", tmp_path / "summary.md"
    summary_out.write_text("earlier step\n")
    code, out, err = cli(capsys, "gate", str(root), "--base", "main", *FAST,
                         "--sarif-out", str(sarif_out), "--summary-out", str(summary_out))
    assert code == 1, out + err
    assert "REJECT" in out and "B602" in out
    log = json.loads(sarif_out.read_text())
    validate_sarif(log)
    states = {(r["ruleId"], r["baselineState"]) for run_ in log["runs"] for r in run_["results"]}
    assert ("B602", "new") in states and ("B307", "unchanged") in states
    assert all(state != "new" for rule, state in states if rule in ("B307", "S307"))
    summary = summary_out.read_text()
    assert summary.startswith("earlier step\n") and "truthplane: REJECT" in summary and "| bandit |" in summary
    # the checkout is untouched
    assert git(root, "status", "--porcelain") == ""


def test_gate_includes_uncommitted_changes_and_approves_clean_work(make_repo, capsys) -> None:
    root = make_repo({"a.py": "value = eval(input())\n"})
    (root / "a.py").write_text("\n\n# comment\nvalue = eval(input())  # still here\n")
    code, out, _ = cli(capsys, "gate", str(root), "--base", "HEAD", *FAST, "--format", "json")
    doc = json.loads(out)
    assert code == 0, doc
    assert doc["verdict"] == "APPROVE" and doc["new"] == [] and len(doc["unchanged"]) >= 1
    assert "uncommitted" in doc["head"]


def test_diff_two_foreign_sarif_logs(tmp_path: Path, capsys) -> None:
    def log(*results: tuple[str, str, int]) -> dict:
        return {
            "version": "2.1.0",
            "runs": [
                {
                    "tool": {"driver": {"name": "OtherTool"}},
                    "results": [
                        {
                            "ruleId": rule,
                            "level": "error",
                            "message": {"text": rule},
                            "partialFingerprints": {"primaryLocationLineHash": f"{rule}:1"},
                            "locations": [
                                {"physicalLocation": {"artifactLocation": {"uri": path}, "region": {"startLine": line}}}
                            ],
                        }
                        for rule, path, line in results
                    ],
                }
            ],
        }
    before, after = tmp_path / "before.sarif", tmp_path / "after.sarif"
    before.write_text(json.dumps(log(("R1", "a.c", 3), ("R2", "a.c", 9))))
    after.write_text(json.dumps(log(("R1", "a.c", 30), ("R3", "b.c", 1))))
    code, out, _ = cli(capsys, "diff", str(before), str(after), "--format", "json")
    doc = json.loads(out)
    assert code == 1
    assert [f["rule_id"] for f in doc["new"]] == ["R3"]
    assert [f["rule_id"] for f in doc["fixed"]] == ["R2"]
    assert [f["rule_id"] for f in doc["unchanged"]] == ["R1"]
    code, out, _ = cli(capsys, "diff", str(before), str(after), "--format", "markdown")
    assert out.startswith("## ❌ truthplane: REJECT") and "| otherTool" not in out


@pytest.mark.parametrize("setup, args, code, needle", [
    ("plain-dir", ["gate", "{root}", "--base", "main"], 4, "not inside a git repository"),
    ("repo", ["gate", "{root}", "--base", "origin/main"], 4, "base ref 'origin/main' not found"),
    ("repo", ["scan", "{root}"], 4, "no baseline"),
    ("truncated-baseline", ["scan", "{root}"], 4, "is truncated"),
    ("bad-config", ["scan", "{root}", "--baseline"], 2, "truthplane.toml is not valid TOML"),
    ("repo", ["diff", "{root}/nope.json", "{root}/nope2.json"], 4, "no such file"),
    ("repo", ["scan", "{root}", "--verifier", "nosuch"], 2, "unknown verifier 'nosuch'"),
    ("repo", ["scan", "{root}/missing-dir", "--baseline"], 2, "does not exist"),
])
def test_bad_input_is_one_line_and_a_documented_exit_code(make_repo, tmp_path: Path, setup, args, code, needle) -> None:
    if setup == "plain-dir":
        root = tmp_path / "plain"
        root.mkdir()
    else:
        root = make_repo({"a.py": "x = 1\n"})
    if setup == "truncated-baseline":
        results = root / ".truth-plane-results"
        results.mkdir()
        (results / "baseline_20250101_000000.json").write_text('{"tool": "truthplane", "findings": [')
    if setup == "bad-config":
        (root / "truthplane.toml").write_text("verifiers = [\n")
    proc = tp(*[a.format(root=root) for a in args], cwd=tmp_path)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, needle", [
    (["gate", ".", "--no-such-option"], "No such option: --no-such-option"),
    (["scan", ".", "--format", "yaml"], "'yaml' is not one of"),
    (["no-such-command"], "No such command 'no-such-command'"),
])
def test_a_usage_error_is_a_usage_message_and_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    proc = tp(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and "Usage: truthplane" in proc.stderr
    assert "Traceback" not in proc.stderr and "unexpected" not in proc.stderr


def command_verifier_repo(make_repo, command: list[str], timeout: float | None = None) -> Path:
    extra = f"\ntimeout_s = {timeout}" if timeout else ""
    cfg = (f'[verifiers]\nenabled = ["ruff", "broken"]\n[verifiers.broken]\ntype = "command"\ncommand = '
           f'{json.dumps(command)}{extra}\n')
    return make_repo({"a.py": "x = 1\n", "truthplane.toml": cfg})


@pytest.mark.parametrize("command, timeout, needle", [
    (["no-such-tool-anywhere", "{files}"], None, "not installed"),
    ([sys.executable, "-c", "import time; time.sleep(60)"], 1, "timed out"),
    ([sys.executable, "-c", "print('garbage, not SARIF')"], None, "broken"),
    ([sys.executable, "-c", "import sys; sys.exit(70)"], None, "broken"),
])
def test_a_verifier_that_cannot_run_is_never_approval(make_repo, capsys, command, timeout, needle) -> None:
    root = command_verifier_repo(make_repo, command, timeout)
    code, out, _ = cli(capsys, "scan", str(root), "--baseline")
    assert code == 4
    assert needle in out
    code, out, _ = cli(capsys, "scan", str(root), "--format", "json")
    doc = json.loads(out)
    assert code == 4 and doc["verdict"] == "UNVERIFIED"
    broken = next(v for v in doc["verifiers"] if v["name"] == "broken")
    assert broken["status"] in ("missing", "failed", "timeout")


def test_awkward_files_do_not_break_a_scan(make_repo, capsys, tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("password = 'hunter2'\n")
    root = make_repo({
        "dir with space/my file.py": "x = eval(input())\n",
        "latin1.py": "s = 'caf\xe9'\n".encode("latin-1"),
        "blob.bin": bytes(range(256)) * 4,
        "fake.py": b"\x00\x01\x02binary\xff\xfe",
    })
    (root / "escape.py").symlink_to(outside)
    code, out, _ = cli(capsys, "scan", str(root), "--baseline", *FAST, "--format", "json")
    doc = json.loads(out)
    assert code == 0, doc["verifiers"]
    paths = {f["path"] for f in doc["findings"]}
    assert "dir with space/my file.py" in paths
    assert "escape.py" not in paths and not any("outside" in p for p in paths)
    code, out, _ = cli(capsys, "scan", str(root), *FAST)
    assert code == 0


def test_warm_cache_rescans_only_the_changed_file_and_survives_corruption(make_repo, capsys, tmp_path: Path) -> None:
    root = make_repo({f"m{i}.py": f"value_{i} = eval(input())\n" for i in range(6)})
    cli(capsys, "scan", str(root), "--baseline", *FAST)
    (root / "m0.py").write_text("value_0 = eval(input())\nother = 1\n")
    code, out, _ = cli(capsys, "scan", str(root), *FAST, "--format", "json")
    runs = {v["name"]: v for v in json.loads(out)["verifiers"]}
    assert code == 0
    assert runs["ruff"]["scanned_files"] == 1 and runs["ruff"]["cached_files"] == 5
    import sqlite3

    database = tmp_path / "cache" / "results.sqlite3"
    with sqlite3.connect(database) as conn:  # every entry damaged: a byte changed, or cut short
        conn.execute("UPDATE results SET body = substr(body, 1, length(body) - 3) || 'xyz'")
    code, out, _ = cli(capsys, "scan", str(root), *FAST, "--format", "json")
    doc = json.loads(out)
    assert code == 0 and len(doc["unchanged"]) >= 6
    assert {v["name"]: v["scanned_files"] for v in doc["verifiers"]} == {"ruff": 6, "bandit": 6}
    for suffix in ("", "-wal", "-shm"):  # the whole database replaced by garbage
        path = Path(f"{database}{suffix}")
        if path.exists():
            path.write_bytes(b"this is not a database" * 100)
    code, out, _ = cli(capsys, "scan", str(root), *FAST, "--format", "json")
    doc = json.loads(out)
    assert code == 0 and len(doc["unchanged"]) >= 6
    assert {v["name"]: v["scanned_files"] for v in doc["verifiers"]} == {"ruff": 6, "bandit": 6}
    code, out, _ = cli(capsys, "scan", str(root), *FAST, "--format", "json")
    assert {v["name"]: v["cached_files"] for v in json.loads(out)["verifiers"]} == {"ruff": 6, "bandit": 6}


def test_doctor_lists_every_verifier(make_repo, capsys) -> None:
    root = make_repo({"truthplane.toml": '[verifiers.ghost]\ntype = "command"\ncommand = ["no-such-ghost-tool"]\n'})
    code, out, _ = cli(capsys, "doctor", str(root))
    for name in ("ruff", "bandit", "semgrep", "mypy", "pytest", "pip-audit", "ghost", "local", "docker"):
        assert name in out
    assert "MISSING" in out and "no-such-ghost-tool is not installed" in out
    assert code == 4


def test_every_sarif_output_validates(make_repo, capsys, tmp_path: Path) -> None:
    root = make_repo({"a.py": "x = eval(input())\n"})
    code, out, _ = cli(capsys, "scan", str(root), "--baseline", *FAST, "--format", "sarif")
    assert code == 0
    validate_sarif(json.loads(out))
    (root / "a.py").write_text("x = eval(input())\ny = eval(input())\n")
    code, out, _ = cli(capsys, "scan", str(root), *FAST, "--format", "sarif", "--output", str(tmp_path / "scan.sarif"))
    assert code == 3 and out == ""  # bandit B307 is medium: REVIEW
    log = json.loads((tmp_path / "scan.sarif").read_text())
    validate_sarif(log)
    assert {r["baselineState"] for run_ in log["runs"] for r in run_["results"]} == {"new", "unchanged"}
    baseline = next((root / ".truth-plane-results").glob("baseline_*.json"))
    code, out, _ = cli(capsys, "diff", str(baseline), str(tmp_path / "scan.sarif"), "--format", "sarif")
    validate_sarif(json.loads(out))


def test_a_large_document_through_a_pipe_arrives_whole_with_the_exit_code(make_repo, tmp_path: Path) -> None:
    """The command leaves without the interpreter's teardown (cli.main._leave): what it printed must still
    arrive whole, however large, and the exit code be the verdict's."""
    many = "".join(f"import mod{i}\n" for i in range(400)) + "x = eval(input())\n"
    root = make_repo({f"pkg/m{i}.py": many for i in range(6)})
    git(root, "checkout", "-qb", "feature")
    (root / "pkg" / "new.py").write_text(many)
    proc = tp("gate", str(root), "--base", "main", *FAST, "--format", "json", cwd=tmp_path)
    document = json.loads(proc.stdout)
    assert proc.returncode == {"REJECT": 1, "REVIEW": 3}[document["verdict"]], proc.stderr
    assert len(proc.stdout) > 1_000_000  # far beyond a pipe's buffer
    assert len(document["unchanged"]) == 6 * 401 + 6 and {f["path"] for f in document["new"]} == {"pkg/new.py"}


def test_the_installed_command_starts_as_python_m_truthplane_does() -> None:
    """The `truthplane` script pip writes calls cli.start.entry, as `python -m truthplane` does: the listing
    started early, the collector off for one-shot commands and the quick exit apply to the command users run, not
    only to the tests'."""
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["scripts"]["truthplane"] == "truthplane.cli.start:entry"
    from importlib.metadata import entry_points

    installed = entry_points(group="console_scripts", name="truthplane")
    assert [script.value for script in installed] in ([], ["truthplane.cli.start:entry"])  # as installed, if it is


def test_a_command_line_builds_the_command_it_names_and_help_lists_them_all() -> None:
    """A one-shot gate imports and builds its own command only; the command line as a whole still has every
    command, and a name it does not know gets click's answer from all of them."""
    probe = (
        "import sys; from truthplane.cli.main import run; code = run(sys.argv[1:]); "
        "print(sorted(m for m in sys.modules if m.startswith('truthplane.cli.') and m != 'truthplane.cli.main'), "
        "code)"
    )
    named = subprocess.run([sys.executable, "-c", probe, "gate", "--help"], capture_output=True, text=True)
    assert named.stdout.strip().endswith(
        "['truthplane.cli._common', 'truthplane.cli._gate_args', 'truthplane.cli.gate'] 0"), named.stdout
    assert "--base" in named.stdout
    listed = subprocess.run([sys.executable, "-c", probe, "--help"], capture_output=True, text=True)
    from truthplane.cli.main import COMMANDS, app

    assert all(f" {name} " in listed.stdout for name in COMMANDS), listed.stdout
    names = [c.name or c.callback.__name__ for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert sorted(names) == sorted(COMMANDS)
    unknown = subprocess.run([sys.executable, "-c", probe, "gat"], capture_output=True, text=True)
    assert "Did you mean 'gate'?" in unknown.stderr
