"""truthplane.toml (or [tool.truthplane] in pyproject.toml) -> a checked Config (truthplane.reading).

truthplane.toml::

    exclude = ["tests/fixtures/**"]
    timeout_s = 600       # per verifier run, in seconds

    [gate]
    fail_on = "high"      # a new finding at or above this severity: REJECT
    review_on = "low"     # a new finding at or above this (and below fail_on): REVIEW

    [severity]            # "verifier:rule" or "rule" -> severity
    "ruff:E501" = "note"

    [verifiers]
    enabled = ["ruff", "bandit", "semgrep"]   # or a plain `verifiers = [...]` when no verifier has a table

    [verifiers.ruff]
    args = ["--extend-select", "B"]

    [verifiers.mylint]    # any tool that prints SARIF or JSON
    type = "command"
    command = ["mylint", "--sarif", "{files}"]
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from truthplane.errors import ConfigError
from truthplane.files import MAX_CONFIG_BYTES, read_regular_file
from truthplane.models import MAX_TIMEOUT_S, Record, Severity
from truthplane.paths import RESULTS_DIR, SARIF_DIR, check_cache_dir
from truthplane.reading import Unexpected, read

if TYPE_CHECKING:
    from truthplane.config.cluster import ClusterSettings
    from truthplane.config.llm import LLMConfig

DEFAULT_VERIFIERS = ["ruff", "bandit", "semgrep"]
# a time limit in seconds: positive, finite (every table here refuses inf and nan), at most MAX_TIMEOUT_S
SECONDS = {"gt": 0, "le": MAX_TIMEOUT_S}

# never scanned: tool caches, our own output, vendored environments
DEFAULT_EXCLUDES = [
    ".git",
    ".hg",
    RESULTS_DIR,
    SARIF_DIR,
    "node_modules",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    "build",
    "dist",
    "*.egg-info",
]


_T = TypeVar("_T", bound="_Table")


class _Table(Record):
    """A table of the configuration: a key it does not know is an error, and so is an infinite number."""

    __slots__ = ()
    _EXTRA: ClassVar[str] = "forbid"
    _FINITE: ClassVar[bool] = True

    @classmethod
    def model_validate(cls: type[_T], data: Any) -> _T:
        """A table checked as the configuration file's are (truthplane.reading, with its bounds and checks), not
        by pydantic: a ConfigError naming the first problem."""
        try:
            return read(cls, data)
        except Unexpected as exc:
            raise ConfigError(_first_error(exc)) from None


@dataclass(kw_only=True)
class GateConfig(_Table):
    fail_on: Severity = Severity.HIGH
    review_on: Severity = Severity.LOW
    max_new: int | None = field(default=None, metadata={"ge": 0})  # more new findings than this (any severity): REJECT
    # a gate of the working tree asks a watchman server what changed instead of statting every file (where
    # watchman is installed; truthplane.git.watchman)
    watchman: bool = False


@dataclass(kw_only=True)
class VerifierConfig(_Table):
    """Options for one verifier. `type` names the implementation; it defaults to the section name."""

    type: str | None = None
    args: list[str] = field(default_factory=list)
    timeout_s: float | None = field(default=None, metadata=SECONDS)
    # command verifier
    command: list[str] | None = None
    format: Literal["sarif", "json"] = "sarif"
    incremental: bool = False
    ok_exit_codes: list[int] = field(default_factory=lambda: [0, 1])
    # semgrep: extra rule files; "native" runs semgrep's own compiled CLI (`semgrep scan --experimental`,
    # which starts seconds faster), "classic" its Python CLI
    rules: list[str] | None = None
    engine: Literal["native", "classic"] = "native"
    # pytest
    test_args: list[str] | None = None
    # eslint: more warnings than this make every warning high (eslint --max-warnings); run in the executor
    max_warnings: int | None = field(default=None, metadata={"ge": 0})
    sandbox: bool = False
    # tsc: the tsconfig to check (default tsconfig.json)
    project: str | None = None
    # codeql: the database language and the query pack or suite to analyse with
    language: str | None = None
    queries: str | None = None


@dataclass(kw_only=True)
class ExecutorSettings(_Table):
    """[executors] and [executors.<name>]. The tables are kept as given (each backend reads its own); the
    built-in backends' tables are checked here, so a bad value is an error whichever command reads them."""

    _EXTRA: ClassVar[str] = "tables"
    default: str = "local"
    tables: dict[str, Any] = field(default_factory=dict)  # [executors.<name>], by name

    @property
    def model_extra(self) -> dict[str, Any]:
        return self.tables

    def check_tables(self, source: str) -> None:
        for name, table in self.tables.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{source}: executors.{name}: should be a table, [executors.{name}]")
            from truthplane.registry import executor_options_model

            model = executor_options_model(name) or _EXECUTOR_TABLES.get(name)
            if model is not None:
                try:
                    if isinstance(model, type) and issubclass(model, _Table):
                        read(model, table)
                    else:  # a backend's own pydantic model
                        _pydantic_table(model, table)
                except Unexpected as exc:
                    raise ConfigError(f"{source}: {_first_error(exc, f'executors.{name}')}") from None
            for where, value in _leaves(table, f"executors.{name}"):
                if isinstance(value, float) and not math.isfinite(value):  # a plugin's own model may allow them
                    raise ConfigError(f"{source}: {where}: Input should be a finite number")


