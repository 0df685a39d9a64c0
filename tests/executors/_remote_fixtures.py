"""Real remote components for the lambda and ssh tests and the benchmark, as plain context managers.

- `lambda_emulator()`: the AWS Lambda Runtime Interface Emulator from the aws-sam-cli wheel, running
  awslambdaric with truthplane's handler on a free 127.0.0.1 port.
- `sshd_node()`: a real OpenSSH sshd (run as root) on a free 127.0.0.1 port with its own host key,
  config and authorized key; `kill()` takes it and every session it forked down, like a dead machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SSHD = "/usr/sbin/sshd"
START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT_S} s")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def processes(*words: str) -> list[int]:
    """Live processes on this machine (test nodes are this machine) whose command line holds every word."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and all(any(word.encode() in arg for arg in argv) for word in words):
            found.append(int(entry))
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL a process and everything it started (collected first, so none is reparented away)."""
    for pid in [proc.pid, *descendants(proc.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


# ---- the Lambda Runtime Interface Emulator ----------------------------------------------------


def rie_binary() -> Path | None:
    try:
        import samcli
    except ImportError:
        return None
    path = Path(samcli.__file__).parent / "local" / "rapid" / "aws-lambda-rie-x86_64"
    return path if path.is_file() else None


def emulator_present() -> bool:
    try:
        import awslambdaric  # noqa: F401
    except ImportError:
        return False
    return rie_binary() is not None


@dataclass
class Emulator:
    endpoint_url: str
    proc: subprocess.Popen

    def options(self, **extra: object) -> dict[str, object]:
        """LambdaExecutor options that reach this emulator with dummy credentials."""
        return {
            "function_name": "function", "endpoint_url": self.endpoint_url, "region": "us-east-1",
            "aws_access_key_id": "test", "aws_secret_access_key": "test", **extra,
        }


@contextmanager
def lambda_emulator(function_timeout_s: int = 10, memory_mb: int = 1024) -> Iterator[Emulator]:
    binary = rie_binary()
    if binary is None:
        raise RuntimeError("aws-sam-cli is not installed: pip install aws-sam-cli awslambdaric")
    port, runtime_port = free_port(), free_port()
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONPATH": str(REPO_ROOT),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(function_timeout_s),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        # a function's role credentials live in its environment: the tests check they never reach a job
        "AWS_ACCESS_KEY_ID": "AKIAFUNCTIONROLE", "AWS_SECRET_ACCESS_KEY": "function-role-secret",
    }
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [str(binary), "--log-level", "error",
             "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
             "--runtime-api-address", f"127.0.0.1:{runtime_port}",
             sys.executable, "-m", "awslambdaric", "truthplane.executors.lambda_handler.handler"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            _wait_for_port(port, proc, "the Lambda emulator")
            yield Emulator(f"http://127.0.0.1:{port}", proc)
        finally:
            kill_tree(proc)


# ---- OpenSSH sshd -----------------------------------------------------------------------------


def sshd_present() -> bool:
    return os.path.isfile(SSHD) and os.geteuid() == 0 and shutil.which("ssh-keygen") is not None


def client_key(directory: Path) -> Path:
    """An ed25519 key pair for the client: directory/id_ed25519 (+ .pub)."""
    key = directory / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


@dataclass
class SSHNode:
    name: str
    port: int
    host_key_line: str
    cache_dir: Path
    proc: subprocess.Popen
    extra: dict[str, object] = field(default_factory=dict)

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key_line}\n"

    def node_options(self, key: Path, known_hosts: Path | None, slots: int = 2) -> dict[str, object]:
        # the node is this machine: its worker runs this Python, importing the truthplane under test
        options: dict[str, object] = {
            "name": self.name, "host": "127.0.0.1", "port": self.port, "user": "root", "key": str(key),
            "slots": slots, "cache_dir": str(self.cache_dir), "python": sys.executable,
            "env": {"PYTHONPATH": str(REPO_ROOT)},
        }
        if known_hosts is not None:
            options["known_hosts"] = str(known_hosts)
        return options

    def kill(self) -> None:
        """The machine dies: the listener and every connection and session it forked."""
        kill_tree(self.proc)


@contextmanager
def sshd_node(directory: Path, authorized_key: Path, name: str = "node", extra_config: str = "") -> Iterator[SSHNode]:
    """A real sshd on 127.0.0.1 accepting root with `authorized_key` (a .pub file); `extra_config`
    lines are added to its sshd_config."""
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # the privilege separation directory
    home = directory / name
    home.mkdir(parents=True, exist_ok=True)
    host_key = home / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    authorized = home / "authorized_keys"
    shutil.copyfile(authorized_key, authorized)
    port = free_port()
    config = home / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {home / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {authorized}\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nMaxSessions 64\nMaxStartups 64\n"
        "Subsystem sftp internal-sftp\n" + extra_config,
        encoding="utf-8",
    )
    with open(home / "sshd.log", "wb") as log:
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            _wait_for_port(port, proc, f"sshd {name}")
            key_type, key_data = (host_key.with_suffix(".pub")).read_text(encoding="utf-8").split()[:2]
            yield SSHNode(name, port, f"{key_type} {key_data}", home / "cache", proc)
        finally:
            if proc.poll() is None:
                kill_tree(proc)


@contextmanager
def ssh_cluster(count: int = 1, slots: int = 2, path: str | None = None) -> Iterator[dict[str, object]]:
    """`count` sshd nodes in a temporary directory; yields SSHExecutor options that reach them."""
    with tempfile.TemporaryDirectory(prefix="truthplane-sshd-") as tmp, ExitStack() as stack:
        directory = Path(tmp)
        key = client_key(directory)
        known_hosts = directory / "known_hosts"
        nodes = [stack.enter_context(sshd_node(directory, key.with_suffix(".pub"), f"node{n}")) for n in range(count)]
        known_hosts.write_text("".join(node.known_hosts_line() for node in nodes), encoding="utf-8")
        options = [node.node_options(key, known_hosts, slots) for node in nodes]
        if path is not None:
            for entry in options:
                entry["path"] = path
        yield {"nodes": options}


# ---- a team's own Dask cluster ------------------------------------------------------------------


@dataclass
class DaskCluster:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen]
    logs: Path
    tls: dict[str, str] = field(default_factory=dict)  # [cluster] tls_ca_file, tls_cert, tls_key for a client

    def kill_scheduler(self) -> None:
        kill_tree(self.scheduler)


def _dask(module: str, args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    with open(log, "wb") as handle:
        return subprocess.Popen([sys.executable, "-m", f"distributed.cli.{module}", *args], env=env, stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _wait_for_line(log: Path, proc: subprocess.Popen, marker: str, what: str) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if marker in line:
                return line.split(marker, 1)[1].strip()
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text(errors='replace')[-500:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start within {START_TIMEOUT_S} s: {log.read_text(errors='replace')[-500:]}")


@contextmanager
def dask_cluster(directory: Path, workers: int = 2, threads: int = 1, nanny: bool = False,
                 tls: bool = False) -> Iterator[DaskCluster]:
    """`dask scheduler` and `dask worker` processes on 127.0.0.1, as a team runs its own cluster (plain tcp, or
    TLS with a certificate made here; no dashboard); every one of them killed at the end."""
    directory.mkdir(parents=True, exist_ok=True)
    credentials: list[str] = []
    files: dict[str, str] = {}
    if tls:
        from distributed import Security

        made = Security.temporary()
        (directory / "cert.pem").write_text(made.tls_ca_file)
        (directory / "key.pem").write_text(made.tls_scheduler_key)
        cert, key = str(directory / "cert.pem"), str(directory / "key.pem")
        credentials = ["--tls-ca-file", cert, "--tls-cert", cert, "--tls-key", key]
        files = {"tls_ca_file": cert, "tls_cert": cert, "tls_key": key}
    scheduler = _dask("dask_scheduler", ["--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                         "--dashboard-address", "127.0.0.1:0", *(["--protocol", "tls"] if tls else []),
                                         *credentials],
                      directory / "scheduler.log")
    started = [scheduler]
    try:
        address = _wait_for_line(directory / "scheduler.log", scheduler, "Scheduler at:", "dask scheduler")
        for n in range(workers):
            log = directory / f"worker-{n + 1}.log"
            proc = _dask("dask_worker", [address, "--nthreads", str(threads), "--name", f"team-{n + 1}", "--host",
                                         "127.0.0.1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                                         "--nanny" if nanny else "--no-nanny", *credentials,
                                         "--local-directory", str(directory / f"worker-{n + 1}")], log)
            started.append(proc)
            _wait_for_line(log, proc, "Start worker at:", f"dask worker {n + 1}")
        yield DaskCluster(address, scheduler, started[1:], directory, files)
    finally:
        for proc in started:
            if proc.poll() is None:
                kill_tree(proc)
