"""The fallback chain over real local servers: groq (OpenAI wire format) first, gemini second."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from tests.llm.conftest import Verdict, gemini_provider, llm_config, openai_provider
from tests.llm.servers import (
    OPENAI_500,
    Answer,
    Behaviour,
    GeminiServer,
    Hang,
    OpenAIServer,
    gemini_429,
    openai_429,
    openai_error,
)
from truthplane.config.llm import LLMConfig, RetryConfig
from truthplane.llm.interface import Completion, Message, ProviderError
from truthplane.llm.router import Router, build_router
from truthplane.store import Store

MESSAGES = [Message(role="user", content="fix it, answer in json")]


class Sleeps:
    """Records the waits the router asks for instead of sleeping them (test_real_wait_for_retry_after sleeps)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def router(openai: OpenAIServer, gemini: GeminiServer, store: Store, *, retry: RetryConfig | None = None,
           sleep: Sleeps | None = None, timeout_s: float = 5.0) -> Router:
    config = LLMConfig(retry=retry or RetryConfig(max_retries=2, max_wait_s=10, backoff_s=0.5))
    providers = [openai_provider(openai, timeout_s=timeout_s), gemini_provider(gemini)]
    return Router(providers, store=store, config=config, sleep=sleep or Sleeps())


def run(r: Router) -> Completion[Verdict]:
    return asyncio.run(r.complete(MESSAGES, Verdict, task="candidates"))


def test_first_provider_answers(openai_server: OpenAIServer, gemini_server: GeminiServer, store: Store) -> None:
    r = router(openai_server, gemini_server, store)
    completion = run(r)
    assert completion.provider == "groq"
    assert [a.outcome for a in completion.attempts] == ["ok"]
    assert gemini_server.requests == []
    rows = store.usage_rows(run_id=r.run_id)
    assert [(row.provider, row.outcome, row.prompt_tokens, row.completion_tokens) for row in rows] == [
        ("groq", "ok", 100, 20)]
    assert rows[0].cost_usd == pytest.approx(completion.cost_usd)
    assert rows[0].prompt_hash == completion.prompt_hash and rows[0].task == "candidates"


@pytest.mark.parametrize(
    ("behaviour", "outcome"),
    [
        (Answer("{not json"), "invalid_json"),
        (Answer('{"answer": "yes"}'), "schema_mismatch"),
        (OPENAI_500, "http_5xx"),
        (Hang(10), "timeout"),
        (Answer("", refusal="no"), "refused"),
    ],
)
def test_falls_back_to_the_next_provider(openai_server: OpenAIServer, gemini_server: GeminiServer, store: Store,
                                         behaviour: Behaviour, outcome: str) -> None:
    openai_server.script(behaviour)
    r = router(openai_server, gemini_server, store, timeout_s=0.5 if isinstance(behaviour, Hang) else 30)
    completion = run(r)
    assert completion.provider == "gemini"
    assert [(a.provider, a.outcome) for a in completion.attempts] == [("groq", outcome), ("gemini", "ok")]
    assert len(openai_server.requests) == 1  # no retry on these
    rows = store.usage_rows(run_id=r.run_id)
    assert [(row.provider, row.outcome) for row in rows] == [("groq", outcome), ("gemini", "ok")]
    if isinstance(behaviour, Answer) and not behaviour.refusal:  # a bad answer still cost tokens
        assert completion.attempts[0].prompt_tokens == 100 and rows[0].cost_usd is not None


def test_auth_error_falls_back_names_the_key_and_skips_the_provider_afterwards(
        openai_server: OpenAIServer, gemini_server: GeminiServer, store: Store,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "sk-wrong-0000000000000")
    r = router(openai_server, gemini_server, store)
    first = run(r)
    assert first.provider == "gemini"
    assert first.attempts[0].outcome == "auth" and "GROQ_API_KEY" in first.attempts[0].message
    second = run(r)
    assert second.provider == "gemini"
    assert len(openai_server.requests) == 1  # a rejected key is not tried again in the same run
    assert second.attempts[0].outcome == "auth"


