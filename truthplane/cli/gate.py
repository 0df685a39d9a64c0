"""`truthplane gate`: what a change really changes, judged against the merge-base with the branch it goes into."""

from __future__ import annotations

import os
import stat
import sys
from contextlib import ExitStack
from collections.abc import Callable
from pathlib import Path
from typing import Any

from truthplane.cli._common import (
    COUNTING_FORMATS,
    Format,
    cache_dir_option,
    emit_gate,
    recover,
    scan_options,
)

from truthplane.cli._gate_args import _DEFAULT_BASE


def fast_arguments(args: list[str]) -> dict[str, Any] | None:
    """judge()'s arguments for `truthplane gate ARGS`, as typer would give them, without importing typer (some
    25 ms of a gate's CPU, with building the command): for the plain spellings
    (truthplane.cli._gate_args.gate_arguments) whose values typer would take without a word; None for anything
    else, which the command line reads (and words its error, if there is one). tests/cli/test_fast_arguments.py
    holds the two to the same answers."""
    from truthplane.cli._gate_args import gate_arguments

    given = gate_arguments(args)
    if given is None:
        return None
    try:
        fmt = Format(given.get("fmt", Format.text.value))
    except ValueError:
        return None  # typer lists the choices
    # click's Path check (exists=False, readable): a path that is there must be of the kind asked, and readable
    paths = {"path": True, "cache_dir": True, "output": False, "sarif_out": False, "summary_out": False,
             "config_path": False}
    for name, directory in paths.items():
        value = given.get(name)
        if value is not None and not _takes(value, directory):
            return None
    return {
        "path": Path(given["path"] or "."), "base": given.get("base", _DEFAULT_BASE), "head": given.get("head"),
        "verifier": given["verifier"] or None, "fmt": fmt,
        **{name: Path(given[name]) if given.get(name) is not None else None for name in paths if name != "path"},
        "no_cache": given.get("no_cache", False), "no_fetch": given.get("no_fetch", False),
        "suggest": given.get("suggest", False), "fail_on": given.get("fail_on"), "review": given.get("review"),
    }


def without_typer(args: list[str]) -> Callable[[], int] | None:
    """The gate these arguments ask for, read without typer (fast_arguments), or None for the command line to read
    them (truthplane.cli.main.run)."""
    given = fast_arguments(args)
    return None if given is None else lambda: judge(**given)


def _takes(value: str, directory: bool) -> bool:
    """Whether click.Path(file_okay=not directory, dir_okay=directory) takes `value` as it is."""
    try:
        found = os.stat(value)
    except OSError:
        return True  # not there (yet): nothing to check
    if stat.S_ISREG(found.st_mode) if directory else stat.S_ISDIR(found.st_mode):
        return False
    return os.access(value, os.R_OK)


def judge(
    path: Path = Path("."), base: str = _DEFAULT_BASE, head: str | None = None, verifier: list[str] | None = None,
    fmt: Format = Format.text, output: Path | None = None, sarif_out: Path | None = None,
    summary_out: Path | None = None, config_path: Path | None = None, cache_dir: Path | None = None,
    no_cache: bool = False, no_fetch: bool = False, suggest: bool = False, fail_on: str | None = None,
    review: str | None = None,
) -> int:
    """`truthplane gate`: judge what a change really changes, the merge-base of HEAD and --base against HEAD."""
    from truthplane.errors import TruthplaneError, UsageError

    if review is not None and review not in ("github", "gitlab"):
        raise UsageError(f"--review {review!r}: the review target is github or gitlab")
    if suggest and (review is None or head is not None):
        raise UsageError("--suggest goes with --review, on the working tree (no --head): it fixes the files there")
    if fail_on is not None and fail_on not in ("note", "low", "medium", "high", "critical"):
        raise UsageError(f"--fail-on {fail_on!r}: give note, low, medium, high or critical")
    from truthplane.cli.start import take_early
    from truthplane.git.run import gate_calls_ahead
    from truthplane.paths import default_cache_dir
    from truthplane.truth.ahead import LaunchPlans, tools_ahead

    try:
        recover(path)
        plans = (
            None
            if no_cache
            else LaunchPlans(
                cache_dir_option(cache_dir) or default_cache_dir(), config_path, tuple(verifier or ()) or None
            )
        )
        # git lists both states while the rest is imported and the configuration read, and the tools start on
        # the changed files as soon as git has said which they are: started by the command's first step, before
        # any of this was imported (truthplane.cli.start), or here
        with ExitStack() as ahead:
            early = take_early(path, base, head, plans)
            if early is not None:
                ahead.enter_context(early)
            else:
                on_listed = ahead.enter_context(tools_ahead(plans))
                ahead.enter_context(
                    gate_calls_ahead(path, base, head, on_listed, store=plans.cache_dir if plans else None))
            from truthplane.cli import render
            from truthplane.truth.pipeline import gate as run_gate

            config, options = scan_options(path, config_path, verifier, cache_dir, no_cache)
            if fail_on is not None:
                from truthplane.models import Severity

                policy = config.gate.model_copy(update={"fail_on": Severity(fail_on)})
                config = config.model_copy(update={"gate": policy})
            with render.Progress() as progress:
                # what is only counted need not be decoded: the unchanged findings, unless an output lists them
                counted = fmt in COUNTING_FORMATS and sarif_out is None and review is None
                result = run_gate(path, config, options, base_ref=base, head_ref=head, progress=progress, plans=plans,
                                  deepen=None if no_fetch else _say, carry=counted)
    except TruthplaneError as exc:
        # a CI job uploads these files whatever the gate said (`if: always()`): a missing file fails it twice
        from truthplane.cli import render

        reason = str(exc)
        try:
            _ci_files(sarif_out, summary_out, lambda: render.unverified_sarif(reason),
                      lambda: render.unverified_markdown(reason, base, head))
        except TruthplaneError as write_error:  # the gate's own error is the one to report
            sys.stderr.write(f"truthplane: could not write the CI files: {render.printable(str(write_error))}\n")
        raise
    _ci_files(sarif_out, summary_out, lambda: render.gate_sarif(result), lambda: render.gate_markdown(result))
    code = emit_gate(result, fmt, output, config.gate)
    if review is not None:
        post_review(result, review, (path, config) if suggest else None)
    return code