@dataclass(kw_only=True)
class _ExecutorTable(_Table):
    concurrency: int | None = field(default=None, metadata={"ge": 1})
    kill_grace_s: float | None = field(default=None, metadata=SECONDS)


@dataclass(kw_only=True)
class LocalExecutorTable(_ExecutorTable):
    """[executors.local]"""

    warm: int | None = field(default=None, metadata={"ge": 0})  # sandbox starters kept ready
    sandbox: bool = True


@dataclass(kw_only=True)
class DockerExecutorTable(_ExecutorTable):
    """[executors.docker]"""

    image: str | None = None
    base_url: str | None = None
    user: str | None = None


@dataclass(kw_only=True)
class LambdaExecutorTable(_ExecutorTable):
    """[executors.lambda]"""

    function_name: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    retries: int | None = field(default=None, metadata={"ge": 0})
    connect_timeout_s: float | None = field(default=None, metadata=SECONDS)
    read_timeout_s: float | None = field(default=None, metadata=SECONDS)


_EXECUTOR_TABLES: dict[str, type[_Table]] = {
    "local": LocalExecutorTable, "docker": DockerExecutorTable, "lambda": LambdaExecutorTable,
}


def _leaves(value: Any, where: str) -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in _leaves(item, f"{where}.{key}")]
    if isinstance(value, list):
        return [leaf for index, item in enumerate(value) for leaf in _leaves(item, f"{where}.{index}")]
    return [(where, value)]


def _no_duplicates(names: list[str]) -> list[str]:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"verifier {name!r} is listed twice")
        seen.add(name)
    return names


def _usable_cache_dir(value: str | None) -> str | None:
    if value is not None:
        check_cache_dir(Path(value))
    return value


def _llm_table(table: Any) -> LLMConfig:
    """[llm], checked by its pydantic models (imported only for a configuration that has one)."""
    from truthplane.config.llm import LLMConfig

    return _pydantic_table(LLMConfig, table)


def _cluster_table(table: Any) -> ClusterSettings:
    """[cluster], as [llm]."""
    from truthplane.config.cluster import ClusterSettings

    return _pydantic_table(ClusterSettings, table)


def _pydantic_table(model: Any, table: Any) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(table)
    except ValidationError as exc:
        raise _pydantic_first(exc) from None


def _pydantic_first(exc: Any) -> Unexpected:
    first = exc.errors()[0]
    return Unexpected(tuple(first["loc"]), str(first["msg"]), first.get("input"), first.get("ctx"))


@dataclass(kw_only=True)
class Config(_Table):
    verifiers: list[str] = field(default_factory=lambda: list(DEFAULT_VERIFIERS), metadata={"check": _no_duplicates})
    exclude: list[str] = field(default_factory=list)
    timeout_s: float = field(default=600.0, metadata=SECONDS)
    cache_dir: str | None = field(default=None, metadata={"check": _usable_cache_dir})
    gate: GateConfig = field(default_factory=GateConfig)
    severity: dict[str, Severity] = field(default_factory=dict)
    verifier_options: dict[str, VerifierConfig] = field(default_factory=dict)
    executors: ExecutorSettings = field(default_factory=ExecutorSettings)
    # [llm] and [cluster] as given (checked when read, by their pydantic models); `llm` and `cluster` give them
    # with their defaults, made when first asked for: a gate never asks
    llm_table: Any = field(default=None, metadata={"key": "llm", "check": _llm_table})
    cluster_table: Any = field(default=None, metadata={"key": "cluster", "check": _cluster_table})
    # [[tasks]] for run-all: their shape is checked here, their files by truthplane.runall.tasks
    tasks: list[Any] = field(default_factory=list)
    source: str | None = None  # the file this came from, for messages
    _root: Path | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def root(self) -> Path | None:
        """The repository this configuration was loaded for (where its node_modules lives)."""
        return self._root

    @property
    def llm(self) -> LLMConfig:
        if self.llm_table is None:
            from truthplane.config.llm import LLMConfig

            self.llm_table = LLMConfig()
        return self.llm_table  # type: ignore[no-any-return]

    @llm.setter
    def llm(self, value: LLMConfig) -> None:
        self.llm_table = value

    @property
    def cluster(self) -> ClusterSettings:
        if self.cluster_table is None:
            from truthplane.config.cluster import ClusterSettings

            self.cluster_table = ClusterSettings()
        return self.cluster_table  # type: ignore[no-any-return]

    @cluster.setter
    def cluster(self, value: ClusterSettings) -> None:
        self.cluster_table = value

    def options_for(self, name: str) -> VerifierConfig:
        return self.verifier_options.get(name, VerifierConfig())

    def severity_override(self, verifier: str, rule_id: str) -> Severity | None:
        return self.severity.get(f"{verifier}:{rule_id}") or self.severity.get(rule_id)

    def all_excludes(self) -> list[str]:
        return DEFAULT_EXCLUDES + self.exclude


