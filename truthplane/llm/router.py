"""The fallback chain: ask each provider of a task's chain in turn until one answers in the schema.

Any ProviderError moves on to the next provider: invalid JSON, a schema mismatch, a refusal, a
timeout, a 5xx, an auth error (the message names the key variable), a 429 after bounded retries.
A 429 (or a 503 with Retry-After) is retried on the same provider first, sleeping what the server
asked (Retry-After seconds or HTTP-date, or Gemini's RetryInfo) or an exponential backoff, at most
`max_retries` times and `max_wait_s` in total; a longer requested wait falls back at once.
A spent budget stops everything: no further call is made. Every call is an `Attempt` in the result
(and a row in the history); when all fail, one ProviderError lists each provider's reason.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from truthplane.llm.context import estimate_tokens
from truthplane.errors import ConfigError
from truthplane.llm import budget as budget_module
from truthplane.config.llm import PRESETS, LLMConfig, ResolvedProvider, resolve_provider
from truthplane.llm.interface import (
    KIND_LABELS,
    Attempt,
    Completion,
    Message,
    Provider,
    ProviderError,
    T,
    prompt_hash,
    snippet,
)
from truthplane.models import ToolInfo
from truthplane.store import Store

if TYPE_CHECKING:
    from truthplane.llm.prompts import Prompt

Sleep = Callable[[float], Awaitable[object]]


def create_provider(settings: ResolvedProvider) -> Provider:
    """Imports only the backend asked for (and with it httpx)."""
    if settings.type == "gemini":
        from truthplane.llm.gemini import GeminiProvider

        return GeminiProvider(settings)
    from truthplane.llm.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(settings)


class Router:
    def __init__(
        self,
        providers: Mapping[str, Provider] | Sequence[Provider],
        *,
        store: Store,
        config: LLMConfig | None = None,
        run_id: str | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if isinstance(providers, Mapping):
            self.providers = dict(providers)
            self._fixed_chain: list[str] | None = None
        else:
            self.providers = {p.name: p for p in providers}
            self._fixed_chain = [p.name for p in providers]
        self.store = store
        self.config = config or LLMConfig()
        self.run_id = run_id or uuid.uuid4().hex
        self._sleep = sleep
        self._disabled: dict[str, str] = {}  # provider -> why (a rejected key) for the rest of the run

    def __repr__(self) -> str:
        return f"Router(providers={list(self.providers)!r}, run_id={self.run_id!r})"

    def chain_for(self, task: str) -> list[str]:
        return list(self._fixed_chain) if self._fixed_chain is not None else self.config.chain_for(task)

    async def ask(self, prompt: Prompt[T]) -> Completion[T]:
        return await self.complete(prompt.messages, prompt.schema, task=prompt.task)

    async def complete(self, messages: list[Message], schema: type[T], *, task: str = "default") -> Completion[T]:
        names = self.chain_for(task)
        if not names:
            raise ProviderError(f"no LLM provider is configured for {task!r}: set [llm] chain in truthplane.toml",
                                kind="all_failed")
        request_hash = prompt_hash(messages, schema)
        estimated = estimate_tokens("".join(m.content for m in messages))
        attempts: list[Attempt] = []
        reasons: list[str] = []
        for name in names:
            provider = self.providers.get(name)
            if provider is None:
                reasons.append(f"{name}: not configured")
                continue
            skip = self._disabled.get(name) or provider.missing_key()
            if skip:
                attempts.append(Attempt(provider=name, model=provider.model, outcome="auth", message=skip))
                reasons.append(f"{name}: auth: {_strip_name(name, skip)}")
                continue
            answer, reason = await self._try(provider, messages, schema, task, request_hash, estimated, attempts)
            if answer is not None:
                answer.attempts = attempts
                return answer
            reasons.append(reason)
        raise ProviderError(
            "no LLM provider answered: " + "; ".join(reasons), kind="all_failed", attempts=attempts,
        )

    async def _try(
        self, provider: Provider, messages: list[Message], schema: type[T], task: str,
        request_hash: str, estimated: int, attempts: list[Attempt],
    ) -> tuple[Completion[T] | None, str]:
        retry = self.config.retry
        waited_total = 0.0
        waited_now = 0.0
        retries = 0
        while True:
            try:
                row_id = await asyncio.to_thread(
                    budget_module.reserve_call, self.store, self.config, run_id=self.run_id, task=task,
                    provider=provider.name, model=provider.model, prompt_hash=request_hash,
                    estimated_prompt_tokens=estimated,
                )
            except ProviderError as exc:
                exc.attempts = [*attempts, Attempt(provider=provider.name, model=provider.model,
                                                   outcome="budget", message=exc.message)]
                raise
            started = time.monotonic()
            try:
                completion = await provider.complete(messages, schema)
            except ProviderError as exc:
                latency = time.monotonic() - started
                await self._finish(row_id, exc.kind, exc.message, exc.prompt_tokens, exc.completion_tokens,
                                   exc.cost_usd, latency)
                attempts.append(Attempt(
                    provider=provider.name, model=provider.model, outcome=exc.kind, message=exc.message,
                    prompt_tokens=exc.prompt_tokens, completion_tokens=exc.completion_tokens,
                    cost_usd=exc.cost_usd, latency_s=latency, waited_s=waited_now,
                ))
                label = f"{KIND_LABELS.get(exc.kind, exc.kind)}: {_strip_name(provider.name, exc.message)}"
                if exc.kind == "auth":
                    self._disabled[provider.name] = exc.message
                retryable = exc.kind == "rate_limited" or (exc.kind == "http_5xx" and exc.retry_after is not None)
                if not retryable:
                    return None, f"{provider.name}: {label}"
                if retries >= retry.max_retries:
                    return None, f"{provider.name}: {label} (gave up after {retries} retries)"
                wait = exc.retry_after if exc.retry_after is not None else retry.backoff_s * 2**retries
                if waited_total + wait > retry.max_wait_s:
                    return None, (f"{provider.name}: {label} (asked to wait {wait:g} s, past the "
                                  f"{retry.max_wait_s:g} s cap of [llm.retry] max_wait_s)")
                await self._sleep(wait)
                waited_total += wait
                waited_now = wait
                retries += 1
                continue
            except BaseException:
                await self._finish(row_id, "error", "interrupted", None, None, None, time.monotonic() - started)
                raise
            await self._finish(row_id, "ok", "", completion.prompt_tokens, completion.completion_tokens,
                               completion.cost_usd, completion.latency_s)
            attempts.append(Attempt(
                provider=provider.name, model=provider.model, outcome="ok",
                prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                cost_usd=completion.cost_usd, latency_s=completion.latency_s, waited_s=waited_now,
            ))
            return completion, ""

    async def _finish(
        self, row_id: int, outcome: str, error: str, prompt_tokens: int | None, completion_tokens: int | None,
        cost_usd: float | None, latency_s: float,
    ) -> None:
        await asyncio.to_thread(
            budget_module.finish_call, self.store, row_id, outcome=outcome, error=snippet(error, 300),
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_usd=cost_usd, latency_s=latency_s,
        )


def _strip_name(name: str, message: str) -> str:
    return message.removeprefix(f"{name}: ")


def build_router(
    config: LLMConfig | None, store: Store, *, only: Sequence[str] | None = None, run_id: str | None = None,
    sleep: Sleep = asyncio.sleep,
) -> Router:
    """Providers from [llm] (presets filled in). `only` (--provider NAME...) replaces every chain."""
    llm = config or LLMConfig()
    if only:
        providers = [create_provider(resolve_provider(llm, name)) for name in only]
        return Router(providers, store=store, config=llm, run_id=run_id, sleep=sleep)
    names: list[str] = []
    for task in {*llm.tasks, "categorise", "reproduce", "candidates"}:
        names.extend(n for n in llm.chain_for(task) if n not in names)
    names.extend(n for n in llm.chain or [] if n not in names)
    return Router({n: create_provider(resolve_provider(llm, n)) for n in sorted(names)},
                  store=store, config=llm, run_id=run_id, sleep=sleep)


def provider_status(config: LLMConfig | None) -> list[ToolInfo]:
    """For `truthplane doctor`: each preset and configured provider, usable here or why not.

    Makes no network call: a local server's table being complete is all that can be said offline.
    """
    llm = config or LLMConfig()
    status = []
    for name in sorted({*PRESETS, *llm.providers}):
        try:
            settings = resolve_provider(llm, name)
        except ConfigError as exc:
            status.append(ToolInfo(name=name, installed=False, reason=exc.message))
            continue
        env = settings.api_key_env
        usable = env is None or bool(os.environ.get(env))
        reason = None if usable else f"{env} is not set: export it to use {name}"
        status.append(ToolInfo(name=name, installed=usable, version=settings.model, path=settings.base_url,
                               reason=reason))
    return status
