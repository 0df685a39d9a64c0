"""`truthplane sandbox build`: the sandbox images executors run jobs in."""

from __future__ import annotations

import sys

import typer

sandbox_app = typer.Typer(help="Build the sandbox images executors run jobs in.", no_args_is_help=True)


@sandbox_app.command("build")
def sandbox_build(
    executor: str = typer.Option("docker", "--executor", "-e", help="Which executor's image to build."),
    source: str = typer.Option(
        "rootfs", "--from", help="rootfs (debootstrap + docker import; no registry needed) or dockerfile."
    ),
    data_science: bool = typer.Option(False, "--data-science", help="Add pandas, numpy, scipy and scikit-learn."),
    tag: str = typer.Option(None, "--tag", help="Image name (default truthplane-sandbox:latest)."),
) -> int:
    """Build (or rebuild from the cached rootfs) the sandbox image."""
    from truthplane.executors.sandbox import BuildRequest, build

    summary = build(BuildRequest(executor=executor, source=source, data_science=data_science, tag=tag))
    sys.stdout.write(summary + "\n")
    return 0


def register(app: typer.Typer) -> None:
    app.add_typer(sandbox_app, name="sandbox")
