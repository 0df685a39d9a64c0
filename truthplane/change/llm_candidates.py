"""LLM candidates for the patch loop: categorise, write a reproduction, propose N fixes.

Used when `--provider NAME` is given, or when the configured chain has a provider whose key is set
(or that needs none). An LLM that fails or is out of budget leaves the other candidates to be judged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from truthplane.change.fixes import Candidate
from truthplane.errors import ProviderError
from truthplane.config.llm import LLMConfig
from truthplane.models import Finding


@dataclass(frozen=True)
class LLMAsk:
    """What the LLMs are asked about, as plain values: the snapshot of the tree, the file and what is wrong
    with it (a finding, an error text, or a command that must pass), and where their calls are recorded."""

    snapshot: Path
    target: str
    finding: Finding | None
    error: str | None
    repro_cmd: str | None
    candidates: int
    providers: tuple[str, ...]  # named with --provider: only these
    history_root: Path  # where the history (and its LLM budget) lives
    run_id: str | None


def usable_providers(llm: LLMConfig, named: tuple[str, ...] | list[str]) -> list[str]:
    """Providers that can be asked here: named with --provider, or in [llm] with their key present."""
    from truthplane.llm.router import provider_status

    if named:
        return list(named)
    wanted = {n for task in ("categorise", "reproduce", "candidates") for n in llm.chain_for(task)}
    return sorted(s.name for s in provider_status(llm) if s.name in wanted and s.installed and not s.reason)


async def llm_candidates(llm: LLMConfig, ask: LLMAsk) -> tuple[list[Candidate], list[str], str | None]:
    """(candidates, notes for the report, a reproduction script or None)."""
    from truthplane.llm.context import build_context
    from truthplane.llm.prompts import candidates_prompt, categorise_prompt, reproduction_prompt
    from truthplane.llm.router import build_router
    from truthplane.store import Store

    if not usable_providers(llm, ask.providers):
        return [], ["no LLM provider usable here (set GEMINI_API_KEY, DEEPSEEK_API_KEY or GROQ_API_KEY, "
                    "or configure [llm]): judged the analysers' autofixes and given patches only"], None
    notes: list[str] = []
    error = ask.error
    if error is None and ask.finding is None and ask.repro_cmd:  # the reproduction is the target: say so
        error = f"this command fails and must pass after the fix: {ask.repro_cmd}"
    context = build_context(ask.snapshot, ask.target, finding=ask.finding, error=error)
    script: str | None = None
    found: list[Candidate] = []
    with Store.open(root=ask.history_root) as store:
        router = build_router(llm, store, only=list(ask.providers) or None, run_id=ask.run_id)
        try:
            category = await router.ask(categorise_prompt(context))
            notes.append(f"categorised as {category.value.category.value} by {category.provider} "
                         f"({category.value.rationale})")
            if not ask.repro_cmd:
                repro = await router.ask(reproduction_prompt(context))
                script = repro.value.script
                notes.append(f"reproduction script written by {repro.provider}: {repro.value.explanation}")
            fixes = await router.ask(candidates_prompt(context, ask.candidates))
        except ProviderError as exc:
            notes.append(f"LLM: {exc}")
            return found, notes, script
    for n, fix in enumerate(fixes.value.candidates[: ask.candidates], start=1):
        found.append(Candidate(
            id=f"llm-{n}", source="llm", title=fix.title, diff=fix.diff, rationale=fix.rationale,
            provider=fixes.provider, model=fixes.model, prompt_hash=fixes.prompt_hash,
            cost_usd=fixes.cost_usd,
        ))
    return found, notes, script
