"""The Gemini provider against a local server speaking generateContent."""

from __future__ import annotations

import asyncio
import json
from enum import Enum

import pytest
from pydantic import BaseModel

from tests.llm.conftest import GEMINI_KEY, VALID, Verdict, gemini_provider
from tests.llm.servers import GEMINI_500, GEMINI_503, Answer, Behaviour, GeminiServer, Hang, Raw, gemini_429
from truthplane.llm.gemini import GeminiProvider, gemini_schema
from truthplane.llm.interface import Message, ProviderError, prompt_hash

MESSAGES = [
    Message(role="system", content="be brief"),
    Message(role="user", content="is it fixed?"),
    Message(role="assistant", content="{}"),
    Message(role="user", content="again"),
]


def fail(provider: GeminiProvider, schema: type[BaseModel] = Verdict) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        asyncio.run(provider.complete(MESSAGES, schema))
    return caught.value


def test_happy_path_request_and_answer(gemini_server: GeminiServer) -> None:
    gemini_server.script(Answer(VALID, prompt_tokens=2000, completion_tokens=400))
    completion = asyncio.run(gemini_provider(gemini_server).complete(MESSAGES, Verdict))

    request = gemini_server.requests[0]
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == GEMINI_KEY
    assert "authorization" not in request.headers
    assert request.body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert [c["role"] for c in request.body["contents"]] == ["user", "model", "user"]
    config = request.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config["responseSchema"]
    assert schema["type"] == "OBJECT"
    assert schema["propertyOrdering"] == ["answer", "score", "locations", "note"]
    assert schema["properties"]["locations"]["items"]["properties"]["line"] == {"type": "INTEGER"}
    assert schema["properties"]["note"] == {"type": "STRING", "nullable": True}
    assert "$ref" not in json.dumps(schema) and "$defs" not in json.dumps(schema)

    assert completion.value == Verdict.model_validate_json(VALID)
    assert (completion.prompt_tokens, completion.completion_tokens) == (2000, 400)
    assert completion.cost_usd == pytest.approx((2000 * 0.30 + 400 * 2.50) / 1e6)
    assert completion.prompt_hash == prompt_hash(MESSAGES, Verdict)


class Colour(str, Enum):
    RED = "red"
    BLUE = "blue"


class Inner(BaseModel):
    """An inner model with a docstring (pydantic puts it in the schema as description)."""

    values: list[int]
    colour: Colour = Colour.RED


class Nested(BaseModel):
    inner: Inner
    inners: list[Inner]
    maybe: Inner | None = None
    choice: int | str
    tags: dict[str, str] = {}
    title_field: str = "x"


def test_schema_conversion_is_accepted_by_the_api_shape(gemini_server: GeminiServer) -> None:
    schema = gemini_schema(Nested)
    text = json.dumps(schema)
    for banned in ("$ref", "$defs", "additionalProperties", "default", '"title"', '"const"'):
        assert banned not in text
    assert schema["properties"]["inner"]["properties"]["colour"] == {"type": "STRING", "enum": ["red", "blue"]}
    assert schema["properties"]["maybe"]["nullable"] is True
    assert schema["properties"]["maybe"]["properties"]["values"]["items"] == {"type": "INTEGER"}
    assert schema["properties"]["choice"] == {"anyOf": [{"type": "INTEGER"}, {"type": "STRING"}]}
    assert schema["required"] == ["inner", "inners", "choice"]
    assert "tags" not in schema["properties"]  # a free-form mapping: left to pydantic
    answer = {"inner": {"values": [1], "colour": "blue"}, "inners": [], "choice": 3}
    gemini_server.script(Answer(json.dumps(answer)))
    completion = asyncio.run(gemini_provider(gemini_server).complete(MESSAGES, Nested))
    assert completion.value.inner.colour is Colour.BLUE


class Tree(BaseModel):
    name: str
    children: list[Tree] = []


class Mapping_(BaseModel):
    table: dict[str, int]


def test_required_free_form_object_is_unsupported(gemini_server: GeminiServer) -> None:
    error = fail(gemini_provider(gemini_server), Mapping_)
    assert error.kind == "unsupported" and "table" in error.message


def test_recursive_schema_is_unsupported_without_a_call(gemini_server: GeminiServer) -> None:
    error = fail(gemini_provider(gemini_server), Tree)
    assert error.kind == "unsupported" and "Tree" in error.message
    assert gemini_server.requests == []


def test_invalid_key_is_an_auth_error(gemini_server: GeminiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-wrong")
    error = fail(gemini_provider(gemini_server))
    assert error.kind == "auth"  # Google answers a bad key with 400 API_KEY_INVALID
    assert "GEMINI_API_KEY" in error.message and "API key not valid" in error.message


def test_missing_key_header_is_an_auth_error(gemini_server: GeminiServer) -> None:
    error = fail(gemini_provider(gemini_server, api_key_env=""))
    assert error.kind == "auth" and "403" in error.message


def test_retry_info_gives_retry_after(gemini_server: GeminiServer) -> None:
    gemini_server.script(gemini_429("2.5s"))
    error = fail(gemini_provider(gemini_server))
    assert error.kind == "rate_limited" and error.retry_after == 2.5
    assert "exceeded your current quota" in error.message


@pytest.mark.parametrize(
    ("behaviour", "kind", "words"),
    [
        (GEMINI_500, "http_5xx", "An internal error has occurred"),
        (GEMINI_503, "http_5xx", "overloaded"),
        (Answer("not json at all"), "invalid_json", "not valid JSON"),
        (Answer('{"answer": 1}'), "schema_mismatch", "Verdict"),
        (Answer(VALID, finish="SAFETY"), "refused", "SAFETY"),
        (Answer(VALID, finish="RECITATION"), "refused", "RECITATION"),
        (Answer(VALID[:20], finish="MAX_TOKENS"), "invalid_json", "cut off"),
        (Raw(200, json.dumps({"promptFeedback": {"blockReason": "SAFETY"},
                              "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}), "application/json"),
         "refused", "prompt was blocked (SAFETY)"),
    ],
)
def test_failures_have_their_kind(gemini_server: GeminiServer, behaviour: Behaviour, kind: str, words: str) -> None:
    gemini_server.script(behaviour)
    error = fail(gemini_provider(gemini_server))
    assert error.kind == kind
    assert words in error.message


def test_thinking_tokens_count_as_output(gemini_server: GeminiServer) -> None:
    body = {
        "candidates": [{"content": {"parts": [{"text": "thinking...", "thought": True}, {"text": VALID}],
                                    "role": "model"}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7,
                          "totalTokenCount": 22},
    }
    gemini_server.script(Raw(200, json.dumps(body), "application/json"))
    completion = asyncio.run(gemini_provider(gemini_server).complete(MESSAGES, Verdict))
    assert completion.completion_tokens == 12
    assert completion.value.answer == "yes"


def test_timeout(gemini_server: GeminiServer) -> None:
    gemini_server.script(Hang(10))
    assert fail(gemini_provider(gemini_server, timeout_s=0.3)).kind == "timeout"


def test_model_prefix_and_other_model(gemini_server: GeminiServer) -> None:
    asyncio.run(gemini_provider(gemini_server, model="models/gemini-2.0-flash").complete(MESSAGES, Verdict))
    assert gemini_server.requests[0].path == "/v1beta/models/gemini-2.0-flash:generateContent"
