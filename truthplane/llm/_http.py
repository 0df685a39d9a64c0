"""The one place httpx is called for LLM providers, and the one place its exceptions are translated.

Like httpx's own map_httpcore_exceptions: every transport failure leaves as a ProviderError with a
kind, and no message built here ever includes a header (the key travels in one).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any

import httpx

from truthplane.llm.interface import ErrorKind, ProviderError, redact, snippet


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: httpx.Headers
    data: Any  # parsed JSON, or None when the body is not JSON
    text: str
    latency_s: float


@cache
def _ssl_context() -> ssl.SSLContext:
    """Loading the CA bundle takes tens of milliseconds: once per process, not per call."""
    return httpx.create_ssl_context(trust_env=True)


async def post_json(
    url: str, *, headers: dict[str, str], body: dict[str, Any], timeout_s: float,
    provider: str, model: str, secret: str | None,
) -> HttpAnswer:
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):  # httpx's timeout is per read; this bounds the whole call
            async with httpx.AsyncClient(
                timeout=httpx.Timeout(timeout_s), verify=_ssl_context(), trust_env=True
            ) as client:
                response = await client.post(url, headers=headers, content=json.dumps(body).encode("utf-8"))
                raw = await response.aread()
    except (TimeoutError, httpx.TimeoutException):
        raise ProviderError(
            f"{provider}: no answer from {_where(url)} within {timeout_s:g} s; raise timeout_s in "
            f"[llm.providers.{provider}] if the model is slow",
            kind="timeout", provider=provider, model=model,
        ) from None
    except httpx.HTTPError as exc:
        reason = redact(str(exc) or type(exc).__name__, secret)
        raise ProviderError(
            f"{provider}: cannot reach {_where(url)} ({snippet(reason)}); check base_url and the network",
            kind="connection", provider=provider, model=model,
        ) from None
    latency = time.monotonic() - started
    text = raw.decode("utf-8", errors="replace")
    try:
        data = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        data = None
    return HttpAnswer(response.status_code, response.headers, data, text, latency)


def _where(url: str) -> str:
    """scheme://host[:port] only: paths can carry model names, never anything secret, but stay short."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as delay-seconds or an HTTP-date (RFC 9110 10.2.3) -> seconds from now."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_message(answer: HttpAnswer) -> str:
    """The human part of an error body: both OpenAI and Google put it at error.message."""
    data = answer.data
    if isinstance(data, list) and data:  # Google sometimes wraps the error object in a list
        data = data[0]
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
    return answer.text or f"HTTP {answer.status}"


def status_error(
    answer: HttpAnswer, *, provider: str, model: str, secret: str | None, key_env: str | None,
    retry_after: float | None = None, auth: bool = False,
) -> ProviderError:
    """A non-2xx answer -> ProviderError of the right kind, with the server's own words (redacted)."""
    status = answer.status
    said = snippet(redact(error_message(answer), secret), 200)
    if retry_after is None:
        retry_after = parse_retry_after(answer.headers.get("retry-after"))
    kind: ErrorKind
    if auth or status in (401, 403):
        kind = "auth"
        which = f"the key in {key_env} was rejected" if key_env else "the server wants a key: set api_key_env"
        text = f"{provider}: HTTP {status}: {which} ({said})"
    elif status == 429:
        kind = "rate_limited"
        text = f"{provider}: HTTP 429 rate limited ({said})"
    elif status >= 500:
        kind = "http_5xx"
        text = f"{provider}: HTTP {status} server error ({said})"
    else:
        kind = "bad_request"
        text = f"{provider}: HTTP {status} ({said})"
    return ProviderError(text, kind=kind, provider=provider, model=model, retry_after=retry_after)
