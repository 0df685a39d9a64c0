"""Fixtures: local API servers, providers pointed at them, a history store in tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.llm.servers import Answer, GeminiServer, OpenAIServer
from truthplane.config.llm import LLMConfig, ProviderConfig, resolve_provider
from truthplane.llm.gemini import GeminiProvider
from truthplane.llm.openai_compat import OpenAICompatProvider
from truthplane.store import Store

# looks like a real key so any leak is easy to grep for
KEY = "sk-test-SECRETKEY-0123456789abcdef"
GEMINI_KEY = "AIzaSy-SECRETKEY-gemini-0123456789"


class Verdict(BaseModel):
    """A small answer schema with a nested model, an optional field and a list."""

    class Location(BaseModel):
        path: str
        line: int

    answer: str
    score: float
    locations: list[Location]
    note: str | None = None


VALID = '{"answer": "yes", "score": 0.5, "locations": [{"path": "a.py", "line": 3}], "note": null}'


@pytest.fixture
def openai_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    server = OpenAIServer(api_key=KEY)
    server.default = Answer(VALID)
    yield server
    server.stop()


@pytest.fixture
def gemini_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[GeminiServer]:
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    server = GeminiServer(api_key=GEMINI_KEY)
    server.default = Answer(VALID)
    yield server
    server.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "history.sqlite3") as opened:
        yield opened


def llm_config(**providers: dict[str, Any]) -> LLMConfig:
    return LLMConfig(providers={name: ProviderConfig(**table) for name, table in providers.items()})


def openai_provider(server: OpenAIServer, name: str = "groq", **table: Any) -> OpenAICompatProvider:
    config = llm_config(**{name: {"base_url": server.base_url, **table}})
    return OpenAICompatProvider(resolve_provider(config, name))


def gemini_provider(server: GeminiServer, name: str = "gemini", **table: Any) -> GeminiProvider:
    config = llm_config(**{name: {"base_url": server.base_url, **table}})
    return GeminiProvider(resolve_provider(config, name))
