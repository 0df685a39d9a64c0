"""The OpenAI-compatible provider against a local server speaking chat completions."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from tests.llm.conftest import KEY, VALID, Verdict, openai_provider
from tests.llm.servers import OPENAI_500, Answer, Behaviour, Hang, OpenAIServer, Raw, openai_429
from truthplane.config.llm import LLMConfig, ProviderConfig, resolve_provider
from truthplane.llm.interface import Completion, Message, ProviderError, prompt_hash
from truthplane.llm.openai_compat import OpenAICompatProvider

MESSAGES = [Message(role="system", content="be brief"), Message(role="user", content="is it fixed?")]


def ask(provider: OpenAICompatProvider) -> Completion[Verdict]:
    return asyncio.run(provider.complete(MESSAGES, Verdict))


def fail(provider: OpenAICompatProvider) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        ask(provider)
    return caught.value


def test_happy_path_request_and_answer(openai_server: OpenAIServer) -> None:
    openai_server.script(Answer(VALID, prompt_tokens=1000, completion_tokens=500))
    completion = asyncio.run(openai_provider(openai_server).complete(MESSAGES, Verdict))

    request = openai_server.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.body["model"] == "llama-3.3-70b-versatile"
    assert request.body["messages"] == [{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": "is it fixed?"}]
    response_format = request.body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "Verdict"
    assert response_format["json_schema"]["strict"] is True
    assert response_format["json_schema"]["schema"]["additionalProperties"] is False

    assert completion.value == Verdict.model_validate_json(VALID)
    assert (completion.provider, completion.model) == ("groq", "llama-3.3-70b-versatile")
    assert (completion.prompt_tokens, completion.completion_tokens) == (1000, 500)
    assert completion.cost_usd == pytest.approx((1000 * 0.59 + 500 * 0.79) / 1e6)
    assert completion.prompt_hash == prompt_hash(MESSAGES, Verdict)
    assert completion.latency_s > 0
    assert completion.model_dump()["value"]["locations"] == [{"path": "a.py", "line": 3}]


def test_auto_falls_back_to_json_object_when_the_server_rejects_json_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    server = OpenAIServer(api_key=KEY, json_schema=False)
    server.default = Answer(VALID)
    try:
        provider = openai_provider(server)
        assert ask(provider).value.answer == "yes"
        first, second = server.requests
        assert first.body["response_format"]["type"] == "json_schema"
        assert second.body["response_format"] == {"type": "json_object"}
        system = second.body["messages"][0]
        assert system["role"] == "system" and system["content"].startswith("be brief")
        assert '"locations"' in system["content"] and "JSON schema" in system["content"]
        assert provider.structured_output == "json_object"
        ask(provider)  # remembered: no second rejected request
        assert [r.body["response_format"]["type"] for r in server.requests[2:]] == ["json_object"]
    finally:
        server.stop()


def test_json_schema_only_provider_does_not_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    server = OpenAIServer(api_key=KEY, json_schema=False)
    try:
        error = fail(openai_provider(server, structured_output="json_schema"))
        assert error.kind == "bad_request" and "response_format" in error.message
        assert len(server.requests) == 1
    finally:
        server.stop()


def test_deepseek_preset_uses_json_object(openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", KEY)
    completion = ask(openai_provider(openai_server, name="deepseek"))
    body = openai_server.requests[0].body
    assert body["model"] == "deepseek-chat"
    assert body["response_format"] == {"type": "json_object"}
    assert completion.cost_usd is not None


def test_local_server_needs_no_key_and_costs_nothing(openai_server: OpenAIServer) -> None:
    local = OpenAIServer()
    local.default = Answer(VALID)
    try:
        completion = ask(openai_provider(local, name="ollama", model="qwen2.5-coder:7b"))
        assert "authorization" not in local.requests[0].headers
        assert completion.cost_usd == 0.0
    finally:
        local.stop()


def test_unknown_model_has_unknown_cost_and_price_override_fills_it_in(openai_server: OpenAIServer) -> None:
    assert ask(openai_provider(openai_server, model="some-new-model")).cost_usd is None
    priced = openai_provider(openai_server, model="some-new-model",
                             price={"input_per_mtok": 1.0, "output_per_mtok": 2.0})
    assert ask(priced).cost_usd == pytest.approx((100 * 1.0 + 20 * 2.0) / 1e6)


def test_answer_in_a_code_fence_is_accepted(openai_server: OpenAIServer) -> None:
    openai_server.script(Answer(f"```json\n{VALID}\n```"))
    assert ask(openai_provider(openai_server)).value.score == 0.5


@pytest.mark.parametrize(
    ("behaviour", "kind", "words"),
    [
        (Answer("Sure! Here is the JSON you asked for: {answer: yes"), "invalid_json", "not valid JSON"),
        (Answer('{"answer": "yes", "score": "high", "locations": []}'), "schema_mismatch", "score"),
        (Answer('{"answer": "yes"}'), "schema_mismatch", "Verdict"),
        (Answer(VALID, finish="length"), "invalid_json", "cut off"),
        (Answer("", refusal="I can't help with that."), "refused", "can't help"),
        (OPENAI_500, "http_5xx", "HTTP 500"),
        (Raw(502, "<html><body>502 Bad Gateway</body></html>"), "http_5xx", "Bad Gateway"),
        (openai_429("7"), "rate_limited", "Rate limit reached"),
    ],
)
def test_failures_have_their_kind(openai_server: OpenAIServer, behaviour: Behaviour, kind: str, words: str) -> None:
    openai_server.script(behaviour)
    error = fail(openai_provider(openai_server))
    assert error.kind == kind
    assert words in error.message
    assert "\n" not in error.message
    if isinstance(behaviour, Answer):  # the call happened: its tokens were spent
        assert (error.prompt_tokens, error.completion_tokens) == (100, 20)


def test_retry_after_seconds_is_read(openai_server: OpenAIServer) -> None:
    openai_server.script(openai_429("7"))
    assert fail(openai_provider(openai_server)).retry_after == 7.0


def test_wrong_key_is_an_auth_error_naming_the_variable(openai_server: OpenAIServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "sk-wrong-key-000000000000")
    error = fail(openai_provider(openai_server))
    assert error.kind == "auth"
    assert "GROQ_API_KEY" in error.message and "401" in error.message


def test_missing_key_fails_without_a_request(openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROQ_API_KEY")
    provider = openai_provider(openai_server)
    assert provider.missing_key() is not None
    error = fail(provider)
    assert error.kind == "auth" and "GROQ_API_KEY is not set" in error.message
    assert openai_server.requests == []


def test_api_key_env_names_another_variable(openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GROQ_API_KEY")
    monkeypatch.setenv("MY_GROQ", KEY)
    ask(openai_provider(openai_server, api_key_env="MY_GROQ"))
    assert openai_server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_timeout(openai_server: OpenAIServer) -> None:
    openai_server.script(Hang(10))
    provider = openai_provider(openai_server, timeout_s=0.3)
    error = fail(provider)
    assert error.kind == "timeout" and "0.3 s" in error.message


def test_nothing_listening_is_a_connection_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", KEY)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = LLMConfig(providers={"groq": ProviderConfig(base_url=f"http://127.0.0.1:{port}/v1")})
    error = fail(OpenAICompatProvider(resolve_provider(config, "groq")))
    assert error.kind == "connection"
    assert f"127.0.0.1:{port}" in error.message


def test_not_a_chat_completion(openai_server: OpenAIServer) -> None:
    openai_server.script(Raw(200, json.dumps({"object": "list", "data": []}), "application/json"))
    assert fail(openai_provider(openai_server)).kind == "invalid_json"


def test_max_output_tokens_is_sent(openai_server: OpenAIServer) -> None:
    ask(openai_provider(openai_server, max_output_tokens=256, temperature=0.2))
    body = openai_server.requests[0].body
    assert body["max_tokens"] == 256 and body["temperature"] == 0.2
