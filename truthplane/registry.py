"""The single list of plugin names. Built-ins are registered exactly like third-party plugins
(entry point groups truthplane.verifiers / truthplane.executors / truthplane.llm); only the selected
plugin's module is imported, and a load failure names the package it came from.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from truthplane.errors import ExecutorError, PluginError

BUILTIN_VERIFIERS: dict[str, str] = {
    "ruff": "truthplane.verifiers.ruff:RuffVerifier",
    "bandit": "truthplane.verifiers.bandit:BanditVerifier",
    "semgrep": "truthplane.verifiers.semgrep:SemgrepVerifier",
    "mypy": "truthplane.verifiers.mypy:MypyVerifier",
    "pytest": "truthplane.verifiers.pytest_:PytestVerifier",
    "pip-audit": "truthplane.verifiers.pip_audit:PipAuditVerifier",
    "eslint": "truthplane.verifiers.eslint:EslintVerifier",
    "tsc": "truthplane.verifiers.tsc:TscVerifier",
    "npm-audit": "truthplane.verifiers.npm_audit:NpmAuditVerifier",
    "build": "truthplane.verifiers.build:BuildVerifier",
    "codeql": "truthplane.verifiers.codeql:CodeqlVerifier",
    "command": "truthplane.verifiers.command:CommandVerifier",
}

BUILTIN_EXECUTORS: dict[str, str] = {
    "local": "truthplane.executors.local:LocalExecutor",
    "docker": "truthplane.executors.docker:DockerExecutor",
    "lambda": "truthplane.executors.aws_lambda:LambdaExecutor",
    "ssh": "truthplane.executors.cluster:SSHExecutor",
    "cluster": "truthplane.executors.cluster:ClusterExecutor",
}

GROUPS = {"verifiers": BUILTIN_VERIFIERS, "executors": BUILTIN_EXECUTORS}

# the model a built-in executor's [executors.<name>] table must satisfy, where the executor defines its own
# (the configuration checks it when it is read, and imports the executor's module only when the table is there)
EXECUTOR_OPTIONS: dict[str, str] = {"ssh": "truthplane.executors.ssh:SSHOptions"}

# How a built-in verifier that is off by default detects that a repository uses its tool: it is turned on
# when any of its alternatives is present, an alternative being files that must all exist at the root.
ESLINT_CONFIGS = tuple(f"eslint.config.{ext}" for ext in ("js", "mjs", "cjs", "ts", "mts", "cts"))
NPM_LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json")
DETECTED_BY: dict[str, tuple[tuple[str, ...], ...]] = {
    "eslint": tuple((name,) for name in ESLINT_CONFIGS),
    "tsc": (("tsconfig.json",),),
    "npm-audit": tuple(("package.json", lockfile) for lockfile in NPM_LOCKFILES),
}

# optional Python packages, and the extra of truthplane that installs each
OPTIONAL_PACKAGES = {
    "docker": "executors", "requests": "executors", "boto3": "executors", "botocore": "executors",
    "asyncssh": "executors", "mypy": "python", "pip_audit": "python", "pytest": "python",
    "dask_cloudprovider": "azure",
}

T = TypeVar("T")


def install_hint(module: str) -> str:
    """What to pip install for a missing module: truthplane's extra for an optional package, else the package."""
    root = module.split(".")[0]
    extra = OPTIONAL_PACKAGES.get(root)
    return f"pip install 'truthplane[{extra}]'" if extra else f"pip install {root.replace('_', '-')}"


def require(*modules: str, needed_by: str) -> None:
    """Import optional packages now, so a missing one is an ExecutorError that says what to install."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            name = (exc.name or module).split(".")[0]
            raise ExecutorError(
                f"{needed_by} needs the Python package {name}, which is not installed: {install_hint(name)}"
            ) from None


@cache
def plugin_table(kind: str) -> dict[str, tuple[str, str]]:
    """name -> (import target "module:attr", the distribution that provides it)."""
    from importlib.metadata import entry_points

    table = {name: (target, "truthplane") for name, target in GROUPS[kind].items()}
    for ep in entry_points(group=f"truthplane.{kind}"):
        if ep.name in table and table[ep.name][1] == "truthplane":
            continue  # a plugin cannot shadow a built-in
        table[ep.name] = (ep.value, ep.dist.name if ep.dist else "an unknown package")
    return table


def names(kind: str) -> list[str]:
    return sorted(plugin_table(kind))


def _target(kind: str, name: str) -> tuple[str, str]:
    """Where a plugin lives. A built-in is never shadowed, so naming one needs no look through every installed
    distribution's entry points (tens of milliseconds on a machine with a few hundred of them)."""
    if name in GROUPS[kind]:
        return GROUPS[kind][name], "truthplane"
    table = plugin_table(kind)
    if name not in table:
        singular = kind.rstrip("s")
        raise PluginError(f"unknown {singular} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def executor_options_model(name: str) -> Any:
    """The options model of a built-in executor that defines its own, else None."""
    target = EXECUTOR_OPTIONS.get(name)
    if target is None:
        return None
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def load(kind: str, name: str) -> Any:
    target, package = _target(kind, name)
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except ImportError as exc:
        hint = install_hint(exc.name) if exc.name else f"pip install {package}"
        raise PluginError(f"{kind.rstrip('s')} {name!r} from {package} cannot be imported: {exc}; {hint}") from None
    except AttributeError:
        raise PluginError(f"{kind.rstrip('s')} {name!r} from {package}: {target} does not exist") from None


def detect(root: Path) -> list[str]:
    """The verifiers a repository declares by its files (DETECTED_BY). A handful of stat calls, so a
    repository without them pays nothing."""
    return [name for name, alternatives in DETECTED_BY.items()
            if any(all((root / file).is_file() for file in files) for files in alternatives)]
