"""Prompts are deterministic and say the rules; answer schemas accept good answers and refuse bad ones;
each schema goes through both wire formats' structured-output rules."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from tests.llm.conftest import gemini_provider, openai_provider
from tests.llm.servers import Answer, GeminiServer, OpenAIServer
from truthplane.llm.context import Context, build_context
from truthplane.llm.interface import prompt_hash
from truthplane.llm.prompts import (
    CandidateFixes,
    Categorisation,
    Category,
    Prompt,
    ReproductionScript,
    candidates_prompt,
    categorise_prompt,
    reproduction_prompt,
)
from truthplane.models import Finding, Severity

DIFF = ("--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def mean(v):\n-    return sum(v) / len(v)\n+    return sum(v) "
        "/ len(v) if v else 0.0\n")


@pytest.fixture
def context(make_repo: Callable[..., Path]) -> Context:
    repo = make_repo({"calc.py": "def mean(v):\n    return sum(v) / len(v)\n"})
    finding = Finding(verifier="pytest", rule_id="test_mean", severity=Severity.HIGH,
                      message="ZeroDivisionError", path="calc.py", start_line=2)
    return build_context(repo, "calc.py", finding=finding)


def test_prompts_are_deterministic_and_distinct(context: Context) -> None:
    first, again = candidates_prompt(context, 3), candidates_prompt(context, 3)
    assert first.messages == again.messages
    assert prompt_hash(first.messages, first.schema) == prompt_hash(again.messages, again.schema)
    hashes = {prompt_hash(p.messages, p.schema) for p in (
        candidates_prompt(context, 3), candidates_prompt(context, 2), categorise_prompt(context),
        reproduction_prompt(context))}
    assert len(hashes) == 4
    assert [categorise_prompt(context).task, reproduction_prompt(context).task, first.task] == [
        "categorise", "reproduce", "candidates"]


def test_prompts_carry_the_context_and_the_rules(context: Context) -> None:
    for prompt in (reproduction_prompt(context), candidates_prompt(context, 3)):
        text = prompt.messages[-1].content
        assert "return sum(v) / len(v)" in text and "ZeroDivisionError" in text
        for rule in ("# noqa", "# nosec", "# type: ignore", "skip", "xfail", "Never delete"):
            assert rule in text
    assert "Propose 3 different" in candidates_prompt(context, 3).messages[-1].content
    assert "exit with a non-zero status while the bug is present and exit 0" in \
        reproduction_prompt(context).messages[-1].content
    categories = categorise_prompt(context).messages[-1].content
    for category in Category:
        assert category.value in categories
    with pytest.raises(ValueError):
        candidates_prompt(context, 0)


def test_answer_schemas() -> None:
    assert Categorisation(category=Category.LOGIC, confidence=0.9, rationale=" divides by zero ").rationale == \
        "divides by zero"
    for bad in ({"category": "style", "confidence": 0.5, "rationale": "x"},
                {"category": "logic", "confidence": 1.5, "rationale": "x"},
                {"category": "logic", "confidence": 0.5, "rationale": "two\nlines"}):
        with pytest.raises(ValidationError):
            Categorisation.model_validate(bad)
    assert ReproductionScript(script="import sys\nsys.exit(1)\n", explanation="x").script
    with pytest.raises(ValidationError, match="not valid Python"):
        ReproductionScript(script="def (:\n", explanation="x")
    fixes = CandidateFixes.model_validate({"candidates": [{"title": "t", "diff": DIFF.rstrip("\n"), "rationale": "r"}]})
    assert fixes.candidates[0].diff.endswith("\n")
    with pytest.raises(ValidationError, match="not a unified diff"):
        CandidateFixes.model_validate({"candidates": [{"title": "t", "diff": "just replace it", "rationale": "r"}]})
    with pytest.raises(ValidationError):
        CandidateFixes.model_validate({"candidates": []})


ANSWERS = {
    "categorise": json.dumps({"category": "logic", "confidence": 0.8, "rationale": "empty input divides by zero"}),
    "reproduce": json.dumps({"script": "from calc import mean\nmean([])\n", "explanation": "calls mean([])"}),
    "candidates": json.dumps({"candidates": [{"title": "guard empty", "diff": DIFF, "rationale": "no division"}]}),
}


def _prompts(context: Context) -> list[Prompt[Any]]:
    return [categorise_prompt(context), reproduction_prompt(context), candidates_prompt(context, 1)]


def test_every_schema_passes_gemini_schema_rules(context: Context, gemini_server: GeminiServer) -> None:
    provider = gemini_provider(gemini_server)
    for prompt in _prompts(context):
        gemini_server.script(Answer(ANSWERS[prompt.task]))
        completion = asyncio.run(provider.complete(prompt.messages, prompt.schema))
        assert isinstance(completion.value, prompt.schema)
    schema = gemini_server.requests[0].body["generationConfig"]["responseSchema"]
    assert schema["properties"]["category"]["enum"] == [c.value for c in Category]


def test_every_schema_passes_openai_strict_rules(context: Context, openai_server: OpenAIServer) -> None:
    provider = openai_provider(openai_server, structured_output="json_schema")
    for prompt in _prompts(context):
        openai_server.script(Answer(ANSWERS[prompt.task]))
        completion = asyncio.run(provider.complete(prompt.messages, prompt.schema))
        assert isinstance(completion.value, prompt.schema)
    assert [r.body["response_format"]["json_schema"]["name"] for r in openai_server.requests] == [
        "Categorisation", "ReproductionScript", "CandidateFixes"]
