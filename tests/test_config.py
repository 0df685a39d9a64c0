from __future__ import annotations

from pathlib import Path

import pytest

from truthplane.config import DEFAULT_VERIFIERS, load_config
from truthplane.errors import ConfigError, ExitCode
from truthplane.models import Severity


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_file(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert config.verifiers == DEFAULT_VERIFIERS
    assert config.gate.fail_on is Severity.HIGH


def test_truthplane_toml_tables_and_overrides(tmp_path: Path) -> None:
    write(tmp_path / "truthplane.toml", """
exclude = ["vendor/**"]
[gate]
fail_on = "medium"
[severity]
"ruff:E501" = "note"
B101 = "low"
[verifiers.ruff]
args = ["--extend-select", "B"]
[verifiers.mylint]
type = "command"
command = ["mylint", "{files}"]
""")
    config = load_config(tmp_path)
    assert config.verifiers == [*DEFAULT_VERIFIERS, "mylint"]
    assert config.options_for("ruff").args == ["--extend-select", "B"]
    assert config.severity_override("ruff", "E501") is Severity.NOTE
    assert config.severity_override("bandit", "B101") is Severity.LOW
    assert config.severity_override("bandit", "B102") is None
    assert "vendor/**" in config.all_excludes()


def test_enabled_list_replaces_defaults(tmp_path: Path) -> None:
    write(tmp_path / "truthplane.toml", '[verifiers]\nenabled = ["ruff", "mypy"]\n')
    assert load_config(tmp_path).verifiers == ["ruff", "mypy"]


def test_pyproject_section_and_precedence(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.truthplane]\nverifiers = ["bandit"]\n')
    assert load_config(tmp_path).verifiers == ["bandit"]
    write(tmp_path / "truthplane.toml", 'verifiers = ["ruff"]\n')
    assert load_config(tmp_path).verifiers == ["ruff"]


@pytest.mark.parametrize("text, needle", [
    ("verifiers = [", "not valid TOML"),
    ("[gate]\nfail_on = 'urgent'\n", "gate.fail_on"),
    ("unknown = 1\n", "unknown: Extra inputs are not permitted"),
    ("verifiers = ['ruff', 'ruff']\n", "listed twice"),
    ("[verifiers.ruff]\nargz = []\n", "verifiers.ruff.argz"),
    ("[verifiers]\nfoo = 1\n", "unknown key"),
])
def test_bad_config_is_a_usage_error_with_the_place(tmp_path: Path, text: str, needle: str) -> None:
    write(tmp_path / "truthplane.toml", text)
    with pytest.raises(ConfigError, match=needle) as info:
        load_config(tmp_path)
    assert info.value.exit_code == ExitCode.USAGE


def test_non_utf8_config(tmp_path: Path) -> None:
    (tmp_path / "truthplane.toml").write_bytes(b"verifiers = ['\xff']\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path)
