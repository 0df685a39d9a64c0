"""API keys are never stored, printed, logged, or put in messages, reprs or result rows."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.llm.conftest import GEMINI_KEY, KEY, Verdict, gemini_provider, openai_provider
from tests.llm.servers import OPENAI_500, Answer, GeminiServer, OpenAIServer, gemini_429
from truthplane.config import parse_config
from truthplane.errors import ConfigError
from truthplane.config.llm import LLMConfig, resolve_provider
from truthplane.llm.interface import Message, ProviderError
from truthplane.llm.router import Router, build_router
from truthplane.store import Store

MESSAGES = [Message(role="user", content="answer in json")]


def test_a_key_echoed_by_the_server_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    echoed = "sk-live-ECHOED-9876543210fedcba"
    monkeypatch.setenv("GROQ_API_KEY", echoed)
    server = OpenAIServer(api_key=KEY, echo_key=True)
    try:
        with pytest.raises(ProviderError) as caught:
            asyncio.run(openai_provider(server).complete(MESSAGES, Verdict))
    finally:
        server.stop()
    error = caught.value
    assert server.requests[0].headers["authorization"] == f"Bearer {echoed}"  # the server did get it
    assert "Incorrect API key provided: ***" in error.message
    for text in (error.message, str(error), repr(error), repr(error.args)):
        assert echoed not in text


def test_no_key_in_reprs_results_rows_or_logs(openai_server: OpenAIServer, gemini_server: GeminiServer,
                                              tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    openai_server.script(OPENAI_500)
    gemini_server.script(gemini_429("999s"))
    path = tmp_path / "history.sqlite3"
    groq, gemini = openai_provider(openai_server), gemini_provider(gemini_server)
    with Store.open(path) as store:
        router = Router([groq, gemini], store=store)
        with pytest.raises(ProviderError) as caught:
            asyncio.run(router.complete(MESSAGES, Verdict))
        completion = asyncio.run(router.complete(MESSAGES, Verdict))
        texts = [
            repr(groq), repr(gemini), repr(router), repr(store), str(vars(groq)), str(vars(gemini)),
            caught.value.message, repr(caught.value), str([a.model_dump() for a in caught.value.attempts]),
            completion.model_dump_json(), caplog.text,
            repr(resolve_provider(None, "groq")), repr(LLMConfig()),
        ]
        rows = store.usage_rows()
    assert len(rows) == 3
    texts.extend(str(row) for row in rows)
    for text in texts:
        assert KEY not in text and GEMINI_KEY not in text
    store_bytes = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("history"))
    assert KEY.encode() not in store_bytes and GEMINI_KEY.encode() not in store_bytes


def test_keys_in_truthplane_toml_are_refused_without_quoting_them() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"llm": {"providers": {"groq": {"api_key": KEY}}}}, "truthplane.toml")
    assert "api_key_env" in caught.value.message
    assert KEY not in caught.value.message


def test_providers_read_the_key_at_call_time(openai_server: OpenAIServer, store: Store,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROQ_API_KEY")
    router = build_router(LLMConfig.model_validate({"providers": {"groq": {"base_url": openai_server.base_url}}}),
                          store, only=["groq"])
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    openai_server.script(Answer('{"answer": "a", "score": 0, "locations": []}'))
    assert asyncio.run(router.complete(MESSAGES, Verdict)).provider == "groq"
