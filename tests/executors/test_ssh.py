"""SSHExecutor against real OpenSSH sshd instances on 127.0.0.1 ports, one per node."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import register_probe
from tests.executors._remote_fixtures import SSHNode, client_key, free_port, sshd_node, sshd_present
from truthplane.errors import ConfigError, ExecutorError
from truthplane.executors.interface import TRUNCATION_MARKER
from truthplane.executors.ssh import SSHExecutor
from truthplane.executors.jobs import Job, JobResult, Limits

register_probe("sshd", sshd_present)

pytestmark = pytest.mark.tool("sshd")


class Cluster:
    def __init__(self, tmp_path: Path, stack: ExitStack) -> None:
        self.tmp_path = tmp_path
        self.stack = stack
        self.key = client_key(tmp_path)
        self.known_hosts = tmp_path / "known_hosts"
        self.known_hosts.write_text("")

    def start(self, name: str) -> SSHNode:
        node = self.stack.enter_context(sshd_node(self.tmp_path, self.key.with_suffix(".pub"), name))
        with self.known_hosts.open("a") as handle:
            handle.write(node.known_hosts_line())
        return node

    def options(self, *nodes: SSHNode, slots: int = 2, **extra: object) -> dict[str, object]:
        return {"nodes": [n.node_options(self.key, self.known_hosts, slots) for n in nodes], **extra}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with ExitStack() as stack:
        yield Cluster(tmp_path, stack)


def run_jobs(options: dict[str, object], jobs: list[Job], during: Callable[[], None] | None = None) -> list[JobResult]:
    async def go() -> list[JobResult]:
        async with SSHExecutor(options) as executor:
            task = asyncio.ensure_future(executor.run_many(jobs))
            if during is not None:
                await asyncio.to_thread(during)
            return await task

    return asyncio.run(go())


def run_one(options: dict[str, object], job: Job) -> JobResult:
    return run_jobs(options, [job])[0]


def test_prints_42(cluster: Cluster) -> None:
    node = cluster.start("a")
    result = run_one(cluster.options(node), Job(command=["python3", "-c", "print(6*7)"]))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "42\n"
    assert result.executor == "ssh" and result.node == "a" and result.attempts == 1
    assert result.sandboxed is False


def test_files_env_stdin_and_workdir(cluster: Cluster) -> None:
    node = cluster.start("a")
    job = Job(command=["sh", "-c", "cat note.txt; cat; env | sort"], files={"sub/note.txt": b"hello\n"},
              workdir="sub", env={"ASKED_FOR": "yes"}, stdin=b"from stdin\n")
    result = run_one(cluster.options(node), job)
    lines = result.stdout.splitlines()
    assert lines[:2] == ["hello", "from stdin"]
    variables = {line.split("=", 1)[0] for line in lines[2:]}
    assert "ASKED_FOR=yes" in lines
    assert variables <= {"ASKED_FOR", "HOME", "LANG", "PATH", "PWD", "PYTHONDONTWRITEBYTECODE", "SHLVL", "_"}


def test_node_path_option_sets_the_jobs_path(cluster: Cluster) -> None:
    node = cluster.start("a")
    options = cluster.options(node)
    options["nodes"][0]["path"] = "/usr/bin:/bin"
    result = run_one(options, Job(command=["sh", "-c", "echo $PATH"]))
    assert result.stdout == "/usr/bin:/bin\n"


def test_non_zero_exit(cluster: Cluster) -> None:
    node = cluster.start("a")
    result = run_one(cluster.options(node), Job(command=["sh", "-c", "echo oops >&2; exit 7"]))
    assert result.returncode == 7 and result.stderr == "oops\n" and not result.ok


def test_unknown_host_is_refused(cluster: Cluster) -> None:
    node = cluster.start("a")
    cluster.known_hosts.write_text("")
    with pytest.raises(ExecutorError, match=r"host key is not in .*known_hosts.*accept_unknown_hosts = true"):
        run_one(cluster.options(node), Job(command=["true"]))


def test_unknown_host_accepted_when_opted_in(cluster: Cluster) -> None:
    node = cluster.start("a")
    cluster.known_hosts.write_text("")
    result = run_one(cluster.options(node, accept_unknown_hosts=True), Job(command=["echo", "in"]))
    assert result.stdout == "in\n"
    assert any("host key was not verified" in note for note in result.notes)


def test_changed_host_key_is_refused_even_when_unknown_hosts_are_accepted(cluster: Cluster) -> None:
    node, other = cluster.start("a"), cluster.start("b")
    cluster.known_hosts.write_text(f"[127.0.0.1]:{node.port} {other.host_key_line}\n")
    with pytest.raises(ExecutorError, match="host key verification failed"):
        run_one(cluster.options(node, accept_unknown_hosts=True), Job(command=["true"]))


def test_snapshot_is_sent_once_per_node_and_each_job_gets_its_own_copy(cluster: Cluster, tmp_path: Path) -> None:
    node = cluster.start("a")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "value.txt").write_text("original\n")
    os.symlink("/etc/passwd", repo / "link")
    # every job changes its copy; none of the others (nor the cache) may see that
    job = Job(command=["sh", "-c", "cat value.txt; readlink link; echo changed > value.txt"], source_dir=str(repo))

    async def go() -> tuple[list[JobResult], dict[str, int], JobResult, dict[str, int]]:
        async with SSHExecutor(cluster.options(node, slots=2)) as executor:
            first = await executor.run_many([job, job, job])
            uploads = executor.uploads()
            (repo / "value.txt").write_text("edited\n")
            after_edit = await executor.run(job)
            return first, uploads, after_edit, executor.uploads()

    first, uploads, after_edit, uploads_after_edit = asyncio.run(go())
    assert [r.stdout for r in first] == ["original\n/etc/passwd\n"] * 3
    assert uploads == {"a": 1}
    assert after_edit.stdout == "edited\n/etc/passwd\n"
    assert uploads_after_edit == {"a": 2}
    cached = sorted(p.name for p in node.cache_dir.iterdir() if len(p.name) == 64)
    assert len(cached) == 2
    assert {(node.cache_dir / name / "value.txt").read_text() for name in cached} == {"original\n", "edited\n"}


def test_a_second_executor_reuses_the_cache_on_the_node(cluster: Cluster, tmp_path: Path) -> None:
    node = cluster.start("a")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "x.txt").write_text("x\n")
    job = Job(command=["cat", "x.txt"], source_dir=str(repo))

    async def once() -> tuple[str, dict[str, int]]:
        async with SSHExecutor(cluster.options(node)) as executor:
            result = await executor.run(job)
            return result.stdout, executor.uploads()

    assert asyncio.run(once()) == ("x\n", {"a": 1})
    assert asyncio.run(once()) == ("x\n", {"a": 0})


def test_timeout_kills_the_remote_process_group(cluster: Cluster) -> None:
    node = cluster.start("a")
    job = Job(command=["sh", "-c", "echo $$; sleep 60 & sleep 60"], limits=Limits(timeout_s=1))
    result = run_one(cluster.options(node), job)
    assert result.timed_out and result.returncode is None
    group = int(result.stdout.strip())
    # the node is this machine, so its processes are visible here; killed ones may linger as zombies
    deadline = time.monotonic() + 10
    while live_members(group):
        assert time.monotonic() < deadline, f"still running in the job's group: {live_members(group)}"
        time.sleep(0.05)


@pytest.mark.parametrize("how", ["cancelled", "disconnected"])
def test_a_job_whose_caller_goes_away_is_killed_on_the_node(cluster: Cluster, tmp_path: Path, how: str) -> None:
    node = cluster.start("a")
    group_file = tmp_path / "group"
    job = Job(command=["sh", "-c", 'echo $$ > "$OUT.tmp"; mv "$OUT.tmp" "$OUT"; sleep 60 & sleep 60'],
              env={"OUT": str(group_file)}, limits=Limits(timeout_s=120))

    async def go() -> None:
        executor = SSHExecutor(cluster.options(node))
        task = asyncio.ensure_future(executor.run(job))
        while not group_file.exists():
            await asyncio.sleep(0.05)
        if how == "cancelled":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # the connection stays up; the cancel travels over it
            assert await executor.run(Job(command=["echo", "still up"])) is not None
            await wait_until_gone(int(group_file.read_text()))
        await executor.close()
        if how == "disconnected":
            task.cancel()
        await wait_until_gone(int(group_file.read_text()))

    asyncio.run(go())


async def wait_until_gone(group: int) -> None:
    deadline = time.monotonic() + 20
    while live_members(group):
        assert time.monotonic() < deadline, f"still running on the node: {live_members(group)}"
        await asyncio.sleep(0.05)


def live_members(group: int) -> list[int]:
    members = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(entry))
    return members


def test_output_is_capped(cluster: Cluster) -> None:
    node = cluster.start("a")
    job = Job(command=["python3", "-c", "print('y' * 50000)"], limits=Limits(max_output_bytes=100))
    result = run_one(cluster.options(node), job)
    assert result.stdout_truncated
    assert result.stdout == "y" * 100 + TRUNCATION_MARKER.format(dropped=50001 - 100)


def test_node_killed_mid_run_jobs_are_retried_on_the_other_node(cluster: Cluster, tmp_path: Path) -> None:
    doomed, survivor = cluster.start("a"), cluster.start("b")
    started = tmp_path / "started"
    started.mkdir()
    jobs = [
        Job(command=["sh", "-c", 'touch "$STARTED/$JOB"; sleep 3; echo "done $JOB"'],
            env={"STARTED": str(started), "JOB": str(n)})
        for n in range(4)
    ]

    def kill_when_all_started() -> None:
        deadline = time.monotonic() + 60
        while len(list(started.iterdir())) < 4:
            assert time.monotonic() < deadline, "the jobs never started"
            time.sleep(0.05)
        doomed.kill()

    results = run_jobs(cluster.options(doomed, survivor, slots=2), jobs, during=kill_when_all_started)
    assert [r.stdout for r in results] == [f"done {n}\n" for n in range(4)]
    assert all(r.returncode == 0 and r.node == "b" for r in results)
    retried = [r for r in results if r.attempts == 2]
    assert len(retried) == 2
    for result in retried:
        assert "ssh: node a lost mid-job; retried on b" in result.notes


def test_every_node_down_is_an_executor_error(cluster: Cluster) -> None:
    options = {"nodes": [{"host": "127.0.0.1", "port": free_port(), "name": "gone", "key": str(cluster.key),
                          "known_hosts": str(cluster.known_hosts)}], "connect_timeout_s": 5}
    with pytest.raises(ExecutorError, match=r"every node is down \(gone: cannot connect"):
        run_one(options, Job(command=["true"]))


def test_a_node_down_from_the_start_is_skipped_and_said(cluster: Cluster) -> None:
    node = cluster.start("a")
    options = cluster.options(node)
    options["nodes"].insert(0, {"host": "127.0.0.1", "port": free_port(), "name": "gone", "key": str(cluster.key),
                                "known_hosts": str(cluster.known_hosts), "slots": 4})
    result = run_one(options, Job(command=["echo", "ok"]))
    assert result.stdout == "ok\n" and result.node == "a" and result.attempts == 1
    assert any(note.startswith("ssh: node gone unusable (cannot connect") for note in result.notes)


def test_configuration_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="has no nodes"):
        SSHExecutor({})
    with pytest.raises(ConfigError, match=r"nodes\.0\.slots"):
        SSHExecutor({"nodes": [{"host": "h", "slots": 0}]})
