"""Hostile jobs, each run on local-bwrap and on docker: each must be contained, reported, and leave
the host as it was (no files written, no secret read, no process or container left behind)."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing
from tests.executors.conftest import run_job
from truthplane.executors.interface import TRUNCATION_MARKER
from truthplane.executors.jobs import Job, JobResult, Limits


@pytest.fixture
def token() -> str:
    return f"tp-hostile-{uuid.uuid4().hex[:10]}"


def _processes_with(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def _containers_labelled(token: str) -> list[str]:
    import docker

    client = docker.from_env()
    try:
        return [c.id for c in client.containers.list(all=True, filters={"label": f"truthplane.job={token}"})]
    finally:
        client.close()


def hostile(sandbox: Any, token: str, code: str, files: dict[str, bytes] | None = None,
            source_dir: str | None = None, **limits: Any) -> JobResult:
    """Run python CODE (argv carries the token, so leftovers can be found) and check nothing outlives it."""
    job = Job(
        command=["python", "-c", code, token], files=files or {}, source_dir=source_dir,
        limits=Limits(**{"timeout_s": 20, **limits}), label=token,
    )
    result = run_job(sandbox, job)
    assert _processes_with(token) == [], "a process of the job outlived it"
    if sandbox.name == "docker":
        assert _containers_labelled(token) == [], "the job's container was not removed"
    assert result.sandboxed
    return result


@pytest.fixture
def tcp_server() -> Iterator[tuple[int, list[Any]]]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    accepted: list[Any] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, addr = server.accept()
            except (TimeoutError, OSError):
                continue
            accepted.append(addr)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    server.close()


def test_network_egress_is_blocked(sandbox: Any, token: str, tcp_server: tuple[int, list[Any]]) -> None:
    port, accepted = tcp_server
    code = (
        "import socket\n"
        f"for host in ('127.0.0.1', 'deb.debian.org'):\n"
        "    try:\n"
        f"        socket.create_connection((host, {port} if host == '127.0.0.1' else 80), timeout=3).close()\n"
        "        print('connected', host)\n"
        "    except OSError as exc:\n"
        "        print('blocked', host, type(exc).__name__)\n"
    )
    result = hostile(sandbox, token, code)
    assert "connected" not in result.stdout
    assert result.stdout.count("blocked") == 2, result.stderr
    assert accepted == []


def test_name_resolution_fails_without_network(sandbox: Any, token: str) -> None:
    result = hostile(
        sandbox,
        token,
        "import socket\ntry:\n socket.getaddrinfo('deb.debian.org', 80); print('resolved')\n"
        "except OSError: print('no network')\n",
    )
    assert result.stdout == "no network\n"


def test_writes_outside_the_workspace_fail_and_the_host_is_unchanged(sandbox: Any, token: str, tmp_path: Path) -> None:
    targets = [f"/etc/{token}", f"/usr/local/{token}", str(tmp_path / token), str(Path.home() / token), f"/{token}"]
    code = (
        "import sys\n"
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        open(path, 'w').write('pwned')\n"
        "        print('wrote', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', path, exc.strerror)\n"
        "open('inside.txt', 'w').write('fine')\n"
        "print('workspace ok')\n"
    )
    result = hostile(sandbox, token, code)
    assert "workspace ok" in result.stdout, result.stderr
    for path in targets:
        assert not os.path.exists(path), f"{path} appeared on the host"
    # /tmp and the home directory are private scratch space: a write there may succeed, but only inside
    for system_path in targets[:2] + targets[-1:]:
        assert f"refused {system_path}" in result.stdout


def test_host_home_and_environment_are_invisible(sandbox: Any, token: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    planted = Path.home() / f".{token}-credentials"
    planted.write_text(secret)
    monkeypatch.setenv("TRUTHPLANE_TEST_API_KEY", secret)
    try:
        code = (
            "import os, glob\n"
            f"try: print(open({str(planted)!r}).read())\n"
            "except OSError as exc: print('no file', exc.strerror)\n"
            "print(sorted(os.environ.items()))\n"
            "print(glob.glob(os.path.expanduser('~') + '/.*'), glob.glob('/root/.*'), glob.glob('/home/*/.*'))\n"
        )
        result = hostile(sandbox, token, code)
    finally:
        planted.unlink()
    assert result.returncode == 0, result.stderr
    assert secret not in result.stdout + result.stderr
    assert "TRUTHPLANE_TEST_API_KEY" not in result.stdout


def test_fork_bomb_hits_the_pids_cap(sandbox: Any, token: str) -> None:
    code = (
        "import os, sys, time\n"
        "children = 0\n"
        "try:\n"
        "    while children < 5000:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60); os._exit(0)\n"
        "        children += 1\n"
        "except OSError as exc:\n"
        "    print('fork refused after', children, exc.strerror, flush=True)\n"
    )
    result = hostile(sandbox, token, code, pids=48)
    assert "fork refused after" in result.stdout, result.stdout + result.stderr
    assert int(result.stdout.split()[3]) < 48


def test_memory_bomb_is_oom_killed(sandbox: Any, token: str) -> None:
    code = "hog = []\nwhile True:\n    hog.append(bytearray(16 * 1024 * 1024))\n"
    result = hostile(sandbox, token, code, memory_mb=128)
    assert result.oom_killed and not result.ok
    assert any("memory" in note for note in result.notes)


def test_infinite_loop_times_out(sandbox: Any, token: str) -> None:
    result = hostile(sandbox, token, "print('spinning', flush=True)\nwhile True: pass\n", timeout_s=2)
    assert result.timed_out and not result.ok
    assert result.stdout == "spinning\n"


def test_ignoring_sigterm_still_dies(sandbox: Any, token: str) -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ignoring SIGTERM', flush=True)\n"
        "while True: time.sleep(0.1)\n"
    )
    result = hostile(sandbox, token, code, timeout_s=2)
    assert result.timed_out and result.stdout == "ignoring SIGTERM\n"


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/self/status")


def test_one_gigabyte_flood_is_truncated_in_bounded_memory(sandbox: Any, token: str) -> None:
    code = ("import sys\nblock = b'A' * (1 << 20)\nfor _ in range(1024): sys.stdout.buffer.write(block)\nprint('done', "
            "file=sys.stderr)\n")
    if not _reset_peak_rss():
        missing("the peak RSS counter cannot be reset here (/proc/self/clear_refs)")
    before = _peak_rss_mb()
    result = hostile(sandbox, token, code, max_output_bytes=65536, timeout_s=120)
    grown = _peak_rss_mb() - before
    assert result.returncode == 0 and not result.timed_out
    assert result.stdout_truncated and not result.stderr_truncated
    assert result.stdout.startswith("A" * 65536)
    assert result.stdout.endswith(TRUNCATION_MARKER.format(dropped=(1 << 30) - 65536))
    assert result.stderr == "done\n"
    assert grown < 200, f"the test process grew by {grown:.0f} MB while reading the flood"


def test_symlink_out_of_the_source_tree_does_not_reach_host_content(sandbox: Any, token: str, tmp_path: Path) -> None:
    secret = f"secret-{uuid.uuid4().hex}"
    in_home = Path.home() / f".{token}-key"
    in_tmp = tmp_path / "key"
    source = tmp_path / "repo"
    source.mkdir()
    (source / "main.py").write_text("print('repo code')\n")
    os.symlink(in_home, source / "home-link")
    os.symlink(in_tmp, source / "tmp-link")
    os.symlink(Path.home(), source / "home-dir")
    in_home.write_text(secret)
    in_tmp.write_text(secret)
    try:
        code = (
            "import os, runpy\n"
            "runpy.run_path('main.py')\n"
            "for name in ('home-link', 'tmp-link'):\n"
            "    print(name, 'link' if os.path.islink(name) else 'not a link')\n"
            "    try: print(open(name).read())\n"
            "    except OSError as exc: print('unreadable', exc.strerror)\n"
            "try: print(os.listdir('home-dir'))\n"
            "except OSError as exc: print('unreadable', exc.strerror)\n"
        )
        result = hostile(sandbox, token, code, source_dir=str(source))
    finally:
        in_home.unlink()
    assert "repo code" in result.stdout, result.stderr
    assert "home-link link" in result.stdout and "tmp-link link" in result.stdout
    assert secret not in result.stdout + result.stderr
    assert in_home.name not in result.stdout
