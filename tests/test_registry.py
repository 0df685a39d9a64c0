"""Plugins are found through entry points, exactly like the built-ins, and never shadow a built-in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from truthplane import registry
from truthplane.errors import PluginError


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution on sys.path whose entry points name a new verifier and try to take over ruff."""
    package = tmp_path / "tp_extra_plugin.py"
    package.write_text("class Extra:\n    pass\n\n\nclass FakeRuff:\n    pass\n")
    dist = tmp_path / "tp_extra_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tp-extra-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[truthplane.verifiers]\nextra = tp_extra_plugin:Extra\nruff = tp_extra_plugin:FakeRuff\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.plugin_table.cache_clear()
    yield
    registry.plugin_table.cache_clear()
    sys.modules.pop("tp_extra_plugin", None)


def test_a_plugin_verifier_loads_and_a_builtin_is_never_shadowed(installed_plugin: None) -> None:
    assert registry.load("verifiers", "extra").__name__ == "Extra"
    assert registry.load("verifiers", "ruff").__name__ == "RuffVerifier"
    assert "extra" in registry.names("verifiers")


def test_an_unknown_plugin_names_the_known_ones() -> None:
    with pytest.raises(PluginError, match="unknown verifier 'nosuch'; known: .*ruff"):
        registry.load("verifiers", "nosuch")
