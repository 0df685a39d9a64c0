"""LLM candidates for the patch loop: categorise, write a reproduction, propose N fixes.

Used when `--provider NAME` is given, or when the configured chain has a provider whose key is set
(or that needs none). An LLM that fails or is out of budget leaves the other candidates to be judged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from truthplane.errors import ProviderError
from truthplane.fixes import Candidate

if TYPE_CHECKING:
    from truthplane.loop import Loop, _Baseline


def usable_providers(loop: Loop) -> list[str]:
    """Providers that can be asked here: named with --provider, or in [llm] with their key present."""
    from truthplane.llm.router import provider_status

    if loop.request.providers:
        return list(loop.request.providers)
    llm = loop.config.llm
    wanted = {n for task in ("categorise", "reproduce", "candidates") for n in llm.chain_for(task)}
    return sorted(s.name for s in provider_status(llm) if s.name in wanted and s.installed and not s.reason)


async def llm_candidates(loop: Loop, base: _Baseline) -> tuple[list[Candidate], list[str], str | None]:
    """(candidates, notes for the report, a reproduction script or None)."""
    from truthplane.context import build_context
    from truthplane.llm.prompts import candidates_prompt, categorise_prompt, reproduction_prompt
    from truthplane.llm.router import build_router
    from truthplane.store import Store

    request = loop.request
    providers = usable_providers(loop)
    if not providers:
        return [], ["no LLM provider usable here (set GEMINI_API_KEY, DEEPSEEK_API_KEY or GROQ_API_KEY, "
                    "or configure [llm]): judged the analysers' autofixes and given patches only"], None
    notes: list[str] = []
    finding = base.targets[0] if base.targets else None
    error = request.error
    if error is None and finding is None and request.repro_cmd:  # the reproduction is the target: say so
        error = f"this command fails and must pass after the fix: {request.repro_cmd}"
    context = build_context(base.snapshot, request.target, finding=finding, error=error)
    script: str | None = None
    found: list[Candidate] = []
    with Store.open(root=request.home or request.root) as store:
        router = build_router(loop.config.llm, store, only=request.providers or None, run_id=request.run_id)
        try:
            category = await router.ask(categorise_prompt(context))
            notes.append(f"categorised as {category.value.category.value} by {category.provider} "
                         f"({category.value.rationale})")
            if not request.repro_cmd:
                repro = await router.ask(reproduction_prompt(context))
                script = repro.value.script
                notes.append(f"reproduction script written by {repro.provider}: {repro.value.explanation}")
            fixes = await router.ask(candidates_prompt(context, request.candidates))
        except ProviderError as exc:
            notes.append(f"LLM: {exc}")
            return found, notes, script
    for n, fix in enumerate(fixes.value.candidates[: request.candidates], start=1):
        found.append(Candidate(
            id=f"llm-{n}", source="llm", title=fix.title, diff=fix.diff, rationale=fix.rationale,
            provider=fixes.provider, model=fixes.model, prompt_hash=fixes.prompt_hash,
            cost_usd=fixes.cost_usd,
        ))
    return found, notes, script
