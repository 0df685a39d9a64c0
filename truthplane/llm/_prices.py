"""List prices per million tokens (USD), for estimating what a call cost.

Prices change; these are the providers' published list prices for standard (non-batch, uncached)
requests as of 2025-10. A model not listed here has an unknown cost (None), never a guess; set
`price = { input_per_mtok = ..., output_per_mtok = ... }` in its [llm.providers.NAME] table to
override or fill in.
"""

from __future__ import annotations

# model -> (input, output) USD per 1,000,000 tokens
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    # DeepSeek (cache-miss input)
    "deepseek-chat": (0.28, 0.42),
    "deepseek-reasoner": (0.28, 0.42),
    # Groq
    "llama-3.3-70b-versatile": (0.59, 0.79),
    "llama-3.1-8b-instant": (0.05, 0.08),
    # Google Gemini (prompts up to 200k tokens)
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
}


def estimate_cost(
    model: str, prompt_tokens: int | None, completion_tokens: int | None,
    override: tuple[float, float] | None = None,
) -> float | None:
    """USD for one call, or None when the model's price or the token counts are unknown."""
    price = override if override is not None else PRICES_PER_MTOK.get(model)
    if price is None or prompt_tokens is None or completion_tokens is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1_000_000
