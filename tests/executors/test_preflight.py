"""Preflight: dangerous constructs are flagged with their line; ordinary code is not."""

from __future__ import annotations

import json
import textwrap

import pytest

from truthplane.executors.preflight import preflight_files, preflight_job, preflight_source
from truthplane.executors.jobs import Job
from truthplane.models import Severity


def rules(source: str) -> list[tuple[str, int]]:
    return [(f.rule, f.line) for f in preflight_source(textwrap.dedent(source))]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import os\nos.system('rm -rf /')\n", [("os-system", 2)]),
        ("from os import system as run\nrun('ls')\n", [("os-system", 2)]),
        ("import os\nos.popen('id').read()\n", [("os-system", 2)]),
        ("import subprocess\nsubprocess.run('ls', shell=True)\n", [("shell-true", 2)]),
        ("import subprocess as sp\nsp.Popen(cmd, shell=flag)\n", [("shell-true", 2)]),
        ("import subprocess\nsubprocess.check_output('id', shell=False)\n", []),
        ("import subprocess\nsubprocess.run(['ls'])\n", []),
        ("import subprocess\nsubprocess.getoutput('id')\n", [("shell-true", 2)]),
        ("import os\nos.execvp('sh', ['sh'])\n", [("os-exec", 2)]),
        ("exec(code)\n", [("dynamic-exec", 1)]),
        ("eval('1 + 1')\n", []),
        ("x = eval(input())\n", [("dynamic-exec", 1)]),
        ("compile(source, 'f', 'exec')\n", [("dynamic-exec", 1)]),
        ("import socket\ns = socket.socket()\n", [("network", 1), ("network", 2)]),
        ("from urllib.request import urlopen\n", [("network", 1)]),
        ("import ctypes\n", [("native-code", 1)]),
        ("open('/etc/passwd', 'w').write('x')\n", [("write-outside-workspace", 1)]),
        ("open('/etc/passwd').read()\n", []),
        ("open('out.txt', 'w')\n", []),
        ("open('../../escape.txt', mode='a')\n", [("write-outside-workspace", 1)]),
        ("import shutil\nshutil.rmtree('/home')\n", [("write-outside-workspace", 2)]),
        ("import shutil\nshutil.rmtree('build')\n", []),
        ("import shutil\nshutil.copy('a', '/usr/bin/a')\n", [("write-outside-workspace", 2)]),
        (
            "from pathlib import Path\nPath('/etc/cron.d/x').write_text('* * * * * id')\n",
            [("write-outside-workspace", 2)],
        ),
        ("from pathlib import Path\nPath('~/.bashrc').open('a')\n", [("write-outside-workspace", 2)]),
        ("__import__('os').system('id')\n", [("import-trick", 1)]),
        ("import importlib\nimportlib.import_module(name)\n", [("import-trick", 2)]),
        ("import importlib\nimportlib.import_module('socket')\n", [("network", 2)]),
        ("getattr(__builtins__, 'ev' + 'al')('1')\n", [("import-trick", 1)]),
        ("import builtins\nbuiltins.__dict__['exec'](c)\n", [("import-trick", 2)]),
        ("globals()['__builtins__']\n", [("import-trick", 1)]),
    ],
)
def test_flags(source: str, expected: list[tuple[str, int]]) -> None:
    assert rules(source) == expected


def test_ordinary_code_is_clean() -> None:
    source = """
        import json, os, subprocess
        from pathlib import Path

        def main(root: str) -> None:
            data = json.loads(Path(root, 'config.json').read_text())
            Path('result.txt').write_text(str(data))
            subprocess.run(['pytest', '-q'], check=True)
            print(os.path.join(root, 'x'))
    """
    assert rules(source) == []


def test_findings_carry_location_and_severity() -> None:
    [finding] = preflight_source("x = 1\nimport os\nos.system(cmd)\n", "gen/patch.py")
    assert (finding.path, finding.line, finding.column) == ("gen/patch.py", 3, 0)
    assert finding.severity == Severity.HIGH and "shell" in finding.message
    converted = finding.to_finding()
    assert (converted.verifier, converted.rule_id, converted.start_line) == ("preflight", "os-system", 3)


def test_files_report_skips_non_python_and_records_unparsable() -> None:
    report = preflight_files({"a.py": b"import os\nos.system('x')\n", "b.py": b"def (:\n", "notes.txt": b"os.system"})
    assert [f.path for f in report.findings] == ["a.py"]
    assert len(report.unparsed) == 1 and report.unparsed[0].startswith("b.py:")
    assert not report.clean


def test_job_report_reads_named_source_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "run.py").write_text("import ctypes\n")
    job = Job(command=["python", "run.py"], source_dir=str(tmp_path), files={"ok.py": b"print(1)\n"})
    report = preflight_job(job, ["run.py"])
    assert [(f.path, f.rule) for f in report.findings] == [("run.py", "native-code")]
    assert preflight_job(job).clean


# ---- the preflight runs on what truthplane executes without it coming from the repository's history ----

SHELLS_OUT = "import os\nos.system('true')\nprint('ran')\n"


