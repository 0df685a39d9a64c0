"""The configured verifiers, made from the plugin registry: which implementation a name uses, the check of
`--verifier NAME`, and creating them."""

from __future__ import annotations

from truthplane.config import Config
from truthplane.errors import PluginError
from truthplane.registry import BUILTIN_VERIFIERS, load, plugin_table
from truthplane.verifiers.interface import Verifier, VerifierContext


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
