"""Prompts and the answer schemas they ask for: categorise, write a reproduction script, propose fixes.

Builders are pure functions of their inputs (no dates, no randomness, sorted where order is free),
so the same context gives the same messages and the prompt hash identifies a request. Every prompt
that asks for code says the tamper rules plainly: no suppressions, no deleted or skipped tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Generic

from pydantic import BaseModel, Field, field_validator

from truthplane import pyparse
from truthplane.llm.context import Context
from truthplane.llm.interface import Message, T

TASK_CATEGORISE = "categorise"
TASK_REPRODUCE = "reproduce"
TASK_CANDIDATES = "candidates"

RULES = (
    "Rules that a patch must follow, or it is rejected:\n"
    "- Fix the cause. Never silence a tool: no `# noqa`, `# nosec`, `# type: ignore`, `# pragma: no cover`,\n"
    "  `nosemgrep`, `eslint-disable` or `@ts-ignore` comments, and no edits to linter, type checker or CI "
    "configuration.\n"
    "- Never delete, skip or weaken a test: no removed tests or asserts, no `skip`, `skipif` or `xfail`.\n"
    "- Change as little as the fix needs; keep the repository's style and conventions."
)

SYSTEM = (
    "You are a careful senior engineer fixing one problem in a repository. You answer with one JSON "
    "object in the requested schema and nothing else."
)


class Category(str, Enum):
    SYNTAX = "syntax"
    TYPE = "type"
    LOGIC = "logic"
    SECURITY = "security"
    DEPENDENCY = "dependency"
    TEST_FAILURE = "test_failure"


class Categorisation(BaseModel):
    category: Category
    confidence: float = Field(ge=0.0, le=1.0, description="0 to 1")
    rationale: str = Field(min_length=1, max_length=300, description="one line: why this category")

    @field_validator("rationale")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value.strip():
            raise ValueError("the rationale must be one line")
        return value.strip()


class ReproductionScript(BaseModel):
    script: str = Field(min_length=1, description="a self-contained Python script")
    explanation: str = Field(min_length=1, max_length=500, description="what the script checks")

    @field_validator("script")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            pyparse.parse(value)
        except SyntaxError as exc:
            raise ValueError(f"the script is not valid Python: {exc.msg} (line {exc.lineno})") from None
        return value


class CandidateFix(BaseModel):
    title: str = Field(min_length=1, max_length=120)
    diff: str = Field(min_length=1, description="a unified diff with repo-relative a/ and b/ paths")
    rationale: str = Field(min_length=1, max_length=1000)

    @field_validator("diff")
    @classmethod
    def _unified(cls, value: str) -> str:
        lines = value.splitlines()
        if not any(line.startswith("--- ") for line in lines) or not any(line.startswith("+++ ") for line in lines) \
                or not any(line.startswith("@@") for line in lines):
            raise ValueError("the diff is not a unified diff (needs ---, +++ and @@ lines)")
        return value if value.endswith("\n") else value + "\n"


class CandidateFixes(BaseModel):
    candidates: list[CandidateFix] = Field(min_length=1)


@dataclass(frozen=True)
class Prompt(Generic[T]):
    """What the router needs: the task (which chain), the messages, the answer schema."""

    task: str
    messages: list[Message]
    schema: type[T]


def _user(context: Context, ask: str) -> list[Message]:
    return [Message(role="system", content=SYSTEM), Message(role="user", content=f"{context.render()}\n{ask}")]


def categorise_prompt(context: Context) -> Prompt[Categorisation]:
    ask = (
        "Classify the problem above as exactly one of: syntax (the code does not parse), type (a type "
        "error or wrong interface use), logic (wrong behaviour), security (a vulnerability or unsafe "
        "practice), dependency (a missing, vulnerable or incompatible package), test_failure (a test "
        "fails and the cause is not one of the others). Give your confidence from 0 to 1 and a one-line "
        "rationale."
    )
    return Prompt(TASK_CATEGORISE, _user(context, ask), Categorisation)


def reproduction_prompt(context: Context) -> Prompt[ReproductionScript]:
    ask = (
        "Write a self-contained Python script that reproduces the problem above: it must exit with a "
        "non-zero status while the bug is present and exit 0 once it is fixed. It runs from the "
        "repository root with only the standard library and the repository's own code importable; "
        "no network, no files outside a temporary directory, and it finishes within a few seconds. "
        "Do not modify any file of the repository.\n\n" + RULES
    )
    return Prompt(TASK_REPRODUCE, _user(context, ask), ReproductionScript)


def candidates_prompt(context: Context, count: int) -> Prompt[CandidateFixes]:
    if count < 1:
        raise ValueError("ask for at least one candidate")
    ask = (
        f"Propose {count} different candidate fix(es) for the problem above. Each is a unified diff "
        "(`--- a/path` / `+++ b/path` headers with repository-relative paths, `@@` hunks with correct "
        "line numbers and three lines of context) that applies with `git apply` to the files as shown, "
        "with a short title and a rationale. Prefer distinct approaches over variations of one.\n\n"
        + RULES
    )
    return Prompt(TASK_CANDIDATES, _user(context, ask), CandidateFixes)
