"""What every LLM provider implements, the values that cross the boundary, and the layer's error.

A provider turns messages into one validated pydantic object (`Completion.value`). Everything that
can go wrong on the way is a `ProviderError` with a `kind`, which is what the router decides on.
API keys are read from the environment at call time and never kept on the provider, so no repr,
message or stored row can carry one.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Generic, Literal, TypedDict, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from truthplane import errors

T = TypeVar("T", bound=BaseModel)

ErrorKind = Literal[
    "invalid_json",  # the answer is not JSON
    "schema_mismatch",  # JSON, but not the asked-for schema
    "refused",  # a refusal, a safety block, an answer cut off
    "timeout",
    "connection",  # nothing listening, DNS, TLS
    "http_5xx",
    "rate_limited",  # 429
    "auth",  # 401/403, a rejected or missing key
    "bad_request",  # another 4xx: unknown model, unsupported parameter
    "unsupported",  # the server does not do structured output the way it was asked
    "budget",  # the configured budget is spent; no call was made
    "all_failed",  # every provider in the chain failed
]

# shown after a provider's name when the router explains a failure
KIND_LABELS: dict[str, str] = {
    "invalid_json": "invalid JSON",
    "schema_mismatch": "schema mismatch",
    "refused": "refused",
    "timeout": "timeout",
    "connection": "connection failed",
    "http_5xx": "server error",
    "rate_limited": "rate limited",
    "auth": "auth",
    "bad_request": "bad request",
    "unsupported": "unsupported",
    "budget": "budget",
    "all_failed": "all failed",
}


class ProviderError(errors.ProviderError):
    """truthplane's ProviderError with what happened (`kind`) and what the failed call cost.

    `retry_after` is the server's requested wait in seconds (Retry-After, or Gemini's RetryInfo).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        provider: str = "",
        model: str = "",
        retry_after: float | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        cost_usd: float | None = None,
        attempts: Sequence[Attempt] = (),
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.provider = provider
        self.model = model
        self.retry_after = retry_after
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.cost_usd = cost_usd
        self.attempts = list(attempts)

    def __repr__(self) -> str:
        return f"ProviderError(kind={self.kind!r}, provider={self.provider!r}, message={self.message!r})"


class Spent(TypedDict):
    """What a call that failed after the server answered still cost."""

    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class Attempt(BaseModel):
    """One call (or one skipped provider) on the way to an answer."""

    provider: str
    model: str
    outcome: str = Field(description="'ok' or the ProviderError kind")
    message: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float = 0.0
    waited_s: float = Field(default=0.0, description="time slept before this call because of Retry-After")


class Completion(BaseModel, Generic[T]):
    """A validated answer and what it took to get it."""

    value: T
    provider: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = Field(default=None, description="estimated from the price table; None when unknown")
    latency_s: float = 0.0
    prompt_hash: str = Field(description="sha256 of the canonical request: messages and answer schema")
    attempts: list[Attempt] = Field(default_factory=list, description="filled in by the router, one per call")


class Provider(ABC):
    """One configured LLM endpoint. Implementations: OpenAICompatProvider, GeminiProvider."""

    name: str
    model: str

    @abstractmethod
    async def complete(self, messages: list[Message], schema: type[T]) -> Completion[T]:
        """Ask for one answer in `schema`; any failure is a ProviderError."""

    def missing_key(self) -> str | None:
        """Why this provider cannot be called here (an unset key variable), or None."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, model={self.model!r})"


# ---- helpers shared by the providers -------------------------------------------------------------


def make_completion(schema: type[T], **fields: Any) -> Completion[T]:
    """Completion parametrised with the answer schema, so the value dumps with all its fields."""
    parametrised = Completion.__class_getitem__(schema)  # Completion[schema] with a runtime type
    return cast("Completion[T]", parametrised(**fields))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def prompt_hash(messages: Sequence[Message], schema: type[BaseModel]) -> str:
    """The same messages and answer schema give the same hash whichever provider is asked."""
    request = {
        "messages": [m.model_dump() for m in messages],
        "schema": schema.model_json_schema(),
    }
    return hashlib.sha256(canonical_json(request).encode("utf-8")).hexdigest()


_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(?P<body>.*)\n\s*```\s*$", re.DOTALL)


def parse_answer(text: str, schema: type[T], *, provider: str, model: str, **usage: Any) -> T:
    """JSON text -> a validated `schema` object; ProviderError(invalid_json | schema_mismatch) otherwise."""
    fenced = _FENCE.match(text)  # json_object mode on some local servers still wraps the answer in a fence
    body = fenced.group("body") if fenced else text
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ProviderError(
            f"{provider}: the answer is not valid JSON ({exc.msg} at character {exc.pos}): {snippet(text)}",
            kind="invalid_json", provider=provider, model=model, **usage,
        ) from None
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(root)"
        raise ProviderError(
            f"{provider}: the answer does not match {schema.__name__} ({exc.error_count()} error(s); "
            f"{where}: {first['msg']})",
            kind="schema_mismatch", provider=provider, model=model, **usage,
        ) from None


def snippet(text: str, limit: int = 120) -> str:
    """One line of at most `limit` characters, for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def redact(text: str, secret: str | None) -> str:
    """Servers echo keys back (OpenAI shows a masked one); never pass any of it on."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text
