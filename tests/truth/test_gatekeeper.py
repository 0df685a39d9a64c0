"""`truthplane mcp` driven by the MCP SDK's own stdio client, on a real repository with real verifiers."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.conftest import git

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bandit")]

CLEAN = "import subprocess\n\n\ndef run(args):\n    return subprocess.run(args, check=True)\n"
RISKY = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
CONFIG = 'verifiers = ["ruff", "bandit"]\n'


async def session_calls(root: Path, calls: list[tuple[str, dict[str, Any]]], tmp: Path) -> tuple[list[str], list[Any]]:
    """The tools listed and each call's result; the server's stderr is left in tmp/server-stderr.txt."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = {**os.environ, "TRUTHPLANE_CACHE_DIR": str(tmp / "cache"), "NO_COLOR": "1"}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "truthplane", "mcp", "--root", str(root)], env=env
    )
    with (tmp / "server-stderr.txt").open("w") as errlog:
        async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = sorted(tool.name for tool in (await session.list_tools()).tools)
            results = [await session.call_tool(name, arguments) for name, arguments in calls]
    return tools, results


def payload(result: Any) -> dict[str, Any]:
    assert not result.isError, result.content
    return json.loads(result.content[0].text)


def test_an_agent_checks_its_change_through_the_gatekeeper(make_repo, tmp_path: Path) -> None:
    root = make_repo({"app/tool.py": CLEAN, "truthplane.toml": CONFIG})
    git(root, "checkout", "-qb", "agent-change")
    (root / "app" / "tool.py").write_text(RISKY)  # the agent's uncommitted change
    calls = [
        ("gate", {"base": "main"}),
        ("analyze", {}),
        ("gate", {"base": "no-such-branch"}),
        ("summarize", {"alerts": "../outside.json"}),
        ("build_db", {"language": "python"}),
    ]
    tools, results = anyio.run(session_calls, root, calls, tmp_path)
    assert tools == ["analyze", "build_db", "diff_alerts", "gate", "summarize"]
    assert "Warning" not in (tmp_path / "server-stderr.txt").read_text()  # a quiet start, whatever pydantic-settings

    verdict = payload(results[0])
    assert verdict["verdict"] == "REJECT" and verdict["exit_code"] == 1
    assert ("bandit", "B602", "app/tool.py") in {(f["verifier"], f["rule_id"], f["path"]) for f in verdict["new"]}
    assert "uncommitted" in verdict["head"]

    analyzed = payload(results[1])
    assert analyzed["complete"] and analyzed["alerts"] is None  # nothing recorded unless asked
    assert not (root / ".truth-plane-results").exists() and not (root / ".sarif-results").exists()
    assert analyzed["total"] == len(analyzed["findings"]) and "bandit:B602" in analyzed["by_rule"]

    assert results[2].isError and "no-such-branch" in results[2].content[0].text
    assert results[3].isError and "outside the repository" in results[3].content[0].text
    # no CodeQL CLI here: the tool says so and how to get it, it does not pretend
    assert results[4].isError and "CodeQL" in results[4].content[0].text
    assert git(root, "status", "--porcelain", "--untracked-files=no") == "M app/tool.py"


def test_diff_alerts_and_summarize_on_recorded_states(make_repo, tmp_path: Path) -> None:
    root = make_repo({"app/tool.py": CLEAN, "truthplane.toml": CONFIG})
    _, first = anyio.run(session_calls, root, [("analyze", {"baseline": True})], tmp_path)
    before = payload(first[0])["alerts"]
    (root / "app" / "tool.py").write_text(RISKY)
    _, second = anyio.run(session_calls, root, [("analyze", {"baseline": True})], tmp_path)
    after = payload(second[0])["alerts"]
    assert before != after
    _, results = anyio.run(session_calls, root, [("diff_alerts", {"before": before, "after": after}),
                                                 ("summarize", {"alerts": after})], tmp_path)
    diff, summary = payload(results[0]), payload(results[1])
    assert diff["verdict"] == "REJECT" and "B602" in {f["rule_id"] for f in diff["new"]}
    assert summary["by_severity"] and {f["verifier"] for f in summary["findings"]} == {"bandit"}


