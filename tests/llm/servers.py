"""Local HTTP servers that answer like the real LLM APIs: OpenAI chat completions and Gemini
generateContent. Real sockets on 127.0.0.1, stdlib http.server in a thread.

Each server checks requests the way the real service does (path, auth header, body shape, the
structured-output schema rules) and answers with that service's real error bodies when they are
wrong, so a provider that builds a bad request fails here as it would there. Tests script the
answers: `server.script(Answer(...), Error(...), Hang(...))`; after the script runs out the server
keeps answering with `server.default`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    content: str
    prompt_tokens: int = 100
    completion_tokens: int = 20
    finish: str | None = None  # provider's finish reason; None: the normal one
    refusal: str | None = None


@dataclass
class Error:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Hang:
    seconds: float = 30.0


@dataclass
class Raw:
    status: int
    text: str
    content_type: str = "text/html"


Behaviour = Answer | Error | Hang | Raw


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class _Server(ABC):
    api_key: str | None = None

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: deque[Behaviour] = deque()
        self.default: Behaviour = Answer("{}")
        self._stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = None
                record = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                outer.requests.append(record)
                status, headers, payload = outer.handle(record)
                if isinstance(payload, Hang):
                    deadline = time.monotonic() + payload.seconds
                    while time.monotonic() < deadline and not outer._stopping.is_set():
                        time.sleep(0.02)
                    status, headers, payload = 500, {}, b"{}"
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the client gave up (a timeout test)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def script(self, *behaviours: Behaviour) -> None:
        self._script.extend(behaviours)

    def next_behaviour(self) -> Behaviour:
        return self._script.popleft() if self._script else self.default

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def handle(self, request: Recorded) -> tuple[int, dict[str, str], Any]:
        problem = self.check(request)
        if problem is not None:
            return self.render(problem)
        return self.render(self.next_behaviour(), request)

    def render(self, behaviour: Behaviour, request: Recorded | None = None) -> tuple[int, dict[str, str], Any]:
        if isinstance(behaviour, Hang):
            return 0, {}, behaviour
        if isinstance(behaviour, Error):
            return behaviour.status, behaviour.headers, json.dumps(behaviour.body).encode()
        if isinstance(behaviour, Raw):
            return behaviour.status, {"Content-Type": behaviour.content_type}, behaviour.text.encode()
        assert request is not None
        return 200, {}, json.dumps(self.success(behaviour, request)).encode()

    @abstractmethod
    def check(self, request: Recorded) -> Error | None:
        """The real service's refusal of a malformed or unauthorised request, or None."""

    @abstractmethod
    def success(self, answer: Answer, request: Recorded) -> dict[str, Any]:
        """The service's 200 body carrying `answer`."""


# ---- OpenAI chat completions -------------------------------------------------------------------


