"""The single list of plugin names. Built-ins are registered exactly like third-party plugins
(entry point groups truthplane.verifiers / truthplane.executors / truthplane.llm); only the selected
plugin's module is imported, and a load failure names the package it came from.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from truthplane.errors import ExecutorError, PluginError

if TYPE_CHECKING:
    from truthplane.config import Config
    from truthplane.executors.interface import Executor
    from truthplane.verifiers.interface import Verifier, VerifierContext

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
    "ssh": "truthplane.executors.ssh:SSHExecutor",
}

GROUPS = {"verifiers": BUILTIN_VERIFIERS, "executors": BUILTIN_EXECUTORS}

# optional Python packages, and the extra of truthplane that installs each
OPTIONAL_PACKAGES = {
    "docker": "executors", "requests": "executors", "boto3": "executors", "botocore": "executors",
    "asyncssh": "executors", "mypy": "python", "pip_audit": "python", "pytest": "python",
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


def verifier_type(config: Config, name: str) -> str:
    """The implementation a configured verifier name uses: `type = ...`, or the name itself."""
    return config.options_for(name).type or name


def check_selection(config: Config, only: list[str] | None) -> None:
    """`--verifier NAME` must name a configured verifier or a known one."""
    for name in only or []:
        if name not in config.verifiers and name not in BUILTIN_VERIFIERS and name not in plugin_table("verifiers"):
            raise PluginError(f"unknown verifier {name!r}; configured: {', '.join(config.verifiers)}")


def create_verifier(config: Config, name: str, context: VerifierContext) -> Verifier:
    """One configured verifier; one whose tools live in node_modules learns the repository's root,
    so a tree exported elsewhere (a gate's base) still finds them."""
    cls = load("verifiers", verifier_type(config, name))
    verifier = cls(name, config.options_for(name), context)
    if config.root is not None and hasattr(verifier, "project_root"):
        verifier.project_root = config.root
    return verifier


def preload_verifiers(config: Config, only: list[str] | None = None) -> None:
    """Import the selected verifiers' modules ahead of use (a gate does it while git lists the trees);
    a verifier that cannot be loaded is reported where it is created, not here."""
    for name in only or config.verifiers:
        try:
            load("verifiers", verifier_type(config, name))
        except PluginError:
            pass


def create_verifiers(config: Config, context: VerifierContext, only: list[str] | None = None) -> list[Verifier]:
    check_selection(config, only)
    return [create_verifier(config, name, context) for name in only or config.verifiers]


def executor_options(name: str, config: Config | None) -> dict[str, Any]:
    """The [executors.<name>] table, as the backend will validate it."""
    if config is None:
        return {}
    return dict(getattr(config.executors, "model_extra", None) or {}).get(name, {}) or {}


def create_executor(name: str, config: Config | None = None) -> Executor:
    return load("executors", name)(executor_options(name, config))
