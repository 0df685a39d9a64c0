"""Google Gemini's native API: `POST {base_url}/models/{model}:generateContent`, key in `x-goog-api-key`.

Structured output goes in `generationConfig.responseSchema`, which takes a subset of OpenAPI 3.0, not
JSON Schema: `gemini_schema` inlines $ref/$defs, turns `anyOf [X, null]` into `nullable`, and drops
what the API rejects (additionalProperties, title, default, string constraints). The answer is
`candidates[0].content.parts[*].text`; a blocked prompt or a SAFETY/RECITATION finish is an error.
"""

from __future__ import annotations

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
    make_completion,
    parse_answer,
    prompt_hash,
)

# the Schema fields generateContent accepts; anything else is "Unknown name ... Cannot find field"
GEMINI_SCHEMA_FIELDS = {
    "type", "format", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "propertyOrdering", "items", "anyOf", "minimum", "maximum",
}
_TYPES = {"string": "STRING", "number": "NUMBER", "integer": "INTEGER", "boolean": "BOOLEAN",
          "array": "ARRAY", "object": "OBJECT"}
_REFUSALS = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "LANGUAGE", "IMAGE_SAFETY", "OTHER"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class SchemaNotSupported(ValueError):
    """The answer schema cannot be said in Gemini's schema subset (a recursive model)."""


def gemini_schema(schema: type[BaseModel]) -> dict[str, Any]:
    document = schema.model_json_schema()
    definitions: dict[str, Any] = document.get("$defs", {})

    def convert(node: dict[str, Any], seen: tuple[str, ...]) -> dict[str, Any]:
        if "$ref" in node:
            name = str(node["$ref"]).rsplit("/", 1)[-1]
            if name in seen:
                raise SchemaNotSupported(f"{schema.__name__} refers to itself through {name}")
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            return convert({**definitions[name], **siblings}, (*seen, name))
        for combinator in ("anyOf", "oneOf", "allOf"):
            if combinator in node:
                options = [s for s in node[combinator] if s.get("type") != "null"]
                nullable = len(options) < len(node[combinator])
                extra = {k: v for k, v in node.items() if k in ("description",)}
                if len(options) == 1:
                    merged = convert({**options[0], **extra}, seen)
                else:
                    merged = {"anyOf": [convert(s, seen) for s in options], **extra}
                if nullable:
                    merged["nullable"] = True
                return merged
        out: dict[str, Any] = {}
        kind = node.get("type")
        if isinstance(kind, list):
            if "null" in kind:
                out["nullable"] = True
            kind = next((k for k in kind if k != "null"), "string")
        if "const" in node and kind is None:
            kind = {str: "string", bool: "boolean", int: "integer", float: "number"}.get(type(node["const"]), "string")
        if kind is not None:
            out["type"] = _TYPES.get(kind, "STRING")
        if "description" in node:
            out["description"] = node["description"]
        values = node.get("enum", [node["const"]] if "const" in node else None)
        if values is not None and all(isinstance(v, str) for v in values):
            out["enum"] = list(values)
        if node.get("format") == "date-time":
            out["format"] = "date-time"
        for key in ("minItems", "maxItems", "minimum", "maximum"):
            if key in node:
                out[key] = node[key]
        if "items" in node and isinstance(node["items"], dict):
            out["items"] = convert(node["items"], seen)
        if "properties" in node:
            converted = {name: convert(sub, seen) for name, sub in node["properties"].items()}
            required = [name for name in node.get("required", []) if name in converted]
            # Gemini wants properties on every OBJECT: a free-form mapping can only be left out
            for name, sub in list(converted.items()):
                if sub.get("type") == "OBJECT" and not sub.get("properties"):
                    if name in required:
                        raise SchemaNotSupported(f"{schema.__name__}.{name} is a free-form object, which "
                                                 "Gemini's response schema cannot express")
                    del converted[name]
            out["properties"] = converted
            out["propertyOrdering"] = list(converted)
            if required:
                out["required"] = required
        return out

    return convert({k: v for k, v in document.items() if k != "$defs"}, ())