def read_toml(path: Path, error: type[ConfigError] = ConfigError) -> dict[str, Any]:
    """A TOML file as a dict; unreadable, too large, too deep or invalid is one line as `error`."""
    raw = read_regular_file(path, MAX_CONFIG_BYTES, error)
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path.name} is not valid TOML: {exc}") from None
    except RecursionError:
        raise error(f"{path.name}: tables or arrays are nested too deeply") from None


def _tool_section(raw: dict[str, Any], source: str) -> dict[str, Any] | None:
    """[tool.truthplane] of a pyproject.toml, or None; anything but a table there is an error."""
    tool = raw.get("tool")
    if tool is None:
        return None
    if not isinstance(tool, dict):
        raise ConfigError(f"{source}: tool should be a table ([tool.truthplane]), not {type(tool).__name__}")
    section = tool.get("truthplane")
    if section is not None and not isinstance(section, dict):
        raise ConfigError(
            f"{source}: tool.truthplane should be a table ([tool.truthplane]), not {type(section).__name__}"
        )
    return section


def _normalise(raw: dict[str, Any]) -> dict[str, Any]:
    """`[verifiers]` as a table holds `enabled = [...]` and the `[verifiers.X]` tables; split them apart."""
    data = dict(raw)
    verifiers = data.get("verifiers")
    if isinstance(verifiers, dict):
        tables = {k: v for k, v in verifiers.items() if isinstance(v, dict)}
        enabled = verifiers.get("enabled")
        data["verifier_options"] = tables
        if enabled is not None:
            data["verifiers"] = enabled
        else:
            data.pop("verifiers")
            # a [verifiers.X] table for a verifier that is not a default turns it on
            extra = [name for name in tables if name not in DEFAULT_VERIFIERS]
            data["verifiers"] = DEFAULT_VERIFIERS + extra
        unknown = set(verifiers) - set(tables) - {"enabled"}
        if unknown:
            raise ConfigError(f"unknown key(s) in [verifiers]: {', '.join(sorted(unknown))}")
    return data


def parse_config(raw: dict[str, Any], source: str) -> Config:
    """The whole configuration checked at once, [executors] and [llm] included; the first problem names its place."""
    try:
        config = read(Config, {**_normalise(raw), "source": source})
    except Unexpected as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: tables or arrays are nested too deeply") from None
    config.executors.check_tables(source)
    if config.tasks:
        from truthplane.config.tasks import TaskSpec, check_tasks  # run-all's: a gate has no use for its models

        check_tasks(config.tasks, source, TaskSpec)
    return config


def _first_error(problem: Unexpected, prefix: str = "") -> str:
    """`place: what is wrong` for the first problem found, the place as the TOML spells it."""
    where = ".".join([prefix] * bool(prefix) + [str(p) for p in problem.loc]).replace("verifier_options", "verifiers")
    message = problem.msg.removeprefix("Value error, ")
    if problem.ctx == {"le": MAX_TIMEOUT_S}:
        message = f"should be a number of seconds above 0 and at most {MAX_TIMEOUT_S} (30 days)"
    value = problem.value
    if isinstance(value, (int, float, str)) and len(repr(value)) <= 40 and not _SECRET.search(where):
        message += f", not {value!r}"
    return f"{where}: {message}"


_SECRET = re.compile(r"key|secret|token|password", re.IGNORECASE)  # a value there is not repeated in a message


def _lists_verifiers(raw: dict[str, Any]) -> bool:
    verifiers = raw.get("verifiers")
    return isinstance(verifiers, list) or (isinstance(verifiers, dict) and "enabled" in verifiers)


def _for_repository(config: Config, raw: dict[str, Any], root: Path) -> Config:
    """Remember the repository, and add the JavaScript/TypeScript verifiers its files declare
    (eslint config, tsconfig.json, npm lockfile) unless the configuration lists verifiers itself."""
    from truthplane.registry import detect

    if not _lists_verifiers(raw):
        config.verifiers += [name for name in detect(root) if name not in config.verifiers]
    config._root = root.resolve()
    return config


def load_config(root: Path, explicit: Path | None = None) -> Config:
    """Load the configuration for the repository at `root`.

    `explicit` (--config) must exist. Otherwise truthplane.toml wins over [tool.truthplane]. Unless the
    verifiers are listed, the defaults apply plus eslint, tsc and npm-audit where the repository has them.
    """
    if explicit is not None:
        if not explicit.exists():
            raise ConfigError(f"config file not found: {explicit}")
        raw = read_toml(explicit)
        if explicit.name == "pyproject.toml":
            raw = _tool_section(raw, explicit.name) or {}
        return _for_repository(parse_config(raw, explicit.name), raw, root)
    toml_path = root / "truthplane.toml"
    if toml_path.is_file():
        raw = read_toml(toml_path)
        return _for_repository(parse_config(raw, "truthplane.toml"), raw, root)
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        section = _tool_section(read_toml(pyproject), "pyproject.toml")
        if section is not None:
            return _for_repository(parse_config(section, "pyproject.toml [tool.truthplane]"), section, root)
    return _for_repository(Config(), {}, root)
