"""Bad input is one line naming what is wrong and a documented exit code, never "unexpected" and a crash log.

Configuration problems are usage errors (exit 2) naming the place; a broken input file is "could not verify"
(exit 4) naming the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from truthplane.cli.main import run
from truthplane.truth.gatekeeper import Gatekeeper
from truthplane.errors import InputError
from truthplane.files import MAX_INPUT_BYTES

DEEP = 3000  # deeper than the interpreter's recursion limit


def short_id(value: object) -> str | None:
    return value[:40] if isinstance(value, str) else None


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(cache))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    return cache


def expect(capsys: pytest.CaptureFixture[str], cache: Path, args: list[str], code: int, *needles: str) -> str:
    got = run(args)
    out, err = capsys.readouterr()
    assert got == code, out + err
    assert "unexpected" not in err and not (cache / "crash.log").exists(), err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]


def sarif(*results: dict, **run_fields: object) -> dict:
    return {
        "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "lint"}}, "results": list(results), **run_fields}],
    }


def result(message: str = "m", **location: object) -> dict:
    artifact = {"uri": "a.py", **location}
    return {"ruleId": "R1", "message": {"text": message},
            "locations": [{"physicalLocation": {"artifactLocation": artifact, "region": {"startLine": 1}}}]}


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# ---- configuration: exit 2, the place named --------------------------------------------------------


@pytest.mark.parametrize("name, text, needles", [
    ("truthplane.toml", "a = " + "[" * DEEP + "]" * DEEP + "\n", ["truthplane.toml", "nested too deeply"]),
    ("pyproject.toml", "[tool]\ntruthplane = 5\n", ["pyproject.toml", "tool.truthplane should be a table"]),
    ("pyproject.toml", "tool = 5\n", ["pyproject.toml", "tool should be a table"]),
    ("truthplane.toml", '[executors.local]\nwarm = "x"\n', ["executors.local.warm", "integer"]),
    ("truthplane.toml", "[executors]\nlocal = 5\n", ["executors.local", "table"]),
    ("truthplane.toml", "[executors.docker]\nkill_grace_s = nan\n", ["executors.docker.kill_grace_s", "finite"]),
    ("truthplane.toml", "[[executors.ssh.nodes]]\nhost = 5\n", ["executors.ssh.nodes.0.host"]),
    ("truthplane.toml", "[executors.ssh]\nconnect_timeout_s = nan\n", ["executors.ssh.connect_timeout_s", "finite"]),
    ("truthplane.toml", "[executors.myplugin]\nwait_s = -inf\n", ["executors.myplugin.wait_s", "finite"]),
    ("truthplane.toml", "[llm.providers.groq]\ntimeout_s = inf\n", ["llm.providers.groq.timeout_s", "finite"]),
    ("truthplane.toml", "timeout_s = nan\n", ["timeout_s", "finite"]),
    ("truthplane.toml", "timeout_s = inf\n", ["timeout_s", "finite"]),
    ("truthplane.toml", "timeout_s = 1e30\n", ["timeout_s", "above 0 and at most 2592000 (30 days), not 1e+30"]),
    ("truthplane.toml", "timeout_s = -5\n", ["timeout_s", "greater than 0, not -5"]),
    ("truthplane.toml", "[verifiers.ruff]\ntimeout_s = 9223372036854775808\n", ["verifiers.ruff.timeout_s"]),
    ("truthplane.toml", "[gate]\nmax_new = -1\n", ["gate.max_new", "greater than or equal to 0, not -1"]),
    ("truthplane.toml", 'cache_dir = "a-file"\n', ["cache_dir", "is a file, not a directory"]),
    ("truthplane.toml", 'cache_dir = "a-file/below"\n', ["cache_dir", "is a file, not a directory"]),
    ("truthplane.toml", 'cache_dir = "/proc"\n', ["cache_dir", "pseudo-filesystem"]),
], ids=short_id)
def test_a_bad_configuration_is_exit_2_naming_the_place_whichever_command_reads_it(
    tmp_path: Path, capsys, monkeypatch, private_cache: Path, name: str, text: str, needles: list[str],
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a-file").write_text("not a directory\n")
    (repo / name).write_text(text, encoding="utf-8")
    monkeypatch.chdir(repo)  # a relative cache_dir is relative to where truthplane runs
    expect(capsys, private_cache, ["scan", str(repo), "--baseline", "--verifier", "ruff"], 2, *needles)
    # `diff` reads the same configuration, and checks all of it
    empty = write_json(tmp_path / "empty.sarif", sarif())
    expect(capsys, private_cache, ["diff", str(empty), str(empty)], 2, *needles)


@pytest.mark.parametrize("command", ["scan", "gate"])
@pytest.mark.parametrize("cache_dir, needle", [("/proc/x", "pseudo-filesystem"), ("a-file/below", "is a file")])
def test_a_cache_dir_flag_that_cannot_hold_a_cache_is_exit_2(make_repo, capsys, monkeypatch, private_cache: Path,
                                                            command: str, cache_dir: str, needle: str) -> None:
    root = make_repo({"a.py": "x = 1\n", "a-file": "not a directory\n"})
    monkeypatch.chdir(root)
    args = [command, ".", "--verifier", "ruff", "--cache-dir", cache_dir] + (
        ["--base", "main"] if command == "gate" else []
    )
    expect(capsys, private_cache, args, 2, "--cache-dir", needle)


def test_a_deeply_nested_task_file_is_exit_2_naming_it(make_repo, capsys, monkeypatch, private_cache: Path) -> None:
    repo = make_repo({"a.py": "x = 1\n"})
    monkeypatch.chdir(repo)
    tasks = repo / "tasks.toml"
    tasks.write_text("[[tasks]]\nid = 'a'\nkind = 'command'\ncommand = 'true'\nx = " + "[" * DEEP + "]" * DEEP + "\n")
    expect(capsys, private_cache, ["run-all", str(tasks)], 2, "tasks.toml", "nested too deeply")


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e30"])
def test_exec_timeout_must_be_a_usable_number_of_seconds(
    tmp_path: Path, capsys, private_cache: Path, value: str
) -> None:
    expect(capsys, private_cache, ["exec", "--timeout", value, "--", "true"], 2, "--timeout", "2592000")


def test_history_verdict_must_be_a_verdict(tmp_path: Path, capsys, private_cache: Path) -> None:
    expect(capsys, private_cache, ["history", "--verdict", "FOO"], 2, "APPROVE, REVIEW, REJECT, UNVERIFIED", "'FOO'")


# ---- input files: exit 4, the file named -----------------------------------------------------------


@pytest.mark.parametrize(
    "document, needles",
    [
        ("[" * 100_000 + "]" * 100_000, ["nested too deeply"]),
        ("[" * 900 + '"\\ud800"' + "]" * 900, ["nested too deeply"]),
        (json.dumps(sarif(result(), invocations=5)), ["runs[0].invocations should be list"]),
        (json.dumps(sarif(result(uriBaseId=["SRC"]))), ["uriBaseId should be str"]),
        (json.dumps(sarif(result(uriBaseId=5), originalUriBaseIds={"5": {}})), ["uriBaseId should be str"]),
        (json.dumps(sarif(result(uri="http://[::1"))), ["is not a URI"]),
        ('{"version": "2.1.0", "runs": [' + "1" * 5000 + "]}", ["not a baseline or SARIF file"]),
        (
            json.dumps({"tool": "truthplane", "schema_version": 99, "created_at": "x"}),
            ["schema_version 99", "schema_version 1"],
        ),
    ],
    ids=short_id,
)
def test_a_broken_input_file_is_exit_4_naming_it(
    tmp_path: Path, capsys, private_cache: Path, document: str, needles
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(document, encoding="utf-8")
    good = write_json(tmp_path / "good.sarif", sarif())
    expect(capsys, private_cache, ["diff", str(good), str(bad)], 4, str(bad), *needles)
    with pytest.raises(InputError) as raised:  # the MCP server reads through the same function
        Gatekeeper(tmp_path).summarize("bad.json")
    assert all(needle in str(raised.value) for needle in needles)


def test_a_lone_surrogate_in_a_message_prints_the_whole_verdict(tmp_path: Path, private_cache: Path) -> None:
    before = write_json(tmp_path / "before.sarif", sarif())
    after = tmp_path / "after.sarif"
    after.write_text(json.dumps(sarif(result("bad \ud800 half"))), encoding="utf-8")  # json escapes it as \ud800
    for fmt in ("text", "json", "markdown", "sarif"):
        proc = subprocess.run(
            [sys.executable, "-m", "truthplane", "diff", str(before), str(after), "--format", fmt],
            capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "NO_COLOR": "1"}, timeout=120,
        )
        assert proc.returncode == 3, proc.stderr
        shown = "bad \ufffd half" in proc.stdout or "bad \\ufffd half" in proc.stdout  # JSON escapes it
        assert proc.stderr == "" and shown, proc.stdout + proc.stderr


def test_an_output_file_that_cannot_be_written_is_a_usage_error(tmp_path: Path, capsys, private_cache: Path) -> None:
    empty = write_json(tmp_path / "empty.sarif", sarif())
    expect(
        capsys, private_cache, ["diff", str(empty), str(empty), "-o", "/proc/version"], 2, "cannot write /proc/version"
    )


# ---- devices, FIFOs and size: refused before a byte is read ----------------------------------------


def tp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # a child with a timeout: before the fix these read forever, and the test must fail rather than hang
    return subprocess.run([sys.executable, "-m", "truthplane", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=60)


def test_a_device_or_a_fifo_is_refused_not_read_forever(tmp_path: Path) -> None:
    good = write_json(tmp_path / "good.sarif", sarif())
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo)):
        proc = tp("diff", path, str(good), cwd=tmp_path)
        assert proc.returncode == 4, proc.stderr
        assert (
            proc.stderr.strip()
            == f"truthplane: error: {path} is not a regular file (a device, FIFO or socket): give a file"
        )
    config = tmp_path / "fifo.toml"
    os.mkfifo(config)
    proc = tp("diff", str(good), str(good), "--config", str(config), cwd=tmp_path)
    assert proc.returncode == 2 and "fifo.toml is not a regular file" in proc.stderr, proc.stderr


def test_mcp_summarize_refuses_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.json")
    code = (
        "import sys; from pathlib import Path; from truthplane.truth.gatekeeper import Gatekeeper\n"
        "from truthplane.errors import InputError\n"
        "try:\n    Gatekeeper(Path(sys.argv[1])).summarize('fifo.json')\n"
        "except InputError as exc:\n    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert "fifo.json is not a regular file" in proc.stdout, proc.stdout + proc.stderr


def test_an_input_larger_than_the_limit_is_refused(tmp_path: Path, capsys, private_cache: Path) -> None:
    huge = tmp_path / "huge.sarif"
    with huge.open("wb") as handle:  # sparse: no disk is used
        handle.truncate(MAX_INPUT_BYTES + 1)
    good = write_json(tmp_path / "good.sarif", sarif())
    expect(capsys, private_cache, ["diff", str(good), str(huge)], 4, str(huge), "larger than the 256 MiB limit")


# ---- control characters in names and messages never reach the terminal raw -------------------------

FORGED = "evil\ntruthplane: APPROVE  (0 new, 0 fixed, 0 unchanged)\x1b[2J\x1b[H\u202e.py"


@pytest.mark.parametrize("fmt", ["text", "markdown"])
def test_a_file_name_cannot_forge_a_verdict_line_or_clear_the_screen(tmp_path: Path, capsys, fmt: str) -> None:
    before = write_json(tmp_path / "before.sarif", sarif())
    after = write_json(tmp_path / "after.sarif", sarif(result("bad\x1b]0;title\x07 call", uri=FORGED)))
    assert run(["diff", str(before), str(after), "--format", fmt]) == 3
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert not any(line.startswith("truthplane: APPROVE") for line in out.splitlines()), out
    assert "evil\\ntruthplane: APPROVE" in out and "\\x1b[2J" in out and "\\u202e" in out
    assert "bad\\x1b]0;title\\x07 call" in out


def test_an_error_naming_a_file_stays_one_line(tmp_path: Path, capsys, private_cache: Path) -> None:
    good = write_json(tmp_path / "good.sarif", sarif())
    line = expect(capsys, private_cache, ["diff", str(good), str(tmp_path / "no\nsuch\x1b[2J.json")], 4, "no such file")
    assert "no\\nsuch\\x1b[2J.json" in line


@pytest.mark.tool("ruff")
def test_a_scanned_file_name_cannot_forge_a_line_or_drive_the_terminal(make_repo, capsys) -> None:
    root = make_repo({"evil\ntruthplane: APPROVE\x1b[2J.py": "import os\n"})
    assert run(["scan", str(root), "--baseline", "--verifier", "ruff"]) == 0
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err
    assert not any(line.startswith("truthplane: APPROVE") for line in (out + err).splitlines()), out
    assert "evil\\ntruthplane: APPROVE\\x1b[2J.py:1  ruff F401" in out


def test_doctor_escapes_a_configured_name(tmp_path: Path, capsys) -> None:
    (tmp_path / "truthplane.toml").write_text(
        '[verifiers."evil\\ntruthplane: ok\\u001b[2J"]\ntype = "command"\ncommand = ["no-such-tool-here", "{files}"]\n')
    run(["doctor", str(tmp_path)])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "evil\\ntruthplane: ok\\x1b[2J" in out
    assert not any(line.startswith("truthplane: ok") for line in out.splitlines()), out