def test_a_hostile_repository_cannot_make_the_server_write_outside_its_root(make_repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "results").mkdir(parents=True)
    (outside / "sarif").mkdir()
    root = make_repo(
        {
            "app/tool.py": CLEAN,
            "truthplane.toml": CONFIG,
            "linked/tool.py": RISKY,
            "sarif_linked/tool.py": RISKY,
            # a configuration that tries to move the result cache out of the repository
            "cached/tool.py": RISKY,
            "cached/truthplane.toml": f'verifiers = ["bandit"]\ncache_dir = "{outside / "cache"}"\n',
        }
    )
    (root / "linked" / ".truth-plane-results").symlink_to(outside / "results")
    (root / "sarif_linked" / ".sarif-results").symlink_to(outside / "sarif")
    (root / ".truth-plane-results").symlink_to(outside / "results")  # where build_db keeps its databases
    (outside / "private.toml").write_text('verifiers = ["ruff"]\n')
    (root / "peek").mkdir()
    (root / "peek" / "truthplane.toml").symlink_to(outside / "private.toml")
    calls = [
        ("analyze", {"path": "peek"}),
        ("analyze", {"path": "linked", "baseline": True}),
        ("analyze", {"path": "sarif_linked", "baseline": True}),
        ("analyze", {"path": "cached", "baseline": True}),
        ("build_db", {"language": "python"}),
    ]
    _, results = anyio.run(session_calls, root, calls, tmp_path)
    assert results[0].isError and "peek/truthplane.toml" in results[0].content[0].text
    assert "outside the repository" in results[0].content[0].text
    for refused, where in zip(
        results[1:3], ("linked/.truth-plane-results", "sarif_linked/.sarif-results"), strict=True
    ):
        assert refused.isError and where in refused.content[0].text and "symbolic link" in refused.content[0].text
    assert results[4].isError and ".truth-plane-results is a symbolic link" in results[4].content[0].text
    cached = payload(results[3])
    assert cached["alerts"].startswith("cached/.truth-plane-results/baseline_") and cached["total"] >= 1
    assert sorted(p.relative_to(outside).as_posix() for p in outside.rglob("*")) == ["private.toml", "results", "sarif"]
    assert any((tmp_path / "cache").iterdir())  # the server's own cache, set by whoever started it

    # a server started in a subdirectory does not gate the whole repository above it
    _, (above,) = anyio.run(session_calls, root / "app", [("gate", {"base": "main"})], tmp_path)
    assert above.isError and "above the server's root" in above.content[0].text


def many_findings(count: int) -> str:
    """A module with `count` unused imports (ruff F401, medium) and one shell=True call (bandit B602, high)."""
    return "".join(f"import module_{n}\n" for n in range(count)) + "\n\n" + RISKY.split("\n\n\n", 1)[1]


def test_answers_are_small_pages_most_severe_first(make_repo, tmp_path: Path) -> None:
    root = make_repo({"app/tool.py": CLEAN, "truthplane.toml": CONFIG})
    (root / "app" / "tool.py").write_text("import subprocess\n" + many_findings(45))
    calls = [
        ("analyze", {}),
        ("analyze", {"offset": 20, "limit": 100}),
        ("gate", {"base": "main", "limit": 5}),
        ("gate", {"base": "main", "limit": 5, "offset": 45}),
        ("analyze", {"limit": 0}),
        ("summarize", {"alerts": "x.json", "offset": -1}),
    ]
    _, results = anyio.run(session_calls, root, calls, tmp_path)
    first, rest = payload(results[0]), payload(results[1])
    assert len(results[0].content[0].text) < 8_000  # 48 findings, answered in a few KB
    # 45 unused imports, the import order (I001), `import subprocess` (B404, as before) and shell=True
    assert first["total"] == 48 and first["by_rule"]["ruff:F401"] == 45 and first["by_severity"]["high"] == 1
    assert len(first["findings"]) == 20 and first["next_offset"] == 20
    assert first["findings"][0]["rule_id"] == "B602"  # the most severe first
    assert len(rest["findings"]) == 28 and rest["next_offset"] is None
    listed = [f["fingerprint"] for f in first["findings"] + rest["findings"]]
    assert len(set(listed)) == 48
    assert not (root / ".truth-plane-results").exists()

    gate, last = payload(results[2]), payload(results[3])
    assert gate["counts"] == {"new": 47, "fixed": 1, "updated": 0, "unchanged": 1, "suppressed": 0,
                              "silenced_by_config": 0} and len(gate["new"]) == 5 and gate["next_offset"] == 5
    assert gate["new"][0]["rule_id"] == "B602" and len(results[2].content[0].text) < 4_000
    assert len(last["new"]) == 2 and last["next_offset"] is None
    assert results[4].isError and "1 to 200" in results[4].content[0].text
    assert results[5].isError and "offset -1" in results[5].content[0].text
