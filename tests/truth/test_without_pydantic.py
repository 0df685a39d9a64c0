"""A gate reads its configuration, its tools' output and its cache without pydantic (truthplane.reading,
truthplane.models), which costs a fresh process some 0.2 s of CPU to import: a gate run where pydantic cannot be
imported at all gives what a gate run with it gives, to the byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bandit"), pytest.mark.tool("semgrep")]

BASE = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd)\n"
HEAD = (BASE + "\n\ndef load(text):\n    return eval(text)\n\n\n"
        "def shell(cmd):\n    return subprocess.call(cmd, shell=True)\n")
CONFIG = """\
exclude = ["vendor/**"]
timeout_s = 300
[gate]
fail_on = "critical"
max_new = 5
[severity]
"bandit:B602" = "low"
[verifiers.ruff]
args = ["--extend-select", "S"]
timeout_s = 120
[executors.local]
concurrency = 2
"""
# runs truthplane's command line with the named packages made impossible to import
BLOCKED = ("import sys\nfor name in sys.argv.pop(1).split(','):\n    sys.modules[name] = None\n"
           "from truthplane.cli.start import entry\nsys.argv[0] = 'truthplane'\nentry()\n")


def gate(root: Path, cache: Path, blocked: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "SEMGREP_ENABLE_VERSION_CHECK": "0"}
    return subprocess.run([sys.executable, "-c", BLOCKED, blocked, "gate", ".", "--base", "main", "--cache-dir",
                           str(cache), *extra], cwd=root, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture
def changed(make_repo) -> Path:  # noqa: ANN001
    root = make_repo({"pkg/a.py": BASE, "pkg/b.py": BASE, "truthplane.toml": CONFIG})
    git(root, "checkout", "-qb", "feature")
    (root / "pkg/a.py").write_text(HEAD, encoding="utf-8")
    return root


def test_a_gate_without_pydantic_judges_as_one_with_it(changed: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    with_it = gate(changed, cache, "-")
    assert with_it.returncode in (0, 1, 3), with_it.stderr
    assert "New (" in with_it.stdout
    # twice without: the first fills nothing (the cache is warm from the run above), the second reads its cache
    for _ in range(2):
        without = gate(changed, cache, "pydantic,pydantic_core")
        assert (without.returncode, without.stdout) == (with_it.returncode, with_it.stdout), without.stderr
    cold = tmp_path / "cold"
    cold.mkdir()
    without = gate(changed, cold, "pydantic,pydantic_core")  # and with a cache of its own, filled without it
    assert (without.returncode, without.stdout) == (with_it.returncode, with_it.stdout), without.stderr


def test_the_json_document_needs_only_pydantic_core(changed: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    gate(changed, cache, "-")  # the cache filled: both runs below read it alike
    with_it = gate(changed, cache, "-", "--format", "json")
    without = gate(changed, cache, "pydantic", "--format", "json")
    assert without.returncode == with_it.returncode, without.stderr
    documents = [json.loads(with_it.stdout), json.loads(without.stdout)]
    assert documents[0]["new"] and documents[0]["verdict"] in ("APPROVE", "REVIEW", "REJECT")
    for document in documents:  # only the verifiers' durations differ from run to run
        for run in document["verifiers"]:
            run["duration_s"] = 0
    assert documents[1] == documents[0]
    assert without.stdout.splitlines()[:3] == with_it.stdout.splitlines()[:3]  # laid out alike


def test_a_table_only_pydantic_checks_is_still_checked_when_given(changed: Path, tmp_path: Path) -> None:
    (changed / "truthplane.toml").write_text(CONFIG + "[llm.retry]\nmax_retries = -1\n", encoding="utf-8")
    cache = tmp_path / "cache"
    cache.mkdir()
    done = gate(changed, cache, "-")
    assert done.returncode == 2
    assert "truthplane.toml: llm.retry.max_retries: Input should be greater than or equal to 0, not -1" in done.stderr
