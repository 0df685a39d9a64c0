"""`truthplane mcp`: the gatekeeper as a Model Context Protocol server on stdio.

A coding agent calls build_db, analyze, diff_alerts, summarize and gate on the repository the server
was started in (truthplane.truth.gatekeeper), and gets JSON back. stdout carries the protocol: nothing else
may print there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

INSTRUCTIONS = (
    "truthplane's gatekeeper: judge a code change by evidence before claiming it is done. "
    "Call `gate` with the branch the change goes into: APPROVE (exit_code 0) means no new finding at or "
    "above the review threshold; REJECT, REVIEW and UNVERIFIED say why in `reasons`. `analyze` lists the "
    "findings now (and records them as a baseline file with baseline=true), `diff_alerts` compares two such "
    "files, `summarize` counts one. Answers give every count but list at most `limit` findings (default 20), "
    "the most severe first; `next_offset` is the `offset` of the next page. "
    "`build_db` and `analyze` with a database run CodeQL when its CLI is installed."
)


def build_server(root: Path, cache_dir: Path | None = None) -> Any:
    import anyio
    from mcp.server.fastmcp import FastMCP, server as fastmcp_server
    from mcp.server.fastmcp.exceptions import ToolError

    from truthplane.errors import TruthplaneError
    from truthplane.truth.cache import remember_in_memory
    from truthplane.truth.gatekeeper import DEFAULT_LIMIT, Gatekeeper
    from truthplane.verifiers import zygote

    keeper = Gatekeeper(root, cache_dir)
    # an agent gates again and again: Python analysers start from a warm copy, and the cached findings of the
    # unchanged files (the base's above all) are decoded once
    zygote.enable()
    remember_in_memory()
    # FastMCP's Settings names FastMCP before that class exists; left unresolved, pydantic-settings 2.16 warns on
    # every start that its `lifespan` field is incomplete: resolve it now that FastMCP is defined
    settings = getattr(fastmcp_server, "Settings", None)
    if settings is not None:
        settings.model_rebuild()
    server = FastMCP("truthplane", instructions=INSTRUCTIONS, log_level="WARNING")

    async def call(function: Any, *args: Any) -> dict[str, Any]:
        try:
            return await anyio.to_thread.run_sync(function, *args)
        except TruthplaneError as exc:
            raise ToolError(str(exc)) from None

    @server.tool()
    async def build_db(
        path: str = ".", language: str | None = None, build_command: str | None = None
    ) -> dict[str, Any]:
        """Build (or reuse) a CodeQL database of the repository or a directory in it, for `analyze`.
        language: CodeQL's name (javascript, python, ...); detected from package.json/pyproject when omitted."""
        return await call(keeper.build_db, path, language, build_command)

    @server.tool()
    async def analyze(path: str = ".", verifiers: list[str] | None = None, database: str | None = None,
                      query_pack: str | None = None, baseline: bool = False, limit: int = DEFAULT_LIMIT,
                      offset: int = 0) -> dict[str, Any]:
        """The findings of the tree now: truthplane's verifiers (all configured, or those named), or CodeQL's
        queries over `database`. Counts, and `limit` findings from `offset`, the most severe first. With
        baseline=true they are also recorded in a file (`alerts`) for diff_alerts and summarize."""
        return await call(keeper.analyze, path, verifiers, database, query_pack, baseline, limit, offset)

    @server.tool()
    async def diff_alerts(before: str, after: str, limit: int = DEFAULT_LIMIT, offset: int = 0) -> dict[str, Any]:
        """Compare two baselines or SARIF logs (paths in the repository), matched by stable fingerprints: the
        gate's verdict, counts of new, fixed and unchanged, and `limit` new and fixed findings from `offset`."""
        return await call(keeper.diff_alerts, before, after, limit, offset)

    @server.tool()
    async def summarize(alerts: str, limit: int = DEFAULT_LIMIT, offset: int = 0) -> dict[str, Any]:
        """Counts by severity and rule of one baseline or SARIF log, and `limit` findings from `offset`."""
        return await call(keeper.summarize, alerts, limit, offset)

    @server.tool()
    async def gate(base: str = "origin/main", path: str = ".", verifiers: list[str] | None = None,
                   limit: int = DEFAULT_LIMIT, offset: int = 0) -> dict[str, Any]:
        """Judge the working tree (uncommitted changes included) against its merge-base with `base`:
        APPROVE / REVIEW / REJECT / UNVERIFIED, the reasons, and `limit` new and fixed findings from `offset`."""
        return await call(keeper.gate, base, path, verifiers, limit, offset)

    return server


def mcp(
    root: Path = typer.Option(Path("."), "--root", help="The repository the gatekeeper works on.", file_okay=False),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", file_okay=False,
        help="Result cache directory (default: the per-user cache); the repository's cache_dir is not used."),
) -> int:
    """Serve the gatekeeper (build_db, analyze, diff_alerts, summarize, gate) over MCP on stdio."""
    from truthplane.errors import UsageError

    if not root.is_dir():
        raise UsageError(f"{root} is not a directory")
    try:
        import mcp as _sdk  # noqa: F401
    except ImportError:
        raise UsageError("the MCP SDK is not installed: pip install 'mcp>=1.20,<2'") from None
    build_server(root, cache_dir).run("stdio")
    return 0


def register(app: typer.Typer) -> None:
    app.command()(mcp)