def openai_error(status: int, message: str, *, type_: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> Error:
    return Error(status, {"error": {"message": message, "type": type_, "param": param, "code": code}}, headers or {})


OPENAI_500 = openai_error(500, "The server had an error while processing your request. Sorry about that!",
                          type_="server_error")


def openai_429(retry_after: str | None) -> Error:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return openai_error(429, "Rate limit reached for gpt-4o-mini in organization org-x on requests per min (RPM): "
                        "Limit 3, Used 3, Requested 1.", type_="requests", code="rate_limit_exceeded", headers=headers)


_SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class OpenAIServer(_Server):
    """POST /v1/chat/completions as api.openai.com answers it."""

    def __init__(self, *, api_key: str | None = None, json_schema: bool = True, echo_key: bool = False) -> None:
        self.api_key = api_key
        self.json_schema = json_schema
        self.echo_key = echo_key  # some OpenAI-compatible proxies quote the whole rejected key
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def check(self, request: Recorded) -> Error | None:
        if request.path != "/v1/chat/completions":
            return openai_error(404, f"Invalid URL (POST {request.path})")
        if self.api_key is not None:
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer "):
                return openai_error(401, "You didn't provide an API key. You need to provide your API key in an "
                                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
            given = auth.removeprefix("Bearer ")
            if given != self.api_key:
                shown = given if self.echo_key else f"{given[:3]}*****{given[-4:]}"
                return openai_error(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                                    "https://platform.openai.com/account/api-keys.", code="invalid_api_key")
        body = request.body
        if not isinstance(body, dict):
            return openai_error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body.get("model"), str):
            return openai_error(400, "you must provide a model parameter")
        messages = body.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(m, dict)
                and m.get("role") in ("system", "user", "assistant")
                and isinstance(m.get("content"), str)
                for m in messages
            )
        ):
            return openai_error(400, "Invalid 'messages': expected an array of role/content objects.", param="messages")
        response_format = body.get("response_format")
        if response_format is None:
            return None
        kind = response_format.get("type")
        if kind == "json_object":
            if "json" not in json.dumps(messages).lower():
                return openai_error(400, "'messages' must contain the word 'json' in some form, to use "
                                    "'response_format' of type 'json_object'.", param="messages")
            return None
        if kind != "json_schema":
            return openai_error(400, f"Invalid value: '{kind}'.", param="response_format.type")
        if not self.json_schema:
            return openai_error(400, "This response_format type is unavailable now", param="response_format")
        spec = response_format.get("json_schema") or {}
        if not _SCHEMA_NAME.match(str(spec.get("name", ""))):
            return openai_error(
                400, "Invalid 'response_format.json_schema.name'.", param="response_format.json_schema.name"
            )
        if spec.get("strict") is True:
            problem = _strict_problem(spec.get("schema"), spec["name"], ())
            if problem:
                return openai_error(400, problem, param="response_format")
        return None

    def success(self, answer: Answer, request: Recorded) -> dict[str, Any]:
        return {
            "id": "chatcmpl-local0001", "object": "chat.completion", "created": 1_700_000_000,
            "model": request.body["model"], "system_fingerprint": "fp_local",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": None if answer.refusal else answer.content,
                            "refusal": answer.refusal},
                "logprobs": None,
                "finish_reason": answer.finish or "stop",
            }],
            "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                      "total_tokens": answer.prompt_tokens + answer.completion_tokens},
        }


def _strict_problem(node: Any, name: str, where: tuple[str, ...]) -> str | None:
    """OpenAI's strict-mode rules: objects closed and fully required; no unsupported keywords."""
    if isinstance(node, list):
        for item in node:
            found = _strict_problem(item, name, where)
            if found:
                return found
        return None
    if not isinstance(node, dict):
        return None
    context = f"context=({', '.join(repr(w) for w in where)})"
    if "$ref" in node and len(node) > 1:
        return (f"Invalid schema for response_format '{name}': In {context}, $ref cannot have keywords "
                f"{{'{min(set(node) - {'$ref'})}'}}.")
    if "default" in node:
        return f"Invalid schema for response_format '{name}': In {context}, 'default' is not permitted."
    if node.get("type") == "object":
        if node.get("additionalProperties") is not False:
            return (f"Invalid schema for response_format '{name}': In {context}, 'additionalProperties' is "
                    "required to be supplied and to be false.")
        props = node.get("properties", {})
        if sorted(node.get("required", [])) != sorted(props):
            missing = sorted(set(props) - set(node.get("required", [])))
            return (f"Invalid schema for response_format '{name}': In {context}, 'required' is required to be "
                    f"supplied and to be an array including every key in properties. Missing '{missing[0]}'.")
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            for prop, sub in value.items():
                found = _strict_problem(sub, name, (*where, "properties", prop))
                if found:
                    return found
        elif isinstance(value, (dict, list)):
            found = _strict_problem(value, name, (*where, key))
            if found:
                return found
    return None


# ---- Gemini generateContent --------------------------------------------------------------------


def gemini_error(code: int, message: str, status: str, details: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> Error:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return Error(code, {"error": error}, headers or {})


GEMINI_500 = gemini_error(500, "An internal error has occurred. Please retry or report in "
                          "https://developers.generativeai.google/guide/troubleshooting", "INTERNAL")
GEMINI_503 = gemini_error(503, "The model is overloaded. Please try again later.", "UNAVAILABLE")


def gemini_429(retry_delay: str | None) -> Error:
    details: list[dict[str, Any]] = [{
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
    }]
    if retry_delay is not None:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    return gemini_error(429, "You exceeded your current quota, please check your plan and billing details.",
                        "RESOURCE_EXHAUSTED", details)


_GEMINI_FIELDS = {"type", "format", "description", "nullable", "enum", "maxItems", "minItems", "properties",
                  "required", "propertyOrdering", "items", "anyOf", "minimum", "maximum", "title"}
_GEMINI_TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}
_GENERATION_CONFIG = {"responseMimeType", "responseSchema", "temperature", "maxOutputTokens", "topP", "topK",
                      "candidateCount", "stopSequences"}
