"""Budget: limits on calls, tokens and cost per run and per UTC day, kept in the history file."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from tests.llm.conftest import Verdict, openai_provider
from tests.llm.servers import Answer, OpenAIServer
from truthplane.config import parse_config
from truthplane.llm.budget import remaining, reserve_call, utc_day
from truthplane.config.llm import BudgetConfig, LLMConfig
from truthplane.llm.interface import Message, ProviderError
from truthplane.llm.router import Router
from truthplane.store import Store

MESSAGES = [Message(role="user", content="answer in json")]


def make_router(server: OpenAIServer, store: Store, run_id: str, **limits: float) -> Router:
    config = LLMConfig(budget=BudgetConfig.model_validate(limits))
    return Router([openai_provider(server)], store=store, config=config, run_id=run_id)


def call(router: Router) -> None:
    asyncio.run(router.complete(MESSAGES, Verdict))


def refused(router: Router) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call(router)
    return caught.value


def test_calls_per_run(openai_server: OpenAIServer, store: Store) -> None:
    router = make_router(openai_server, store, "run-1", max_calls_per_run=2)
    call(router)
    call(router)
    error = refused(router)
    assert error.kind == "budget"
    assert "max_calls_per_run = 2" in error.message and "0 left" in error.message and "2 used" in error.message
    assert len(openai_server.requests) == 2  # no call once spent
    assert error.attempts[-1].outcome == "budget"
    # another run has its own per-run budget
    call(make_router(openai_server, store, "run-2", max_calls_per_run=2))
    assert len(openai_server.requests) == 3


def test_budget_stops_the_whole_chain(openai_server: OpenAIServer, store: Store,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    second = OpenAIServer()
    try:
        providers = [openai_provider(openai_server), openai_provider(second, name="ollama", model="m")]
        openai_server.default = Answer("{broken")
        router = Router(providers, store=store, config=LLMConfig(budget=BudgetConfig(max_calls_per_run=1)))
        error = refused(router)
        assert error.kind == "budget"  # not all_failed: the fallback was not asked
        assert second.requests == []
    finally:
        second.stop()


def test_tokens_and_cost_per_run(openai_server: OpenAIServer, store: Store) -> None:
    openai_server.default = Answer('{"answer": "a", "score": 1, "locations": []}', prompt_tokens=600,
                                   completion_tokens=100)
    router = make_router(openai_server, store, "run-t", max_tokens_per_run=1000)
    call(router)
    error = refused(make_router(openai_server, store, "run-t", max_tokens_per_run=700))
    assert "max_tokens_per_run = 700" in error.message and "700 used" in error.message
    router = make_router(openai_server, store, "run-c", max_cost_per_run_usd=0.0005)
    call(router)  # 600 * 0.59e-6 + 100 * 0.79e-6 = $0.000433
    call(router)  # $0.000067 was left: the call in flight may overshoot, the next one is refused
    error = refused(router)
    assert "max_cost_per_run_usd = $0.0005" in error.message and "$0.0009 used" in error.message
    assert len(openai_server.requests) == 3


def test_a_prompt_larger_than_the_tokens_left_is_not_sent(openai_server: OpenAIServer, store: Store) -> None:
    router = make_router(openai_server, store, "run-big", max_tokens_per_run=50)
    with pytest.raises(ProviderError) as caught:
        asyncio.run(router.complete([Message(role="user", content="x" * 400)], Verdict))
    assert "the next prompt alone is about 100 tokens" in caught.value.message
    assert openai_server.requests == []


def test_per_day_limit_persists_across_reopen(openai_server: OpenAIServer, tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    with Store.open(path) as store:
        call(make_router(openai_server, store, "morning", max_calls_per_day=2))
        call(make_router(openai_server, store, "noon", max_calls_per_day=2))
    with Store.open(path) as store:
        error = refused(make_router(openai_server, store, "evening", max_calls_per_day=2))
        assert "for today (UTC)" in error.message and "max_calls_per_day = 2" in error.message
        status = remaining(store, LLMConfig(budget=BudgetConfig(max_calls_per_day=2, max_cost_per_day_usd=1.0)))
    assert len(openai_server.requests) == 2
    day = {limit.setting: limit for limit in status.limits}
    assert day["max_calls_per_day"].remaining == 0 and day["max_calls_per_day"].spent
    assert day["max_cost_per_day_usd"].used == pytest.approx(2 * (100 * 0.59 + 20 * 0.79) / 1e6)
    assert status.exhausted == [day["max_calls_per_day"]]
    assert status.day == utc_day()


def test_yesterday_does_not_count_today(store: Store) -> None:
    budget = BudgetConfig(max_calls_per_day=1)
    yesterday = 1_700_000_000.0
    reserve_call(store, budget, run_id="a", task="t", provider="p", model="m", now=yesterday)
    reserve_call(store, budget, run_id="b", task="t", provider="p", model="m", now=yesterday + 86_400)
    with pytest.raises(ProviderError):
        reserve_call(store, budget, run_id="c", task="t", provider="p", model="m", now=yesterday + 86_401)


def test_remaining_reports_run_and_day(openai_server: OpenAIServer, store: Store) -> None:
    call(make_router(openai_server, store, "r1"))
    config = LLMConfig(budget=BudgetConfig(max_calls_per_run=5, max_tokens_per_day=1000))
    status = remaining(store, config, run_id="r1")
    assert [(s.setting, s.used, s.remaining) for s in status.limits] == [
        ("max_calls_per_run", 1, 4), ("max_tokens_per_day", 120, 880)]
    assert status.lines() == [
        "max_calls_per_run: 1 used of 5, 4 left",
        "max_tokens_per_day: 120 used of 1000, 880 left",
    ]
    assert remaining(store, LLMConfig()).lines() == ["no LLM budget limits set ([llm.budget] in truthplane.toml)"]
    whole = parse_config({"llm": {"budget": {"max_calls_per_day": 3}}}, "truthplane.toml")  # the whole Config works
    assert remaining(store, whole).lines() == ["max_calls_per_day: 1 used of 3, 2 left"]


def test_unknown_cost_calls_are_counted_and_said(openai_server: OpenAIServer, store: Store) -> None:
    router = Router([openai_provider(openai_server, model="mystery-model")], store=store,
                    config=LLMConfig(budget=BudgetConfig(max_cost_per_day_usd=1.0)))
    call(router)
    status = remaining(store, router.config)
    assert status.unknown_cost_calls_today == 1
    assert "1 call(s) today had no known price" in status.lines()[-1]


def test_concurrent_reservations_never_exceed_the_call_limit(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    budget = BudgetConfig(max_calls_per_day=25)
    granted: list[int] = []
    refusals: list[str] = []

    def worker() -> None:
        with Store.open(path) as store:
            for _ in range(10):
                try:
                    granted.append(reserve_call(store, budget, run_id="r", task="t", provider="p", model="m"))
                except ProviderError as exc:
                    refusals.append(exc.kind)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 25 and len(set(granted)) == 25
    assert refusals == ["budget"] * 35
