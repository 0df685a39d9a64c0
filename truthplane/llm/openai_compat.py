"""OpenAI chat completions over httpx: OpenAI, DeepSeek, Groq, and local servers (Ollama, vLLM,
llama.cpp, LM Studio) by base URL.

`POST {base_url}/chat/completions` with `Authorization: Bearer <key>` (no header for keyless local
servers). Structured output is asked for as `response_format = {"type": "json_schema", "json_schema":
{"name", "schema", "strict": true}}`; servers without it get `{"type": "json_object"}` and the schema
in the prompt (`structured_output = "json_object"`, or `"auto"`: try json_schema once, and switch for
good when the server rejects it).
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

from pydantic import BaseModel

from truthplane.llm import _http
from truthplane.llm._prices import estimate_cost
from truthplane.config.llm import ResolvedProvider
from truthplane.llm.interface import (
    Completion,
    Message,
    Provider,
    ProviderError,
    Spent,
    T,
    canonical_json,
    make_completion,
    parse_answer,
    prompt_hash,
)

# keywords strict mode does not accept; pydantic validates them on our side anyway
_DROPPED_IN_STRICT = {
    "default", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minItems", "maxItems", "examples",
}
# a 400 mentioning these means the server does not do json_schema response formats
_SCHEMA_REJECTED = re.compile(r"response_format|json_schema|structured|grammar", re.IGNORECASE)


def strict_schema(schema: type[BaseModel]) -> dict[str, Any]:
    """The pydantic JSON schema in OpenAI strict mode's subset: every object closed, every field required."""
    document = copy.deepcopy(schema.model_json_schema())

    def visit(node: Any) -> Any:
        if isinstance(node, list):
            return [visit(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            return {"$ref": node["$ref"]}  # strict mode wants $ref alone
        out = {key: visit(value) for key, value in node.items() if key not in _DROPPED_IN_STRICT}
        if "properties" in node:
            out["properties"] = {name: visit(sub) for name, sub in node["properties"].items()}
        if out.get("type") == "object" or "properties" in out:
            out["additionalProperties"] = False
            out["required"] = list(out.get("properties", {}))
        return out

    result: dict[str, Any] = visit(document)
    return result


def schema_instruction(schema: type[BaseModel]) -> str:
    return (
        "Answer with exactly one JSON object, no prose and no code fences, that validates against "
        f"this JSON schema:\n{canonical_json(schema.model_json_schema())}"
    )


class OpenAICompatProvider(Provider):
    def __init__(self, settings: ResolvedProvider) -> None:
        self.name = settings.name
        self.model = settings.model
        self._settings = settings
        self._mode = "json_schema" if settings.structured_output in ("auto", "json_schema") else "json_object"

    @property
    def structured_output(self) -> str:
        """What the next request will ask for: json_schema, or json_object after a fallback."""
        return self._mode

    def missing_key(self) -> str | None:
        env = self._settings.api_key_env
        if env and not os.environ.get(env):
            return f"{self.name}: {env} is not set (export it, or drop {self.name} from the [llm] chain)"
        return None

    def request_body(self, messages: list[Message], schema: type[BaseModel], mode: str) -> dict[str, Any]:
        wire = [{"role": m.role, "content": m.content} for m in messages]
        body: dict[str, Any] = {"model": self.model, "messages": wire, "temperature": self._settings.temperature}
        if mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema.__name__[:64], "schema": strict_schema(schema), "strict": True},
            }
        else:
            instruction = schema_instruction(schema)
            if wire and wire[0]["role"] == "system":
                wire[0] = {"role": "system", "content": wire[0]["content"] + "\n\n" + instruction}
            else:
                wire.insert(0, {"role": "system", "content": instruction})
            body["response_format"] = {"type": "json_object"}
        if self._settings.max_output_tokens is not None:
            body["max_tokens"] = self._settings.max_output_tokens
        return body

    async def complete(self, messages: list[Message], schema: type[T]) -> Completion[T]:
        missing = self.missing_key()
        if missing:
            raise ProviderError(missing, kind="auth", provider=self.name, model=self.model)
        env = self._settings.api_key_env
        key = os.environ.get(env, "") if env else ""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        url = f"{self._settings.base_url}/chat/completions"
        answer = await self._post(url, headers, self.request_body(messages, schema, self._mode), key)
        if (
            answer.status in (400, 422)
            and self._mode == "json_schema"
            and self._settings.structured_output == "auto"
            and _SCHEMA_REJECTED.search(_http.error_message(answer))
        ):
            self._mode = "json_object"
            answer = await self._post(url, headers, self.request_body(messages, schema, self._mode), key)
        if not 200 <= answer.status < 300:
            raise _http.status_error(
                answer, provider=self.name, model=self.model, secret=key, key_env=env,
            )
        return self._completion(answer, messages, schema)

    async def _post(self, url: str, headers: dict[str, str], body: dict[str, Any], key: str) -> _http.HttpAnswer:
        return await _http.post_json(
            url, headers=headers, body=body, timeout_s=self._settings.timeout_s,
            provider=self.name, model=self.model, secret=key,
        )

    def _completion(self, answer: _http.HttpAnswer, messages: list[Message], schema: type[T]) -> Completion[T]:
        data = answer.data
        usage = data.get("usage") if isinstance(data, dict) else None
        prompt_tokens = _int(usage, "prompt_tokens")
        completion_tokens = _int(usage, "completion_tokens")
        cost = estimate_cost(self.model, prompt_tokens, completion_tokens, self._settings.price)
        spent: Spent = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "cost_usd": cost}
        try:
            choice = data["choices"][0]
            message = choice["message"]
        except (TypeError, KeyError, IndexError):
            raise ProviderError(
                f"{self.name}: the server's answer is not a chat completion (no choices[0].message)",
                kind="invalid_json", provider=self.name, model=self.model, **spent,
            ) from None
        if message.get("refusal"):
            raise ProviderError(
                f"{self.name}: the model refused: {message['refusal']}",
                kind="refused", provider=self.name, model=self.model, **spent,
            )
        finish = choice.get("finish_reason")
        if finish == "content_filter":
            raise ProviderError(
                f"{self.name}: the answer was withheld by the content filter",
                kind="refused", provider=self.name, model=self.model, **spent,
            )
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            raise ProviderError(
                f"{self.name}: the answer is empty (finish_reason={finish})",
                kind="invalid_json", provider=self.name, model=self.model, **spent,
            )
        if finish == "length":
            raise ProviderError(
                f"{self.name}: the answer was cut off at the token limit; raise max_output_tokens",
                kind="invalid_json", provider=self.name, model=self.model, **spent,
            )
        value = parse_answer(content, schema, provider=self.name, model=self.model, **spent)
        return make_completion(
            schema, value=value, provider=self.name, model=self.model,
            prompt_tokens=prompt_tokens or 0, completion_tokens=completion_tokens or 0,
            cost_usd=cost, latency_s=answer.latency_s, prompt_hash=prompt_hash(messages, schema),
        )


def _int(mapping: Any, key: str) -> int | None:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, int) else None