def test_unset_key_skips_the_provider_without_a_call(openai_server: OpenAIServer, gemini_server: GeminiServer,
                                                     store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROQ_API_KEY")
    r = router(openai_server, gemini_server, store)
    completion = run(r)
    assert completion.provider == "gemini"
    assert openai_server.requests == []
    assert "GROQ_API_KEY is not set" in completion.attempts[0].message
    assert [row.provider for row in store.usage_rows(run_id=r.run_id)] == ["gemini"]  # no call, no usage row


def test_retry_after_is_honoured_then_the_same_provider_answers(
        openai_server: OpenAIServer, gemini_server: GeminiServer, store: Store) -> None:
    openai_server.script(openai_429("3"), openai_429("2"))
    sleeps = Sleeps()
    completion = run(router(openai_server, gemini_server, store, sleep=sleeps))
    assert completion.provider == "groq"
    assert sleeps.waits == [3.0, 2.0]
    assert [(a.outcome, a.waited_s) for a in completion.attempts] == [
        ("rate_limited", 0.0), ("rate_limited", 3.0), ("ok", 2.0)]
    assert gemini_server.requests == []


def test_a_503_with_retry_after_is_retried_a_500_without_is_not(
        openai_server: OpenAIServer, gemini_server: GeminiServer, store: Store) -> None:
    overloaded = openai_error(503, "The engine is currently overloaded, please try again later",
                              type_="server_error", headers={"Retry-After": "2"})
    openai_server.script(overloaded, OPENAI_500)
    sleeps = Sleeps()
    completion = run(router(openai_server, gemini_server, store, sleep=sleeps))
    assert sleeps.waits == [2.0]
    assert [(a.provider, a.outcome) for a in completion.attempts] == [
        ("groq", "http_5xx"), ("groq", "http_5xx"), ("gemini", "ok")]


def test_retry_after_http_date(openai_server: OpenAIServer, gemini_server: GeminiServer, store: Store) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    openai_server.script(openai_429(when))
    sleeps = Sleeps()
    assert run(router(openai_server, gemini_server, store, sleep=sleeps)).provider == "groq"
    assert len(sleeps.waits) == 1 and 2.0 <= sleeps.waits[0] <= 4.0


def test_real_wait_for_retry_after(openai_server: OpenAIServer, gemini_server: GeminiServer, store: Store) -> None:
    openai_server.script(openai_429("1"))
    config = LLMConfig(retry=RetryConfig(max_retries=1, max_wait_s=5))
    r = Router([openai_provider(openai_server), gemini_provider(gemini_server)], store=store, config=config)
    started = time.monotonic()
    assert run(r).provider == "groq"
    assert time.monotonic() - started >= 1.0


def test_retries_are_bounded_then_fall_back(openai_server: OpenAIServer, gemini_server: GeminiServer,
                                             store: Store) -> None:
    openai_server.default = openai_429(None)  # no Retry-After: exponential backoff
    sleeps = Sleeps()
    completion = run(router(openai_server, gemini_server, store, sleep=sleeps))
    assert completion.provider == "gemini"
    assert len(openai_server.requests) == 3  # the call and max_retries=2 retries
    assert sleeps.waits == [0.5, 1.0]


def test_a_wait_past_the_cap_falls_back_at_once(openai_server: OpenAIServer, gemini_server: GeminiServer,
                                                 store: Store) -> None:
    openai_server.script(openai_429("120"))
    sleeps = Sleeps()
    completion = run(router(openai_server, gemini_server, store, sleep=sleeps))
    assert completion.provider == "gemini"
    assert sleeps.waits == []
    assert len(openai_server.requests) == 1


def test_all_failing_lists_every_reason_in_one_line(openai_server: OpenAIServer, gemini_server: GeminiServer,
                                                     store: Store) -> None:
    openai_server.default = OPENAI_500
    gemini_server.default = gemini_429("300s")
    with pytest.raises(ProviderError) as caught:
        run(router(openai_server, gemini_server, store, sleep=Sleeps()))
    error = caught.value
    assert error.kind == "all_failed"
    assert "\n" not in error.message
    assert error.message.startswith("no LLM provider answered: groq: server error: HTTP 500")
    assert "gemini: rate limited" in error.message and "300 s" in error.message
    assert [(a.provider, a.outcome) for a in error.attempts] == [("groq", "http_5xx"), ("gemini", "rate_limited")]


def test_per_task_chains(openai_server: OpenAIServer, gemini_server: GeminiServer, store: Store) -> None:
    config = llm_config(groq={"base_url": openai_server.base_url}, gemini={"base_url": gemini_server.base_url})
    config.tasks = {"categorise": ["groq", "gemini"], "candidates": ["gemini"]}
    r = build_router(config, store)
    assert asyncio.run(r.complete(MESSAGES, Verdict, task="categorise")).provider == "groq"
    assert asyncio.run(r.complete(MESSAGES, Verdict, task="candidates")).provider == "gemini"
    # no [llm] chain: tasks without a table follow the built-in plan (gemini generates, deepseek falls back)
    assert r.chain_for("reproduce") == ["gemini", "deepseek"]


def test_only_selects_providers_by_name_with_just_the_key_set(gemini_server: GeminiServer, store: Store) -> None:
    config = llm_config(gemini={"base_url": gemini_server.base_url})
    r = build_router(config, store, only=["gemini"])
    assert r.chain_for("categorise") == ["gemini"]
    assert asyncio.run(r.complete(MESSAGES, Verdict, task="categorise")).value.answer == "yes"


def test_answers_from_concurrent_calls_are_all_recorded(openai_server: OpenAIServer, gemini_server: GeminiServer,
                                                         store: Store) -> None:
    r = router(openai_server, gemini_server, store)

    async def many() -> list[Completion[Verdict]]:
        return await asyncio.gather(*(r.complete(MESSAGES, Verdict) for _ in range(5)))

    assert {c.provider for c in asyncio.run(many())} == {"groq"}
    assert [row.outcome for row in store.usage_rows(run_id=r.run_id)] == ["ok"] * 5



def test_no_keys_at_all_names_every_variable(openai_server: OpenAIServer, gemini_server: GeminiServer,
                                             store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROQ_API_KEY")
    monkeypatch.delenv("GEMINI_API_KEY")
    with pytest.raises(ProviderError) as caught:
        run(router(openai_server, gemini_server, store))
    assert caught.value.message == (
        "no LLM provider answered: "
        "groq: auth: GROQ_API_KEY is not set (export it, or drop groq from the [llm] chain); "
        "gemini: auth: GEMINI_API_KEY is not set (export it, or drop gemini from the [llm] chain)"
    )
    assert openai_server.requests == [] and gemini_server.requests == [] and store.usage_rows() == []
