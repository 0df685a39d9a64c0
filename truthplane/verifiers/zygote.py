"""Python analysers started from a warm copy, in processes that live long (`truthplane mcp`).

bandit spends 0.15 s of its 0.17 s on one file starting Python and importing itself. A process that gates again
and again (an agent's MCP server) keeps, per analyser, a zygote: the analyser's own interpreter, started with its
environment, that has imported the analyser's entry point and forks a child for each run. The child is the run a
fresh process would be: the analyser's console script's own entry point (`from M import f; sys.exit(f())`), called
with the same arguments, in the same directory, with the same environment, stdout and stderr pipes of its own, in
a session of its own (so a timeout kills it with whatever it started); only the interpreter's start and the imports
are done once. A verifier opts in (`FileToolVerifier.warm_start`), and only a console script in the exact form pip
writes qualifies; anything else, or a zygote that is not ready, starts the plain way.

The first run of an analyser starts the plain way while its zygote starts beside it. A zygote ends when the process
that made it closes its end of their socket (that process exiting included).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from truthplane.verifiers._commands import tool_identity

MAX_ZYGOTES = 8
_SCRIPT = re.compile(
    r"#!(?P<python>/\S+)\n"
    r"# -\*- coding: utf-8 -\*-\n"
    r"import re\n"
    r"import sys\n"
    r"from (?P<module>[A-Za-z_][\w.]*) import (?P<function>[A-Za-z_]\w*)\n"
    r"if __name__ == '__main__':\n"
    r"    sys\.argv\[0\] = re\.sub\(r'\(-script\\\.pyw\|\\\.exe\)\?\$', '', sys\.argv\[0\]\)\n"
    r"    sys\.exit\((?P=function)\(\)\)\n?\Z"
)

# Runs in the analyser's interpreter: argv = script, module, function, the control socket's descriptor.
# Each request on the control socket: JSON {argv, cwd} with four descriptors (stdin, stdout, stderr, a socket for
# the answers: the child's pid, then its wait status).
_ZYGOTE = r"""
import json, os, re, select, socket, sys, traceback
script, module, function, control_fd = sys.argv[1:5]
sys.argv = [script]
sys.path[0] = os.path.dirname(os.path.realpath(script))  # as Python sets it for a script
control = socket.socket(fileno=int(control_fd))
import importlib
entry = getattr(importlib.import_module(module), function)
if not (hasattr(os, "pidfd_open") and hasattr(socket, "recv_fds")):
    sys.exit(1)  # Linux and Python 3.9+ only: never ready, so every run starts the plain way
control.send(b"ready")
children = {}  # pidfd -> (pid, answer socket)
poller = select.poll()
poller.register(control.fileno(), select.POLLIN)

def run(request, descriptors, mine):
    os.setsid()
    for fd, target in zip(descriptors[:3], (0, 1, 2)):
        os.dup2(fd, target)
    control.detach()  # the zygote's sockets are closed below, by number: their objects must not close them again
    mine.detach()
    for _, answers in children.values():
        answers.detach()
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 65536)
    os.chdir(request["cwd"])
    sys.argv = list(request["argv"])
    sys.argv[0] = re.sub(r'(-script\.pyw|\.exe)?$', '', sys.argv[0])
    sys.exit(entry())

while True:
    for fd, _ in poller.poll():
        if fd == control.fileno():
            try:
                message, descriptors, _, _ = socket.recv_fds(control, 1 << 20, 4)
            except OSError:
                message = b""
            if not message:
                os._exit(0)  # truthplane is gone
            request = json.loads(message)
            answers = socket.socket(fileno=descriptors[3])
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                try:
                    run(request, descriptors, answers)
                except SystemExit:
                    raise
                except BaseException:
                    traceback.print_exc()
                    sys.exit(1)
            for descriptor in descriptors[:3]:
                os.close(descriptor)
            pidfd = os.pidfd_open(pid)
            children[pidfd] = (pid, answers)
            poller.register(pidfd, select.POLLIN)
            try:
                answers.send(str(pid).encode())
            except OSError:
                pass
        else:
            pid, answers = children.pop(fd)
            poller.unregister(fd)
            _, status = os.waitpid(pid, 0)
            os.close(fd)
            try:
                answers.send(str(status).encode())
            except OSError:
                pass
            answers.close()
