"""[llm] in truthplane.toml: providers, the fallback chain per task, retries and the budget.

    [llm]
    chain = ["groq", "gemini", "deepseek"]      # the order providers are tried in
    [llm.tasks]                                 # a chain per task (categorise, reproduce, candidates)
    categorise = ["groq", "gemini"]
    [llm.providers.groq]                        # a preset's name: only what differs needs saying
    model = "llama-3.1-8b-instant"
    [llm.providers.mybox]                       # any OpenAI-compatible server
    type = "openai"
    base_url = "http://10.0.0.5:8000/v1"
    model = "qwen2.5-coder-32b"
    api_key_env = "MYBOX_KEY"                   # the NAME of an environment variable, never a key
    structured_output = "json_object"           # json_schema | json_object | auto (try the first)
    price = { input_per_mtok = 0.2, output_per_mtok = 0.6 }
    [llm.retry]
    max_retries = 2                             # per provider, on 429 (and 503 with Retry-After)
    max_wait_s = 60                             # total sleep per provider before falling back
    [llm.budget]
    max_cost_per_run_usd = 1.0
    max_calls_per_day = 200

Built-in presets (openai, deepseek, groq, gemini, ollama, vllm, llamacpp, lmstudio) make
`--provider gemini` work with nothing but GEMINI_API_KEY set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from truthplane.errors import ConfigError

StructuredOutput = Literal["auto", "json_schema", "json_object"]

TASKS = ("categorise", "reproduce", "candidates")
# the original plan: Groq categorises, Gemini generates, DeepSeek is the fallback
DEFAULT_TASK_CHAINS: dict[str, list[str]] = {
    "categorise": ["groq", "gemini", "deepseek"],
    "reproduce": ["gemini", "deepseek"],
    "candidates": ["gemini", "deepseek"],
}
DEFAULT_CHAIN = ["groq", "gemini", "deepseek"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class PriceConfig(_Strict):
    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class ProviderConfig(_Strict):
    """[llm.providers.NAME]. Unset fields come from the preset of the same name (or `preset`)."""

    type: Literal["openai", "gemini"] | None = None
    preset: str | None = None
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = Field(default=None, description="environment variable holding the key; '' for none")
    timeout_s: float | None = Field(default=None, gt=0)
    structured_output: StructuredOutput | None = None
    max_output_tokens: int | None = Field(default=None, gt=0)
    temperature: float | None = Field(default=None, ge=0)
    price: PriceConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_inline_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("api_key" in data or "key" in data):
            # the message must not quote the value
            raise ValueError(
                "API keys do not belong in truthplane.toml: export the key and name the variable "
                'with api_key_env = "NAME"'
            )
        return data


class RetryConfig(_Strict):
    max_retries: int = Field(default=2, ge=0)
    max_wait_s: float = Field(default=60.0, ge=0)
    backoff_s: float = Field(default=1.0, ge=0, description="first wait on a 429 without Retry-After; doubles")


class BudgetConfig(_Strict):
    """Limits on LLM use; None is no limit. A day is a UTC calendar day."""

    max_calls_per_run: int | None = Field(default=None, ge=0)
    max_tokens_per_run: int | None = Field(default=None, ge=0)
    max_cost_per_run_usd: float | None = Field(default=None, ge=0)
    max_calls_per_day: int | None = Field(default=None, ge=0)
    max_tokens_per_day: int | None = Field(default=None, ge=0)
    max_cost_per_day_usd: float | None = Field(default=None, ge=0)


class LLMConfig(_Strict):
    chain: list[str] | None = None
    tasks: dict[str, list[str]] = Field(default_factory=dict)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)

    def chain_for(self, task: str) -> list[str]:
        """[llm.tasks] wins, then [llm] chain, then the built-in plan."""
        if task in self.tasks:
            return list(self.tasks[task])
        if self.chain is not None:
            return list(self.chain)
        return list(DEFAULT_TASK_CHAINS.get(task, DEFAULT_CHAIN))


@dataclass(frozen=True)
class ResolvedProvider:
    """A provider's settings after merging its table over its preset. Holds the key's NAME only."""

    name: str
    type: Literal["openai", "gemini"]
    base_url: str
    model: str
    api_key_env: str | None
    timeout_s: float = 60.0
    structured_output: StructuredOutput = "auto"
    max_output_tokens: int | None = None
    temperature: float = 0.0
    price: tuple[float, float] | None = None


_LOCAL_FREE = {"input_per_mtok": 0.0, "output_per_mtok": 0.0}

PRESETS: dict[str, dict[str, Any]] = {
    "openai": {"type": "openai", "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini",
               "api_key_env": "OPENAI_API_KEY", "structured_output": "json_schema"},
    # DeepSeek's API has JSON mode but no json_schema
    "deepseek": {"type": "openai", "base_url": "https://api.deepseek.com", "model": "deepseek-chat",
                 "api_key_env": "DEEPSEEK_API_KEY", "structured_output": "json_object"},
    "groq": {"type": "openai", "base_url": "https://api.groq.com/openai/v1", "model": "llama-3.3-70b-versatile",
             "api_key_env": "GROQ_API_KEY", "structured_output": "auto"},
    "gemini": {"type": "gemini", "base_url": "https://generativelanguage.googleapis.com/v1beta",
               "model": "gemini-2.5-flash", "api_key_env": "GEMINI_API_KEY"},
    # local servers: no key, no bill; the model is whatever the user has pulled or loaded
    "ollama": {"type": "openai", "base_url": "http://localhost:11434/v1", "api_key_env": "",
               "structured_output": "auto", "price": _LOCAL_FREE, "timeout_s": 300.0},
    "vllm": {"type": "openai", "base_url": "http://localhost:8000/v1", "api_key_env": "",
             "structured_output": "auto", "price": _LOCAL_FREE, "timeout_s": 300.0},
    "llamacpp": {"type": "openai", "base_url": "http://localhost:8080/v1", "api_key_env": "",
                 "structured_output": "auto", "price": _LOCAL_FREE, "timeout_s": 300.0},
    "lmstudio": {"type": "openai", "base_url": "http://localhost:1234/v1", "api_key_env": "",
                 "structured_output": "auto", "price": _LOCAL_FREE, "timeout_s": 300.0},
}


def resolve_provider(config: LLMConfig | None, name: str) -> ResolvedProvider:
    """[llm.providers.NAME] over the preset it names; ConfigError says what is missing."""
    table = (config.providers.get(name) if config else None) or ProviderConfig()
    preset_name = table.preset or name
    if table.preset is not None and table.preset not in PRESETS:
        raise ConfigError(f"[llm.providers.{name}]: unknown preset {table.preset!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS.get(preset_name, {})
    if not preset and (config is None or name not in config.providers):
        raise ConfigError(
            f"unknown LLM provider {name!r}: add [llm.providers.{name}] to truthplane.toml, "
            f"or use a preset: {', '.join(PRESETS)}"
        )
    merged: dict[str, Any] = {**preset, **table.model_dump(exclude_none=True, exclude={"preset"})}
    if "price" in merged and isinstance(merged["price"], dict):
        merged["price"] = (merged["price"]["input_per_mtok"], merged["price"]["output_per_mtok"])
    kind = merged.get("type")
    if kind is None:
        raise ConfigError(f'[llm.providers.{name}]: set type = "openai" or "gemini"')
    if not merged.get("base_url"):
        raise ConfigError(f"[llm.providers.{name}]: set base_url (e.g. http://localhost:8000/v1)")
    if not merged.get("model"):
        raise ConfigError(f"[llm.providers.{name}]: set model (the name the server knows it by)")
    api_key_env = merged.get("api_key_env")
    return ResolvedProvider(
        name=name,
        type=kind,
        base_url=str(merged["base_url"]).rstrip("/"),
        model=str(merged["model"]),
        api_key_env=api_key_env or None,
        timeout_s=float(merged.get("timeout_s", 60.0)),
        structured_output=merged.get("structured_output", "auto"),
        max_output_tokens=merged.get("max_output_tokens"),
        temperature=float(merged.get("temperature", 0.0)),
        price=merged.get("price"),
    )
