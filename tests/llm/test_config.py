"""[llm] in truthplane.toml: presets, overrides, chains, and the errors a user sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from truthplane.config import load_config
from truthplane.errors import ConfigError
from truthplane.config.llm import PRESETS, LLMConfig, resolve_provider
from truthplane.llm.gemini import GeminiProvider
from truthplane.llm.openai_compat import OpenAICompatProvider
from truthplane.llm.router import build_router, provider_status
from truthplane.store import Store

TOML = """
[llm]
chain = ["groq", "gemini", "deepseek"]

[llm.tasks]
categorise = ["groq", "gemini"]

[llm.providers.groq]
type = "openai"
base_url = "https://api.groq.com/openai/v1"
model = "llama-3.1-8b-instant"
api_key_env = "GROQ_API_KEY"
timeout_s = 60

[llm.providers.mybox]
type = "openai"
base_url = "http://10.0.0.5:8000/v1/"
model = "qwen2.5-coder-32b"
api_key_env = "MYBOX_KEY"
structured_output = "json_object"
price = { input_per_mtok = 0.2, output_per_mtok = 0.6 }

[llm.retry]
max_retries = 1
max_wait_s = 10

[llm.budget]
max_cost_per_run_usd = 1.0
max_calls_per_day = 200
"""


def test_truthplane_toml_llm_section(tmp_path: Path) -> None:
    (tmp_path / "truthplane.toml").write_text(TOML)
    llm = load_config(tmp_path).llm
    assert llm.chain_for("categorise") == ["groq", "gemini"]
    assert llm.chain_for("candidates") == ["groq", "gemini", "deepseek"]
    assert llm.budget.max_cost_per_run_usd == 1.0 and llm.budget.max_calls_per_day == 200
    assert llm.retry.max_retries == 1
    groq = resolve_provider(llm, "groq")
    assert (groq.model, groq.api_key_env, groq.structured_output) == ("llama-3.1-8b-instant", "GROQ_API_KEY", "auto")
    mybox = resolve_provider(llm, "mybox")
    assert mybox.base_url == "http://10.0.0.5:8000/v1" and mybox.price == (0.2, 0.6)
    assert mybox.structured_output == "json_object"
    gemini = resolve_provider(llm, "gemini")  # no table: the preset
    assert gemini.type == "gemini" and gemini.api_key_env == "GEMINI_API_KEY"


def test_defaults_follow_the_original_plan() -> None:
    llm = LLMConfig()
    assert llm.chain_for("categorise")[0] == "groq"
    assert llm.chain_for("candidates") == ["gemini", "deepseek"]


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"ollama", "vllm", "llamacpp", "lmstudio"}))
def test_hosted_presets_resolve_without_a_table(name: str) -> None:
    settings = resolve_provider(None, name)
    assert settings.base_url.startswith("https://") and settings.model and settings.api_key_env


def test_local_presets_need_a_model_and_no_key() -> None:
    with pytest.raises(ConfigError, match=r"\[llm.providers.ollama\]: set model"):
        resolve_provider(None, "ollama")
    llm = LLMConfig.model_validate({"providers": {"ollama": {"model": "llama3.1"}}})
    settings = resolve_provider(llm, "ollama")
    assert settings.api_key_env is None and settings.base_url == "http://localhost:11434/v1"
    assert settings.price == (0.0, 0.0)


def test_unknown_provider_and_preset() -> None:
    with pytest.raises(ConfigError, match="unknown LLM provider 'claude'.*gemini"):
        resolve_provider(None, "claude")
    llm = LLMConfig.model_validate({"providers": {"x": {"preset": "nope"}}})
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        resolve_provider(llm, "x")
    llm = LLMConfig.model_validate({"providers": {"x": {"model": "m"}}})
    with pytest.raises(ConfigError, match='set type = "openai" or "gemini"'):
        resolve_provider(llm, "x")


def test_a_named_table_can_borrow_a_preset() -> None:
    llm = LLMConfig.model_validate({"providers": {"fast": {"preset": "groq", "model": "llama-3.1-8b-instant"}}})
    settings = resolve_provider(llm, "fast")
    assert settings.base_url == "https://api.groq.com/openai/v1" and settings.name == "fast"


def test_bad_values_are_config_errors(tmp_path: Path) -> None:
    (tmp_path / "truthplane.toml").write_text('[llm.providers.groq]\nstructured_output = "xml"\n')
    with pytest.raises(ConfigError, match="llm.providers.groq.structured_output"):
        load_config(tmp_path)
    (tmp_path / "truthplane.toml").write_text("[llm.budget]\nmax_calls_per_run = -1\n")
    with pytest.raises(ConfigError, match="llm.budget.max_calls_per_run"):
        load_config(tmp_path)


def test_build_router_creates_the_right_backends(tmp_path: Path) -> None:
    with Store.open(tmp_path / "h.sqlite3") as store:
        router = build_router(LLMConfig(), store)
        assert sorted(router.providers) == ["deepseek", "gemini", "groq"]
        assert isinstance(router.providers["gemini"], GeminiProvider)
        assert isinstance(router.providers["deepseek"], OpenAICompatProvider)


def test_provider_status_for_doctor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test-not-shown")
    monkeypatch.delenv("GROQ_API_KEY", raising=False)
    llm = LLMConfig.model_validate({"providers": {"vllm": {"model": "qwen"}}})
    status = {info.name: info for info in provider_status(llm)}
    assert status["gemini"].installed and status["gemini"].version == "gemini-2.5-flash"
    assert not status["groq"].installed and status["groq"].reason == "GROQ_API_KEY is not set: export it to use groq"
    assert status["vllm"].installed and status["vllm"].path == "http://localhost:8000/v1"
    assert not status["ollama"].installed and "set model" in (status["ollama"].reason or "")
    assert "AIza-test-not-shown" not in str(status)