@pytest.mark.tool("bwrap")
def test_exec_of_python_code_reports_the_preflight_and_still_runs(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from truthplane.cli.main import run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "script.py").write_text(SHELLS_OUT)
    assert run(["exec", "--", "python3", "script.py"]) == 0
    out, err = capsys.readouterr()
    assert out == "ran\n"
    assert "truthplane: preflight: script.py:2: os.system() runs a shell command (high, os-system)" in err
    assert run(["exec", "--format", "json", "--", "python3", "-c", "import socket\nprint('ran')"]) == 0
    result = json.loads(capsys.readouterr()[0])
    assert result["stdout"] == "ran\n"
    assert [(f["path"], f["line"], f["rule"]) for f in result["preflight"]] == [("python -c", 1, "network")]
    # a command that is not a python script gets no preflight
    assert run(["exec", "--format", "json", "--", "sh", "-c", "echo os.system"]) == 0
    assert json.loads(capsys.readouterr()[0])["preflight"] == []


CALC = "def mean(values):\n    return sum(values) / len(values) + 1\n"
SHELLING_PATCH = """--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,5 @@
+import os
+
+
 def mean(values):
-    return sum(values) / len(values) + 1
+    return sum(values) / len(values) + os.system("true")
"""


@pytest.mark.tool("bwrap")
@pytest.mark.tool("ruff")
def test_fix_shows_and_records_what_a_candidate_adds_without_blocking_it(
    make_repo, tmp_path, capsys, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from truthplane.cli.main import run

    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    root = make_repo({"calc.py": CALC, "truthplane.toml": 'verifiers = ["ruff"]\n'})
    patch = tmp_path / "shells-out.diff"
    patch.write_text(SHELLING_PATCH)
    code = run(["fix", str(root / "calc.py"), "--candidate", str(patch), "--test-cmd", "true", "--format", "json"])
    result = json.loads(capsys.readouterr()[0])
    [candidate] = result["candidates"]
    assert [(f["path"], f["line"], f["rule"]) for f in candidate["preflight"]] == [("calc.py", 5, "os-system")]
    assert candidate["verdict"] == "APPROVE" and code == 0  # it informs; it never blocks
    record = json.loads((root / result["evidence"]).read_text())
    [task] = record["tasks"]
    assert [f["rule"] for f in task["verification"]["preflight"]] == ["os-system"]
    assert run(["fix", str(root / "calc.py"), "--candidate", str(patch), "--test-cmd", "true"]) == 0
    assert "preflight (informs, never blocks): calc.py:5: os.system() runs a shell command" in capsys.readouterr()[0]


RIGHT = """--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def mean(values):
-    return sum(values) / len(values) + 1
+    return sum(values) / len(values)
"""
REPRO_SHELLS_OUT = (
    "import subprocess\nsubprocess.run('true', shell=True)\nfrom calc import mean\nassert mean([1, 2, 3]) == 2\n"
)


@pytest.mark.tool("bwrap")
@pytest.mark.tool("ruff")
def test_fix_preflights_an_llm_written_reproduction(make_repo, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from tests.llm.servers import Answer, OpenAIServer
    from truthplane.cli.main import run

    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("GROQ_API_KEY", "sk-test-key")
    server = OpenAIServer(api_key="sk-test-key")
    try:
        root = make_repo({"calc.py": CALC, "truthplane.toml": 'verifiers = ["ruff"]\n'
                          f'[llm.providers.groq]\nbase_url = "{server.base_url}"\nmodel = "test-model"\n'})
        server.script(
            Answer(json.dumps({"category": "logic", "confidence": 0.9, "rationale": "off by one in mean"})),
            Answer(json.dumps({"script": REPRO_SHELLS_OUT, "explanation": "mean of 1..3 is 2"})),
            Answer(json.dumps({"candidates": [{"title": "drop the + 1", "diff": RIGHT, "rationale": "no offset"}]})),
        )
        code = run(["fix", str(root / "calc.py"), "--provider", "groq", "--candidates", "1", "--no-autofix",
                    "--format", "json"])
        doc = json.loads(capsys.readouterr()[0])
    finally:
        server.stop()
    [candidate] = doc["candidates"]
    assert candidate["repro"]["after_rc"][-1] == 0, candidate
    assert [(f["path"], f["line"], f["rule"]) for f in candidate["preflight"]] == [
        (".truthplane_repro.py", 2, "shell-true")
    ]
    assert code == 0 and candidate["verdict"] == "APPROVE"


@pytest.mark.tool("bwrap")
@pytest.mark.tool("ruff")
def test_fix_preflights_a_standalone_snippet(tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from truthplane.cli.main import run

    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    snippet = tmp_path / "snippets" / "calc.py"
    snippet.parent.mkdir()
    snippet.write_text("import os\n\nos.system('true')\n\n\n" + CALC)
    patch = tmp_path / "right.diff"
    patch.write_text(RIGHT.replace("@@ -1,2 +1,2 @@", "@@ -6,2 +6,2 @@"))
    run(["fix", str(snippet), "--candidate", str(patch), "--format", "json"])
    [candidate] = json.loads(capsys.readouterr()[0])["candidates"]
    assert [(f["path"], f["line"], f["rule"]) for f in candidate["preflight"]] == [("calc.py", 3, "os-system")]
