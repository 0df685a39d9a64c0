"""The TruthplaneError tree. The CLI's one error boundary maps each class to an exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes shared by every command that judges (DESIGN.md)."""

    OK = 0  # APPROVE, or plain success
    REJECT = 1
    USAGE = 2
    REVIEW = 3
    UNVERIFIED = 4  # a verifier failed or is missing, a timeout, no baseline
    INTERRUPTED = 130


class TruthplaneError(Exception):
    """An expected failure: printed as one line, mapped to an exit code, never a traceback."""

    exit_code: ExitCode = ExitCode.UNVERIFIED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(TruthplaneError):
    """The user asked for something that cannot be done as asked (bad flag, bad path)."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """truthplane.toml or [tool.truthplane] is invalid."""


class InputError(TruthplaneError):
    """A baseline, SARIF log or other input file is missing, corrupt or truncated."""

    exit_code = ExitCode.UNVERIFIED


class NoBaselineError(InputError):
    """There is nothing to compare against yet."""


class GitError(TruthplaneError):
    """A git operation failed: not a repository, missing or shallow ref, worktree trouble."""

    exit_code = ExitCode.UNVERIFIED


class VerifierError(TruthplaneError):
    """A verifier could not run: missing, crashed, timed out or printed garbage.

    Findings are data; this error means "no evidence", which is never an approval.
    """

    exit_code = ExitCode.UNVERIFIED

    def __init__(self, verifier: str, message: str, *, status: str = "failed") -> None:
        super().__init__(f"{verifier}: {message}")
        self.verifier = verifier
        self.reason = message
        self.status = status


class ExecutorError(TruthplaneError):
    """An executor could not run a job (backend missing, node unreachable, image absent)."""

    exit_code = ExitCode.UNVERIFIED


class ProviderError(TruthplaneError):
    """An LLM provider failed or answered with something that is not the asked-for schema."""

    exit_code = ExitCode.UNVERIFIED


class PluginError(UsageError):
    """A plugin named in the configuration is unknown or failed to load."""
