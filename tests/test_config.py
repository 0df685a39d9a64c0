from __future__ import annotations

import math
from pathlib import Path

import pytest

from truthplane.config import DEFAULT_VERIFIERS, load_config, parse_config
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


# what each problem is reported as, word for word as pydantic reported it when it read the configuration (a gate
# reads it with truthplane.reading now; the words users and their scripts know stay the same)
@pytest.mark.parametrize("raw, message", [
    ({'gate': {'fail_on': 'urgent'}},
     "gate.fail_on: Input should be 'note', 'low', 'medium', 'high' or 'critical', not 'urgent'"),
    ({'gate': {'fail_on': 3}}, "gate.fail_on: Input should be 'note', 'low', 'medium', 'high' or 'critical', not 3"),
    ({'gate': {'max_new': -1}}, 'gate.max_new: Input should be greater than or equal to 0, not -1'),
    ({'gate': {'max_new': 1.5}},
     'gate.max_new: Input should be a valid integer, got a number with a fractional part, not 1.5'),
    ({'gate': {'max_new': 'x'}},
     "gate.max_new: Input should be a valid integer, unable to parse string as an integer, not 'x'"),
    ({'gate': 'high'}, "gate: Input should be a valid dictionary or instance of GateConfig, not 'high'"),
    ({'gate': {'unknown': 1}}, 'gate.unknown: Extra inputs are not permitted, not 1'),
    ({'unknown': 1}, 'unknown: Extra inputs are not permitted, not 1'),
    ({'verifiers': 'ruff'}, "verifiers: Input should be a valid list, not 'ruff'"),
    ({'verifiers': ['ruff', 3]}, 'verifiers.1: Input should be a valid string, not 3'),
    ({'verifiers': ['ruff', 'ruff']}, "verifiers: verifier 'ruff' is listed twice"),
    ({'exclude': 'x'}, "exclude: Input should be a valid list, not 'x'"),
    ({'exclude': [1]}, 'exclude.0: Input should be a valid string, not 1'),
    ({'timeout_s': 0}, 'timeout_s: Input should be greater than 0, not 0'),
    ({'timeout_s': -5}, 'timeout_s: Input should be greater than 0, not -5'),
    ({'timeout_s': 1000000000},
     'timeout_s: should be a number of seconds above 0 and at most 2592000 (30 days), not 1000000000'),
    ({'timeout_s': math.inf}, 'timeout_s: Input should be a finite number, not inf'),
    ({'timeout_s': math.nan}, 'timeout_s: Input should be a finite number, not nan'),
    ({'timeout_s': 'abc'}, "timeout_s: Input should be a valid number, unable to parse string as a number, not 'abc'"),
    ({'timeout_s': [1]}, 'timeout_s: Input should be a valid number'),
    ({'cache_dir': 5}, 'cache_dir: Input should be a valid string, not 5'),
    ({'severity': {'ruff:E501': 'urgent'}},
     "severity.ruff:E501: Input should be 'note', 'low', 'medium', 'high' or 'critical', not 'urgent'"),
    ({'severity': {'E501': 1}}, "severity.E501: Input should be 'note', 'low', 'medium', 'high' or 'critical', not 1"),
    ({'severity': 'x'}, "severity: Input should be a valid dictionary, not 'x'"),
    ({'verifiers': {'ruff': {'argz': []}}}, 'verifiers.ruff.argz: Extra inputs are not permitted'),
    ({'verifiers': {'ruff': {'args': 'x'}}}, "verifiers.ruff.args: Input should be a valid list, not 'x'"),
    ({'verifiers': {'ruff': {'timeout_s': 0}}}, 'verifiers.ruff.timeout_s: Input should be greater than 0, not 0'),
    ({'verifiers': {'ruff': {'timeout_s': 1000000000}}},
     'verifiers.ruff.timeout_s: should be a number of seconds above 0 and at most 2592000 (30 days), not '
     '1000000000'),
    ({'verifiers': {'ruff': {'format': 'xml'}}}, "verifiers.ruff.format: Input should be 'sarif' or 'json', not 'xml'"),
    ({'verifiers': {'ruff': {'engine': 'fast'}}},
     "verifiers.ruff.engine: Input should be 'native' or 'classic', not 'fast'"),
    ({'verifiers': {'ruff': {'incremental': 'maybe'}}},
     "verifiers.ruff.incremental: Input should be a valid boolean, unable to interpret input, not 'maybe'"),
    ({'verifiers': {'ruff': {'incremental': 2}}},
     'verifiers.ruff.incremental: Input should be a valid boolean, unable to interpret input, not 2'),
    ({'verifiers': {'ruff': {'ok_exit_codes': [0, 'x']}}},
     'verifiers.ruff.ok_exit_codes.1: Input should be a valid integer, unable to parse string as an integer, not '
     "'x'"),
    ({'verifiers': {'ruff': {'max_warnings': -1}}},
     'verifiers.ruff.max_warnings: Input should be greater than or equal to 0, not -1'),
    ({'verifiers': {'ruff': {'command': 'x'}}}, "verifiers.ruff.command: Input should be a valid list, not 'x'"),
    ({'verifiers': {'enabled': 'ruff'}}, "verifiers: Input should be a valid list, not 'ruff'"),
    ({'executors': {'default': 5}}, 'executors.default: Input should be a valid string, not 5'),
    ({'executors': {'local': {'concurrency': 0}}},
     'executors.local.concurrency: Input should be greater than or equal to 1, not 0'),
    ({'executors': {'local': {'warm': -1}}},
     'executors.local.warm: Input should be greater than or equal to 0, not -1'),
    ({'executors': {'local': 'x'}}, 'executors.local: should be a table, [executors.local]'),
    ({'executors': {'docker': {'image': 5}}}, 'executors.docker.image: Input should be a valid string, not 5'),
    ({'executors': {'lambda': {'retries': -1}}},
     'executors.lambda.retries: Input should be greater than or equal to 0, not -1'),
    ({'executors': {'local': {'kill_grace_s': 0}}},
     'executors.local.kill_grace_s: Input should be greater than 0, not 0'),
    ({'executors': {'local': {'nope': 1}}}, 'executors.local.nope: Extra inputs are not permitted, not 1'),
    ({'executors': 'x'}, "executors: Input should be a valid dictionary or instance of ExecutorSettings, not 'x'"),
    ({'llm': {'retry': {'max_retries': -1}}},
     'llm.retry.max_retries: Input should be greater than or equal to 0, not -1'),
    ({'llm': {'nope': 1}}, 'llm.nope: Extra inputs are not permitted, not 1'),
    ({'cluster': {'workers': 0}}, 'cluster.workers: Input should be greater than or equal to 1, not 0'),
    ({'cluster': {'nope': 1}}, 'cluster.nope: Extra inputs are not permitted, not 1'),
    ({'tasks': 'x'}, "tasks: Input should be a valid list, not 'x'"),
])
def test_each_problem_is_reported_as_before(raw: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(raw, "t.toml")
    assert str(info.value) == f"t.toml: {message}"


def test_values_convert_as_before() -> None:
    config = parse_config({"gate": {"max_new": "7"}, "timeout_s": "600", "verifiers": {"ruff": {
        "incremental": "yes", "ok_exit_codes": [0.0, "1"], "timeout_s": "12", "rules": None}}}, "t.toml")
    assert config.gate.max_new == 7 and config.timeout_s == 600.0
    ruff = config.options_for("ruff")
    assert (ruff.incremental, ruff.ok_exit_codes, ruff.timeout_s, ruff.rules) == (True, [0, 1], 12.0, None)
    assert parse_config({"gate": {"max_new": True}, "timeout_s": True}, "t.toml").gate.max_new == 1
    assert parse_config({"timeout_s": True}, "t.toml").timeout_s == 1.0
    assert parse_config({"gate": {"fail_on": "critical"}}, "t.toml").gate.fail_on is Severity.CRITICAL


def test_the_cache_key_of_a_verifier_s_options_is_as_before() -> None:
    """A verifier's options are part of its cached results' key: written as pydantic wrote them, a cache filled
    before stays warm."""
    options = parse_config({"verifiers": {"ruff": {"args": ["--select", "É"], "timeout_s": 7200}}}, "t.toml")
    assert options.options_for("ruff").model_dump_json() == (
        '{"type":null,"args":["--select","É"],"timeout_s":7200.0,"command":null,"format":"sarif",'
        '"incremental":false,"ok_exit_codes":[0,1],"rules":null,"engine":"native","test_args":null,'
        '"max_warnings":null,"sandbox":false,"project":null,"language":null,"queries":null}')


def test_llm_and_cluster_tables_are_read_only_when_given() -> None:
    config = parse_config({}, "t.toml")
    assert config.llm_table is None and config.cluster_table is None
    assert config.llm.retry.max_retries == 2 and config.cluster.kind == "local"  # their defaults, made when asked
    given = parse_config({"llm": {"retry": {"max_retries": 5}}, "executors": {"local": {"warm": 2}}}, "t.toml")
    assert given.llm.retry.max_retries == 5
    assert given.executors.model_extra == {"local": {"warm": 2}}


def test_a_table_validated_alone_is_checked_as_in_the_file() -> None:
    """VerifierConfig.model_validate (and any table's) goes through the same reading as the file: its bounds and
    unknown keys are errors, never passed over."""
    from truthplane.config import GateConfig, VerifierConfig

    assert VerifierConfig.model_validate({"timeout_s": "12"}).timeout_s == 12.0
    with pytest.raises(ConfigError, match=r"^timeout_s: Input should be greater than 0, not 0$"):
        VerifierConfig.model_validate({"timeout_s": 0})
    with pytest.raises(ConfigError, match=r"^argz: Extra inputs are not permitted"):
        VerifierConfig.model_validate({"argz": []})
    with pytest.raises(ConfigError, match=r"^max_new: Input should be greater than or equal to 0"):
        GateConfig.model_validate({"max_new": -1})
