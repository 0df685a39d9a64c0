"""Per-run and per-day limits on LLM calls, tokens and cost, kept in the history (`llm_usage`).

Before every call the router reserves it: in one write transaction the totals are read, checked
against [llm.budget] and a 'pending' row is inserted, so concurrent runs (threads or processes)
cannot together make more calls than allowed. After the call the row gets its outcome, tokens and
cost. Tokens and cost are known only afterwards, so calls already in flight can overshoot those two
limits; the next call is refused. A day is a UTC calendar day. Calls whose cost is unknown (a model
missing from the price table) count as calls and tokens but add nothing to the cost; the status says
how many there were.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from truthplane.config.llm import BudgetConfig
from truthplane.llm.interface import ProviderError
from truthplane.store import Store, UsageTotals

Measure = Literal["calls", "tokens", "cost_usd"]
_MEASURES: tuple[Measure, ...] = ("calls", "tokens", "cost_usd")


class LimitStatus(BaseModel):
    scope: Literal["run", "day"]
    measure: Measure
    setting: str = Field(description="the [llm.budget] key, e.g. max_calls_per_run")
    limit: float
    used: float
    remaining: float

    @property
    def spent(self) -> bool:
        return self.remaining <= 0


class BudgetStatus(BaseModel):
    """What is left; `truthplane history` prints this."""

    run_id: str | None
    day: str
    limits: list[LimitStatus] = Field(default_factory=list)
    run: dict[str, float] = Field(default_factory=dict, description="calls, tokens, cost_usd used in the run")
    today: dict[str, float] = Field(default_factory=dict)
    unknown_cost_calls_today: int = 0

    @property
    def exhausted(self) -> list[LimitStatus]:
        return [limit for limit in self.limits if limit.spent]

    def lines(self) -> list[str]:
        if not self.limits:
            out = ["no LLM budget limits set ([llm.budget] in truthplane.toml)"]
        else:
            out = [f"{s.setting}: {_fmt(s.measure, s.used)} used of {_fmt(s.measure, s.limit)}, "
                   f"{_fmt(s.measure, s.remaining)} left" for s in self.limits]
        if self.unknown_cost_calls_today:
            out.append(f"{self.unknown_cost_calls_today} call(s) today had no known price and are not in the cost")
        return out


def utc_day(now: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).strftime("%Y-%m-%d")


def _budget_of(config: Any) -> BudgetConfig:
    """Accepts the whole Config, an LLMConfig, or a BudgetConfig."""
    if isinstance(config, BudgetConfig):
        return config
    llm = getattr(config, "llm", config)
    return getattr(llm, "budget", None) or BudgetConfig()


def _status(budget: BudgetConfig, run: UsageTotals, today: UsageTotals, run_id: str | None, day: str) -> BudgetStatus:
    limits = []
    scopes: tuple[tuple[Literal["run", "day"], UsageTotals], ...] = (("run", run), ("day", today))
    for scope, totals in scopes:
        if scope == "run" and run_id is None:
            continue
        for measure in _MEASURES:
            setting = f"max_{measure}_per_{scope}" if measure != "cost_usd" else f"max_cost_per_{scope}_usd"
            limit = getattr(budget, setting)
            if limit is None:
                continue
            used = getattr(totals, measure)
            limits.append(LimitStatus(scope=scope, measure=measure, setting=setting, limit=limit, used=used,
                                      remaining=max(0.0, limit - used)))

    def as_dict(t: UsageTotals) -> dict[str, float]:
        return {"calls": t.calls, "tokens": t.tokens, "cost_usd": t.cost_usd}
    return BudgetStatus(run_id=run_id, day=day, limits=limits, run=as_dict(run), today=as_dict(today),
                        unknown_cost_calls_today=today.unknown_cost_calls)


def remaining(store: Store, config: Any, *, run_id: str | None = None, now: float | None = None) -> BudgetStatus:
    """The budget left today (and in `run_id`, if given)."""
    day = utc_day(now)
    budget = _budget_of(config)
    run = store.usage_totals(run_id=run_id) if run_id is not None else UsageTotals()
    return _status(budget, run, store.usage_totals(day=day), run_id, day)


def reserve_call(
    store: Store, config: Any, *, run_id: str, task: str, provider: str, model: str,
    prompt_hash: str = "", estimated_prompt_tokens: int = 0, now: float | None = None,
) -> int:
    """Check the budget and record a pending call atomically; ProviderError(kind="budget") when spent."""
    budget = _budget_of(config)
    stamp = time.time() if now is None else now
    day = utc_day(stamp)
    with store.write() as db:
        status = _status(budget, store.usage_totals(db, run_id=run_id), store.usage_totals(db, day=day), run_id, day)
        for limit in status.limits:
            needed = 1 if limit.measure == "calls" else estimated_prompt_tokens if limit.measure == "tokens" else 0
            if limit.spent or (needed and needed > limit.remaining):
                raise ProviderError(_refusal(limit, needed), kind="budget", provider=provider, model=model)
        return store.insert_usage(
            db, created_at=stamp, day=day, run_id=run_id, task=task, provider=provider, model=model,
            outcome="pending", prompt_hash=prompt_hash,
        )


def finish_call(
    store: Store, row_id: int, *, outcome: str, error: str = "", prompt_tokens: int | None = None,
    completion_tokens: int | None = None, cost_usd: float | None = None, latency_s: float = 0.0,
) -> None:
    store.update_usage(
        row_id, outcome=outcome, error=error, prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens, cost_usd=cost_usd, latency_s=latency_s,
    )


def _refusal(limit: LimitStatus, needed: int) -> str:
    when = "for this run" if limit.scope == "run" else "for today (UTC)"
    head = (f"LLM budget spent {when}: {limit.setting} = {_fmt(limit.measure, limit.limit)}, "
            f"{_fmt(limit.measure, limit.used)} used, {_fmt(limit.measure, limit.remaining)} left")
    if not limit.spent and limit.measure == "tokens":
        head += f", and the next prompt alone is about {needed} tokens"
    return head + "; no further LLM calls are made. Raise it in [llm.budget] of truthplane.toml"


def _fmt(measure: str, value: float) -> str:
    if measure == "cost_usd":
        return f"${value:.4f}"
    return str(int(value))