class GeminiProvider(Provider):
    def __init__(self, settings: ResolvedProvider) -> None:
        self.name = settings.name
        self.model = settings.model.removeprefix("models/")
        self._settings = settings

    def missing_key(self) -> str | None:
        env = self._settings.api_key_env
        if env and not os.environ.get(env):
            return f"{self.name}: {env} is not set (export it, or drop {self.name} from the [llm] chain)"
        return None

    def request_body(self, messages: list[Message], schema: type[BaseModel]) -> dict[str, Any]:
        try:
            response_schema = gemini_schema(schema)
        except SchemaNotSupported as exc:
            raise ProviderError(
                f"{self.name}: {exc}", kind="unsupported", provider=self.name, model=self.model
            ) from None
        system = [m.content for m in messages if m.role == "system"]
        contents = [
            {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
            for m in messages if m.role != "system"
        ]
        config: dict[str, Any] = {
            "responseMimeType": "application/json",
            "responseSchema": response_schema,
            "temperature": self._settings.temperature,
        }
        if self._settings.max_output_tokens is not None:
            config["maxOutputTokens"] = self._settings.max_output_tokens
        body: dict[str, Any] = {"contents": contents, "generationConfig": config}
        if system:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        return body

    async def complete(self, messages: list[Message], schema: type[T]) -> Completion[T]:
        missing = self.missing_key()
        if missing:
            raise ProviderError(missing, kind="auth", provider=self.name, model=self.model)
        env = self._settings.api_key_env
        key = os.environ.get(env, "") if env else ""
        headers = {"Content-Type": "application/json"}
        if key:
            headers["x-goog-api-key"] = key
        url = f"{self._settings.base_url}/models/{self.model}:generateContent"
        answer = await _http.post_json(
            url, headers=headers, body=self.request_body(messages, schema), timeout_s=self._settings.timeout_s,
            provider=self.name, model=self.model, secret=key,
        )
        if not 200 <= answer.status < 300:
            reason, delay = _error_details(answer.data)
            raise _http.status_error(
                answer, provider=self.name, model=self.model, secret=key, key_env=env,
                retry_after=_http.parse_retry_after(answer.headers.get("retry-after")) or delay,
                auth=reason in ("API_KEY_INVALID", "API_KEY_SERVICE_BLOCKED"),
            )
        return self._completion(answer, messages, schema)

    def _completion(self, answer: _http.HttpAnswer, messages: list[Message], schema: type[T]) -> Completion[T]:
        data = answer.data if isinstance(answer.data, dict) else {}
        usage = data.get("usageMetadata") or {}
        prompt_tokens = usage.get("promptTokenCount") if isinstance(usage.get("promptTokenCount"), int) else None
        output = [usage.get(k) for k in ("candidatesTokenCount", "thoughtsTokenCount")]
        completion_tokens = sum(v for v in output if isinstance(v, int)) if any(isinstance(v, int) for v in output) \
            else None
        cost = estimate_cost(self.model, prompt_tokens, completion_tokens, self._settings.price)
        spent: Spent = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "cost_usd": cost}
        candidates = data.get("candidates") or []
        if not candidates:
            blocked = (data.get("promptFeedback") or {}).get("blockReason")
            if blocked:
                raise ProviderError(f"{self.name}: the prompt was blocked ({blocked})",
                                    kind="refused", provider=self.name, model=self.model, **spent)
            raise ProviderError(f"{self.name}: the answer has no candidates",
                                kind="invalid_json", provider=self.name, model=self.model, **spent)
        candidate = candidates[0]
        finish = candidate.get("finishReason")
        if finish in _REFUSALS:
            raise ProviderError(f"{self.name}: generation stopped with finishReason {finish}",
                                kind="refused", provider=self.name, model=self.model, **spent)
        parts = (candidate.get("content") or {}).get("parts") or []
        text = "".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
                       and not p.get("thought"))
        if finish == "MAX_TOKENS":
            raise ProviderError(f"{self.name}: the answer was cut off at the token limit; raise max_output_tokens",
                                kind="invalid_json", provider=self.name, model=self.model, **spent)
        if not text.strip():
            raise ProviderError(f"{self.name}: the answer is empty (finishReason {finish})",
                                kind="invalid_json", provider=self.name, model=self.model, **spent)
        value = parse_answer(text, schema, provider=self.name, model=self.model, **spent)
        return make_completion(
            schema, value=value, provider=self.name, model=self.model,
            prompt_tokens=prompt_tokens or 0, completion_tokens=completion_tokens or 0,
            cost_usd=cost, latency_s=answer.latency_s, prompt_hash=prompt_hash(messages, schema),
        )


def _error_details(data: Any) -> tuple[str | None, float | None]:
    """google.rpc details: ErrorInfo.reason (API_KEY_INVALID comes as a 400) and RetryInfo.retryDelay."""
    if isinstance(data, list) and data:
        data = data[0]
    error = data.get("error") if isinstance(data, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    reason: str | None = None
    delay: float | None = None
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.ErrorInfo"):
            reason = detail.get("reason")
        elif kind.endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                delay = float(match.group(1))
    return reason, delay