"""

_enabled = False
_lock = threading.Lock()
_zygotes: dict[tuple[Any, ...], _Zygote | None] = {}  # None: this analyser cannot be started warm


def enable() -> None:
    """This process lives long and runs analysers again and again: start the ones that opt in from a zygote."""
    global _enabled
    _enabled = True


def console_script(program: str) -> tuple[str, str, str] | None:
    """(interpreter, module, function) of a console script in the form pip writes, else None."""
    try:
        with open(program, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None
    match = _SCRIPT.match(text)
    if match is None or not os.access(match["python"], os.X_OK):
        return None
    return match["python"], match["module"], match["function"]


def start(program: str, argv: list[str], cwd: Path, env: dict[str, str]) -> Forked | None:
    """`program` run from its zygote, if it has a ready one; else None (and its zygote is started for the next
    run). Only with `enable()`d."""
    if not _enabled:
        return None
    identity = tool_identity(program)
    if identity is None:
        return None
    key = (identity, tuple(sorted(env.items())))
    with _lock:
        if key not in _zygotes:
            found = console_script(program)
            if found is None or len(_zygotes) >= MAX_ZYGOTES:
                _zygotes[key] = None
                return None
            _zygotes[key] = _Zygote(program, *found, env)
            return None  # this run starts the plain way while the zygote imports
        zygote = _zygotes[key]
    if zygote is None or not zygote.ready():
        return None
    try:
        return zygote.run(argv, cwd)
    except OSError:
        with _lock:
            _zygotes[key] = None  # it went away: the plain way from now on
        zygote.close()
        return None


def close_all() -> None:
    with _lock:
        made = [z for z in _zygotes.values() if z is not None]
        _zygotes.clear()
    for zygote in made:
        zygote.close()


class _Zygote:
    def __init__(self, script: str, python: str, module: str, function: str, env: dict[str, str]) -> None:
        self.control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._send = threading.Lock()
        self._ready = threading.Event()
        self._failed = False
        try:
            self.proc = subprocess.Popen(
                [python, "-c", _ZYGOTE, script, module, function, str(theirs.fileno())], pass_fds=[theirs.fileno()],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            self._failed = True
            self.control.close()
            return
        finally:
            theirs.close()
        threading.Thread(target=self._wait_ready, name="zygote-ready", daemon=True).start()

    def _wait_ready(self) -> None:
        try:
            self._failed = self.control.recv(16) != b"ready"  # nothing: it could not import its entry point
        except OSError:
            self._failed = True
        self._ready.set()
        if self._failed:
            self.proc.wait()

    def ready(self) -> bool:
        return self._ready.is_set() and not self._failed

    def run(self, argv: list[str], cwd: Path) -> Forked:
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        devnull = os.open(os.devnull, os.O_RDONLY)
        answers, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            request = json.dumps({"argv": argv, "cwd": os.fspath(cwd)}).encode()
            with self._send:
                socket.send_fds(self.control, [request], [devnull, out_write, err_write, theirs.fileno()])
        except OSError:
            for fd in (out_read, err_read):
                os.close(fd)
            answers.close()
            raise
        finally:
            for fd in (out_write, err_write, devnull):
                os.close(fd)
            theirs.close()
        answers.settimeout(30)
        try:
            pid = int(answers.recv(32) or b"x")
        except (OSError, ValueError):
            for fd in (out_read, err_read):
                os.close(fd)
            answers.close()
            raise OSError("the zygote did not start the run") from None
        return Forked(pid, argv, out_read, err_read, answers)

    def close(self) -> None:
        if self._failed and not hasattr(self, "proc"):
            return
        self.control.close()  # the zygote reads the end of its socket and exits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Forked:
    """A run forked by a zygote, as much of subprocess.Popen as run_tool and started.stop use."""

    def __init__(self, pid: int, argv: list[str], out: int, err: int, answers: socket.socket) -> None:
        self.pid = pid
        self.args = argv
        self.returncode: int | None = None
        self._answers = answers
        self._selector = selectors.DefaultSelector()
        self._chunks: dict[int, list[bytes]] = {out: [], err: []}
        self._order = (out, err)
        for fd in (out, err):
            os.set_blocking(fd, False)
            self._selector.register(fd, selectors.EVENT_READ)

    def communicate(self, input: str | None = None, timeout: float | None = None) -> tuple[str, str]:  # noqa: A002
        """Both outputs to their end and the exit status, as text the way Popen(text=True) gives it."""
        if input:
            raise ValueError("a run forked by a zygote reads no input")
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._selector.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            for key, _ in self._selector.select(left):
                fd = key.fd
                data = os.read(fd, 1 << 16)
                if data:
                    self._chunks[fd].append(data)
                else:
                    self._selector.unregister(fd)
                    os.close(fd)
        if self.returncode is None:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._answers.settimeout(left)
            try:
                status = self._answers.recv(32)
            except TimeoutError:
                raise subprocess.TimeoutExpired(self.args, timeout or 0) from None
            self._answers.close()
            self._selector.close()
            # no status: the zygote went away before reaping the run (the run was killed with it)
            self.returncode = os.waitstatus_to_exitcode(int(status)) if status else -9
        out, err = (b"".join(self._chunks[fd]).decode("utf-8", "replace") for fd in self._order)
        return _newlines(out), _newlines(err)

    def wait(self, timeout: float | None = None) -> int:
        self.communicate(timeout=timeout)
        assert self.returncode is not None
        return self.returncode

    def poll(self) -> int | None:
        return self.returncode


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")  # as subprocess.Popen(text=True) translates them