def post_review(result, target: str, suggest=None) -> None:  # noqa: ANN001
    """`suggest`: (the repository, its configuration) to fix introduced findings in, for suggestions."""
    from truthplane.cli.render import printable
    from truthplane.review._rest import ReviewError
    from truthplane.review.github import GitHub, from_actions
    from truthplane.review.gitlab import GitLab, from_gitlab_ci

    try:
        client: GitHub | GitLab = GitLab(from_gitlab_ci()) if target == "gitlab" else GitHub(from_actions())
        try:
            found: dict = {}
            lines = None
            if suggest is not None:
                from truthplane.review.suggest import suggestions

                lines = client.diff_lines()
                found = suggestions(suggest[0].resolve(), result, suggest[1], lines)
                sys.stderr.write(f"truthplane: {len(found)} approved fix(es) offered as suggestions\n")
            plan, url = client.post(result, found, lines)
        finally:
            client.close()
    except ReviewError as exc:
        _not_posted(str(exc))
        return
    except Exception as exc:  # noqa: BLE001 -- whatever went wrong, a failed post never changes the gate's exit code
        _not_posted(f"unexpected {type(exc).__name__}: {exc}")
        return
    sys.stderr.write(printable(f"truthplane: review posted{': ' + url if url else ''} ({plan.summary()})") + "\n")


def _not_posted(why: str) -> None:
    from truthplane.cli.render import printable

    sys.stderr.write(printable(f"truthplane: the review was not posted: {why} (the gate's verdict and exit code are "
                               "unchanged)") + "\n")


def _say(note: str) -> None:
    from truthplane.cli.render import printable

    sys.stderr.write(f"truthplane: {printable(note)}\n")


def _ci_files(
    sarif_out: Path | None, summary_out: Path | None, sarif: Callable[[], str], summary: Callable[[], str]
) -> None:
    """Write the files CI asked for; each document is made only when its file was asked for."""
    from truthplane.cli import render

    if sarif_out is not None:
        render.write_document(sarif_out, sarif())
    if summary_out is not None:
        # $GITHUB_STEP_SUMMARY may already hold other steps' summaries: add to it
        render.write_document(summary_out, summary(), append=True)


def register(app: Any) -> None:
    """Add `gate` to `app` (a typer.Typer): the options, their help and their checks, for judge()."""
    import typer

    from truthplane.cli._common import CACHE_DIR, CONFIG, FORMAT, NO_CACHE, OUTPUT, VERIFIER

    def gate(
        path: Path = typer.Argument(Path("."), help="Repository to gate.", file_okay=False),
        base: str = typer.Option(_DEFAULT_BASE, "--base", help="The branch the change goes into."),
        head: str = typer.Option(
            None, "--head", help="Commit to judge (default: the working tree, uncommitted changes included)."
        ),
        verifier: list[str] = VERIFIER,
        fmt: Format = FORMAT,
        output: Path = OUTPUT,
        sarif_out: Path = typer.Option(
            None, "--sarif-out", help="Also write SARIF with baselineState (code scanning upload).", dir_okay=False
        ),
        summary_out: Path = typer.Option(
            None, "--summary-out", help="Also write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY).", dir_okay=False
        ),
        config_path: Path = CONFIG,
        cache_dir: Path = CACHE_DIR,
        no_cache: bool = NO_CACHE,
        no_fetch: bool = typer.Option(
            False, "--no-fetch", help="In a shallow clone, do not fetch the base or more history."
        ),
        suggest: bool = typer.Option(
            False, "--suggest", help="With --review: run the fix loop on each introduced finding on the diff, and "
            "offer an approved fix as a one-click suggestion."
        ),
        fail_on: str = typer.Option(
            None, "--fail-on", help="A new finding at or above this severity rejects the change (overrides [gate] "
            "fail_on)."
        ),
        review: str = typer.Option(
            None, "--review", help="Also post the result as a review: github (a pull request review, from a GitHub "
            "Actions pull_request job) or gitlab (merge request discussions, from a merge request pipeline). A "
            "failed post never changes the exit code."
        ),
    ) -> int:
        """Judge what a change really changes: the merge-base of HEAD and --base against HEAD."""
        return judge(path, base, head, verifier, fmt, output, sarif_out, summary_out, config_path, cache_dir,
                     no_cache, no_fetch, suggest, fail_on, review)

    app.command()(gate)
