"""Which Python a repository's tests and reproductions run with: the repository's own, never truthplane's.

Order: the repository's `.venv` or `venv`; else the first python3 on the PATH truthplane was started with,
leaving out truthplane's own virtualenv and any directory inside the repository; else truthplane's own
interpreter, and the result says so. The repository's virtualenv is read (pyvenv.cfg), never run on the
host: a hostile repository can commit one. Its jobs run it inside the sandbox.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from truthplane.executors.interface import Executor
from truthplane.executors.jobs import Interpreter, Job, Limits

VENV_DIRS = (".venv", "venv")
_ASK = "import json, sys; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix]))"


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _base_prefix(home: str) -> str | None:
    """The installation a virtualenv's `home` (its base interpreter's bin dir) belongs to, if it is one."""
    bin_dir = Path(os.path.realpath(home))
    prefix = bin_dir.parent
    has_python = any(p.name.startswith("python3") for p in bin_dir.glob("python3*"))
    has_stdlib = any(prefix.glob("lib*/python3*/os.py"))
    return str(prefix) if has_python and has_stdlib else None


def _repository_venv(root: Path) -> Interpreter | None:
    for name in VENV_DIRS:
        venv = Path(os.path.realpath(root)) / name  # as the sandbox mounts it
        config = venv / "pyvenv.cfg"
        python = venv / "bin" / "python"
        if venv.is_symlink() or not config.is_file() or not (python.exists() or (venv / "bin" / "python3").exists()):
            continue
        if not python.exists():
            python = venv / "bin" / "python3"
        settings = {}
        for line in config.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
        base = _base_prefix(settings.get("home", ""))
        if base is None:
            continue  # not a usable virtualenv (its base python is gone): fall back to PATH
        return Interpreter(executable=str(python), origin=f"the repository's {name}", prefixes=[str(venv), base])
    return None


def _own_bin_dirs() -> set[str]:
    """truthplane's own virtualenv, if it runs in one."""
    if sys.prefix == sys.base_prefix:
        return set()
    return {os.path.realpath(os.path.join(sys.prefix, "bin"))}


@cache
def _ask(python: str) -> tuple[str, str, str] | None:
    try:
        # -I: as in a job, whose environment has no PYTHONHOME or PYTHONPATH
        proc = subprocess.run(
            [python, "-I", "-c", _ASK], capture_output=True, text=True, timeout=20, cwd="/", check=False
        )
        executable, prefix, base = json.loads(proc.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError, TypeError):
        return None
    return str(executable), str(prefix), str(base)


def _from_path(root: Path, path: str) -> Interpreter | None:
    own = _own_bin_dirs()
    repo = os.path.realpath(root)
    dirs = [d for d in path.split(os.pathsep)
            if os.path.isabs(d) and os.path.realpath(d) not in own and not _inside(os.path.realpath(d), repo)]
    for name in ("python3", "python"):
        found = shutil.which(name, path=os.pathsep.join(dirs))
        answer = _ask(found) if found else None
        if answer is not None:
            executable, prefix, base = answer
            if os.path.realpath(os.path.join(prefix, "bin")) in own:
                continue  # a shim that lands in truthplane's own virtualenv
            return Interpreter(executable=executable, origin="the PATH truthplane was started with",
                               prefixes=sorted({prefix, base}))
    return None


def repository_interpreter(root: Path, path: str | None = None) -> Interpreter:
    """The Python that `python` means in the repository's test and reproduction jobs."""
    found = _repository_venv(root) or _from_path(root, os.environ.get("PATH", "") if path is None else path)
    if found is not None:
        return found
    return Interpreter(executable=sys.executable, origin="truthplane's own (no other python found)",
                       prefixes=sorted({sys.prefix, sys.base_prefix}))


def repository_job(command: str, directory: Path, origin: Path, *, files: dict[str, bytes] | None = None,
                   timeout_s: float = 60.0, label: str = "") -> Job:
    """A test or reproduction command on a snapshot of `origin`, with the repository's interpreter."""
    return Job(command=["sh", "-c", command], source_dir=str(directory), files=files or {}, origin=str(origin),
               interpreter=repository_interpreter(origin), limits=Limits(timeout_s=timeout_s),
               label=label or command[:60])


def describe_interpreter(executor: Executor, root: Path) -> str:
    """Which Python the repository's test and reproduction jobs get on `executor`, for the record."""
    if executor.runs_host_interpreter:
        python = repository_interpreter(root)
        return f"{python.executable} ({python.origin})"
    return f"python3 of the {executor.name} sandbox"