_MODEL_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):generateContent$")


class GeminiServer(_Server):
    """POST /v1beta/models/{model}:generateContent as generativelanguage.googleapis.com answers it."""

    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1beta"

    def check(self, request: Recorded) -> Error | None:
        if not _MODEL_PATH.match(request.path.split("?")[0]):
            return gemini_error(404, f"Requested entity was not found: {request.path}", "NOT_FOUND")
        if self.api_key is not None:
            given = request.headers.get("x-goog-api-key")
            if given is None:
                return gemini_error(403, "Method doesn't allow unregistered callers (callers without established "
                                    "identity). Please use API Key or other form of API consumer identity to call "
                                    "this API.", "PERMISSION_DENIED")
            if given != self.api_key:
                return gemini_error(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"},
                }])
        body = request.body
        if not isinstance(body, dict):
            return gemini_error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
        for key in body:
            if key not in ("contents", "systemInstruction", "generationConfig", "safetySettings", "tools"):
                return _unknown_name(key, "")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            return gemini_error(400, "* GenerateContentRequest.contents: contents is not specified", "INVALID_ARGUMENT")
        for content in contents:
            if content.get("role") not in ("user", "model") or not all("text" in p for p in content.get("parts", [])):
                return gemini_error(400, "Please use a valid role: user, model.", "INVALID_ARGUMENT")
        config = body.get("generationConfig", {})
        for key in config:
            if key not in _GENERATION_CONFIG:
                return _unknown_name(key, "generation_config")
        if "responseSchema" in config:
            if config.get("responseMimeType") != "application/json":
                return gemini_error(400, "* GenerateContentRequest.generation_config.response_mime_type: When using "
                                    "response_schema, response_mime_type must be application/json", "INVALID_ARGUMENT")
            problem = _gemini_schema_problem(config["responseSchema"], "generation_config.response_schema")
            if problem:
                return problem
        return None

    def success(self, answer: Answer, request: Recorded) -> dict[str, Any]:
        match = _MODEL_PATH.match(request.path.split("?")[0])
        candidate: dict[str, Any] = {"finishReason": answer.finish or "STOP", "index": 0}
        if answer.finish in (None, "STOP", "MAX_TOKENS"):
            candidate["content"] = {"parts": [{"text": answer.content}], "role": "model"}
        else:  # a blocked answer carries ratings, not content
            candidate["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]
        return {
            "candidates": [candidate],
            "usageMetadata": {"promptTokenCount": answer.prompt_tokens,
                              "candidatesTokenCount": answer.completion_tokens,
                              "totalTokenCount": answer.prompt_tokens + answer.completion_tokens},
            "modelVersion": match.group("model") if match else "",
            "responseId": "local-0001",
        }


def _unknown_name(key: str, where: str) -> Error:
    at = f" at '{where}'" if where else ""
    return gemini_error(400, f'Invalid JSON payload received. Unknown name "{key}"{at}: Cannot find field.',
                        "INVALID_ARGUMENT", [{
                            "@type": "type.googleapis.com/google.rpc.BadRequest",
                            "fieldViolations": [{"field": f"{where}.{key}".strip("."),
                                                 "description": f'Invalid JSON payload received. Unknown name "{key}"'
                                                 f"{at}: Cannot find field."}],
                        }])


def _gemini_schema_problem(node: Any, where: str) -> Error | None:
    if not isinstance(node, dict):
        return gemini_error(400, f"Invalid value at '{where}'", "INVALID_ARGUMENT")
    for key, value in node.items():
        if key not in _GEMINI_FIELDS:
            return _unknown_name(key, where)
        if key == "type" and value not in _GEMINI_TYPES:
            return gemini_error(400, f"Invalid value at '{where}.type' (type.googleapis.com/google.ai."
                                f"generativelanguage.v1beta.Type), \"{value}\"", "INVALID_ARGUMENT")
    if node.get("type") == "OBJECT" and not node.get("properties"):
        return gemini_error(400, f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type",
                            "INVALID_ARGUMENT")
    for name, sub in node.get("properties", {}).items():
        found = _gemini_schema_problem(sub, f"{where}.properties[{name}].value")
        if found:
            return found
    if "items" in node:
        return _gemini_schema_problem(node["items"], f"{where}.items")
    for index, sub in enumerate(node.get("anyOf", [])):
        found = _gemini_schema_problem(sub, f"{where}.any_of[{index}]")
        if found:
            return found
    return None
