"""An executor backend made from the plugin registry, with its [executors.<name>] table."""

from __future__ import annotations

from typing import Any

from truthplane.config import Config
from truthplane.executors.interface import Executor
from truthplane.registry import load


def executor_options(name: str, config: Config | None) -> dict[str, Any]:
    """The [executors.<name>] table, as the backend will validate it."""
    if config is None:
        return {}
    return dict(getattr(config.executors, "model_extra", None) or {}).get(name, {}) or {}


def create_executor(name: str, config: Config | None = None) -> Executor:
    backend = load("executors", name)
    if hasattr(backend, "from_config"):  # an executor whose settings are more than its own table (a cluster)
        return backend.from_config(config)  # type: ignore[no-any-return]
    return backend(executor_options(name, config))
