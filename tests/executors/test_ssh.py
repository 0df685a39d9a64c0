"""SSHExecutor: a Dask cluster of real OpenSSH sshd nodes on 127.0.0.1 ports (a scheduler here, a worker started
over ssh on each node), jobs run in the node's sandbox."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import register_probe
from tests.executors._remote_fixtures import SSHNode, client_key, free_port, processes, sshd_node, sshd_present
from truthplane.errors import ConfigError, ExecutorError
from truthplane.executors.cluster import SSHExecutor
from truthplane.executors.interface import TRUNCATION_MARKER
from truthplane.executors.jobs import Job, JobResult, Limits

register_probe("sshd", sshd_present)

pytestmark = pytest.mark.tool("sshd")


class Nodes:
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
def nodes(tmp_path: Path) -> Iterator[Nodes]:
    with ExitStack() as stack:
        yield Nodes(tmp_path, stack)


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


async def gone(*words: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while processes(*words):
        assert time.monotonic() < deadline, f"still running: {words} {processes(*words)}"
        await asyncio.sleep(0.05)


def test_a_job_runs_in_the_nodes_sandbox(nodes: Nodes) -> None:
    node = nodes.start("a")
    config = node.cache_dir.parent / "sshd_config"  # on the node, outside the job's workspace
    result = run_one(nodes.options(node), Job(command=["sh", "-c", f"echo 42; echo $$; test -e {config} "
                                                                    "&& echo sees-it || echo hidden"]))
    assert config.is_file() and result.returncode == 0 and result.ok
    assert result.stdout.split() == ["42", "2", "hidden"]  # bubblewrap on the node: its own pids, files hidden
    assert result.node == "a" and result.sandboxed and result.executor == "ssh"


def test_files_env_stdin_and_workdir(nodes: Nodes) -> None:
    node = nodes.start("a")
    job = Job(command=["sh", "-c", "cat data.txt; echo $GREETING; cat -; pwd"], files={"sub/data.txt": b"file\n"},
              env={"GREETING": "hello"}, stdin=b"piped\n", workdir="sub")
    result = run_one(nodes.options(node), job)
    lines = result.stdout.splitlines()
    assert lines[:3] == ["file", "hello", "piped"] and lines[3].endswith("/sub")


def test_non_zero_exit_and_capped_output(nodes: Nodes) -> None:
    node = nodes.start("a")
    results = run_jobs(nodes.options(node), [
        Job(command=["sh", "-c", "echo oops >&2; exit 3"]),
        Job(command=["python3", "-c", "print('y' * 50000)"], limits=Limits(max_output_bytes=100)),
    ])
    assert results[0].returncode == 3 and results[0].stderr == "oops\n"
    assert results[1].stdout_truncated
    assert results[1].stdout == "y" * 100 + TRUNCATION_MARKER.format(dropped=50001 - 100)


def test_unknown_host_is_refused(nodes: Nodes) -> None:
    node = nodes.start("a")
    nodes.known_hosts.write_text("")
    with pytest.raises(ExecutorError, match=r"host key is not in .*ssh-keyscan"):
        run_one(nodes.options(node), Job(command=["true"]))


def test_unknown_host_accepted_when_opted_in(nodes: Nodes) -> None:
    node = nodes.start("a")
    nodes.known_hosts.write_text("")
    result = run_one(nodes.options(node, accept_unknown_hosts=True), Job(command=["echo", "ok"]))
    assert result.stdout == "ok\n"


def test_changed_host_key_is_refused_even_when_unknown_hosts_are_accepted(nodes: Nodes) -> None:
    node = nodes.start("a")
    other = nodes.start("b")
    nodes.known_hosts.write_text(f"[127.0.0.1]:{node.port} {other.host_key_line}\n")
    with pytest.raises(ExecutorError, match="host key verification failed"):
        run_one(nodes.options(node, accept_unknown_hosts=True), Job(command=["true"]))


def test_the_snapshot_travels_once_per_worker_and_each_job_gets_its_own_copy(nodes: Nodes, tmp_path: Path) -> None:
    node = nodes.start("a")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "value.txt").write_text("original\n")
    os.symlink("/etc/passwd", repo / "link")
    # every job changes its copy; none of the others (nor the worker's unpacked snapshot) may see that
    job = Job(command=["sh", "-c", "cat value.txt; readlink link; echo changed > value.txt"], source_dir=str(repo))

    def snapshots() -> list[str]:
        unpacked = node.cache_dir.glob("cluster-*/work/**/truthplane/snapshots/*")
        return sorted((p / "value.txt").read_text() for p in unpacked)

    async def go() -> tuple[list[JobResult], list[str], JobResult, list[str]]:
        async with SSHExecutor(nodes.options(node, slots=2)) as executor:
            first = await executor.run_many([job, job, job])
            once = snapshots()
            (repo / "value.txt").write_text("edited\n")
            after_edit = await executor.run(job)
            return first, once, after_edit, snapshots()

    first, once, after_edit, twice = asyncio.run(go())
    assert [r.stdout for r in first] == ["original\n/etc/passwd\n"] * 3
    assert once == ["original\n"]  # one worker: the snapshot was unpacked there once, for three jobs
    assert after_edit.stdout == "edited\n/etc/passwd\n"
    assert twice == ["edited\n", "original\n"]
    assert not list(node.cache_dir.glob("cluster-*"))  # the run's files on the node are removed at its end


def test_the_nodes_environment_and_credentials_reach_the_worker_and_no_command_line(nodes: Nodes) -> None:
    node = nodes.start("a")
    options = nodes.options(node)
    secret = "llm-key-" + os.urandom(6).hex()
    options["nodes"][0]["env"]["TRUTHPLANE_TEST_KEY"] = secret

    async def go() -> None:
        async with SSHExecutor(options) as executor:
            assert (await executor.run(Job(command=["true"]))).returncode == 0
            (run_dir,) = node.cache_dir.glob("cluster-*")
            assert run_dir.stat().st_mode & 0o777 == 0o700
            for name in ("cert.pem", "key.pem"):  # the run's TLS credentials: the login user's only
                assert (run_dir / name).stat().st_mode & 0o777 == 0o600
            key_line = (run_dir / "key.pem").read_text().splitlines()[1]
            assert not processes(secret) and not processes(key_line)  # on no command line on the node
            (worker,) = processes("distributed.cli.dask_worker", str(node.cache_dir))
            environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
            assert f"TRUTHPLANE_TEST_KEY={secret}".encode() in environ  # the worker's environment has it

    asyncio.run(go())
    assert not list(node.cache_dir.glob("cluster-*"))


def test_a_node_whose_cache_dir_cannot_be_written_says_so(nodes: Nodes, tmp_path: Path) -> None:
    node = nodes.start("a")
    options = nodes.options(node)
    (tmp_path / "a-file").write_text("")
    options["nodes"][0]["cache_dir"] = str(tmp_path / "a-file" / "below")
    with pytest.raises(ExecutorError, match=r"ssh node a: the worker exited before it started .*NotADirectoryError"
                                            r".*check cache_dir"):
        run_one(options, Job(command=["true"]))


def test_a_worker_whose_ssh_connection_is_lost_stops_at_once(nodes: Nodes) -> None:
    """This machine gone (its ssh connections dropped, no goodbye): the node's worker does not wait for its
    scheduler's death timeout, it stops, and the run's files go."""
    node = nodes.start("a")

    async def go() -> None:
        executor = SSHExecutor(nodes.options(node))
        try:
            assert (await executor.run(Job(command=["true"]))).returncode == 0
            assert processes("distributed.cli.dask_worker", str(node.cache_dir))
            assert executor.cluster is not None
            for worker in executor.cluster._ssh_workers:
                worker._conn.abort()
            await gone("distributed.cli.dask_worker", str(node.cache_dir), within=10)
        finally:
            await executor.close()

    asyncio.run(go())
    assert not list(node.cache_dir.glob("cluster-*"))


def test_a_timed_out_job_is_killed_on_the_node(nodes: Nodes) -> None:
    node = nodes.start("a")
    result = run_one(nodes.options(node), Job(command=["sh", "-c", "sleep 61.25 & sleep 61.5"],
                                              limits=Limits(timeout_s=1)))
    assert result.timed_out and not result.ok and "killed after the 1 s timeout" in result.notes
    asyncio.run(gone("sleep", "61."))


@pytest.mark.parametrize("how", ["cancelled", "closed"])
def test_a_job_whose_caller_goes_away_is_killed_on_the_node(nodes: Nodes, how: str) -> None:
    node = nodes.start("a")
    job = Job(command=["sh", "-c", "sleep 62.25 & sleep 62.5"], limits=Limits(timeout_s=120))

    async def go() -> None:
        executor = SSHExecutor(nodes.options(node))
        task = asyncio.ensure_future(executor.run(job))
        deadline = time.monotonic() + 60
        while not processes("sleep", "62.5"):
            assert time.monotonic() < deadline, "the job never started"
            await asyncio.sleep(0.05)
        if how == "cancelled":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await gone("sleep", "62.")
            assert (await executor.run(Job(command=["echo", "still up"]))).stdout == "still up\n"
        await executor.close()  # the cluster goes, and with it every worker and job on the nodes
        task.cancel()
        await gone("sleep", "62.")
        await gone("distributed.cli.dask_worker", str(node.cache_dir))

    asyncio.run(go())


def test_a_worker_killed_mid_job_reruns_the_job_and_says_so(nodes: Nodes, tmp_path: Path) -> None:
    doomed, survivor = nodes.start("a"), nodes.start("b")
    jobs = [Job(command=["sh", "-c", f"sleep 3.{n}5; echo done {n}"]) for n in range(4)]

    def kill_a_when_all_started() -> None:
        deadline = time.monotonic() + 60
        # the jobs' shells, one per job started (`sleep` alone would also match each shell's own command line:
        # two jobs on one node looked like four, and the node died before its own had started)
        while len(processes("sleep 3.", "echo done")) < 4:
            assert time.monotonic() < deadline, "the jobs never started"
            time.sleep(0.05)
        doomed.kill()  # the machine dies: sshd, the worker, its jobs

    results = run_jobs(nodes.options(doomed, survivor, slots=2), jobs, during=kill_a_when_all_started)
    assert [r.stdout for r in results] == [f"done {n}\n" for n in range(4)]
    assert all(r.returncode == 0 and r.node == "b" for r in results)
    rerun = [r for r in results if r.attempts == 2]
    assert len(rerun) == 2
    for result in rerun:
        assert "ssh: worker a was lost mid-job; the job reran on b" in result.notes


def test_every_node_down_is_an_executor_error(nodes: Nodes) -> None:
    options = {"nodes": [{"host": "127.0.0.1", "port": free_port(), "name": "gone", "key": str(nodes.key),
                          "known_hosts": str(nodes.known_hosts)}], "connect_timeout_s": 5}
    with pytest.raises(ExecutorError, match=r"has no worker \(gone: ssh node gone: cannot connect"):
        run_one(options, Job(command=["true"]))


def test_a_node_down_from_the_start_is_skipped_and_said(nodes: Nodes) -> None:
    node = nodes.start("a")
    options = nodes.options(node)
    options["nodes"].insert(0, {"host": "127.0.0.1", "port": free_port(), "name": "gone", "key": str(nodes.key),
                                "known_hosts": str(nodes.known_hosts), "slots": 4})
    result = run_one(options, Job(command=["echo", "ok"]))
    assert result.stdout == "ok\n" and result.node == "a" and result.attempts == 1
    assert any(note.startswith("ssh: node gone is down (ssh node gone: cannot connect") for note in result.notes)


def test_a_node_without_truthplane_says_what_to_install(nodes: Nodes, tmp_path: Path) -> None:
    node = nodes.start("a")
    options = nodes.options(node)
    options["nodes"][0]["python"] = "/usr/bin/python3"  # the system Python: no distributed, no truthplane
    options["nodes"][0]["env"] = {}
    with pytest.raises(ExecutorError, match="pip install truthplane"):
        run_one(options, Job(command=["true"]))


def test_configuration_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="has no nodes"):
        SSHExecutor({})
    with pytest.raises(ConfigError, match=r"nodes\.0\.slots"):
        SSHExecutor({"nodes": [{"host": "h", "slots": 0}]})
    with pytest.raises(ConfigError, match=r"nodes\.0\.env"):
        SSHExecutor({"nodes": [{"host": "h", "env": {"NOT A NAME": "x"}}]})




@pytest.mark.tool("ruff")
def test_fix_with_the_ssh_executor_runs_the_candidates_tests_on_the_nodes(nodes: Nodes, make_repo, tmp_path: Path,
                                                                          capsys, monkeypatch) -> None:  # noqa: ANN001
    import json

    from tests.executors.test_interpreter import CALC, RIGHT
    from tests.runall.test_scheduler import toml_value
    from truthplane.cli.main import run

    node = nodes.start("a")
    table = "".join(f"{k} = {toml_value(v)}\n" for k, v in node.node_options(nodes.key, nodes.known_hosts, 2).items())
    root = make_repo({"calc.py": CALC,
                      "truthplane.toml": f'verifiers = ["ruff"]\n\n[[executors.ssh.nodes]]\n{table}'})
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    patch = tmp_path / "right.diff"
    patch.write_text(RIGHT)
    test_cmd = "python3 -c 'import calc; assert calc.mean([1, 3]) == 2'"
    code = run(["fix", str(root / "calc.py"), "--candidate", str(patch), "--test-cmd", test_cmd, "--executor", "ssh",
                "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    (candidate,) = result["candidates"]
    assert code == 0 and candidate["verdict"] == "APPROVE", candidate
    tests = candidate["tests"]
    assert tests["before_rc"] == 1 and tests["after_rc"] == [0] and tests["ran_on"] == ["ssh on a"], tests
    assert not list(node.cache_dir.glob("cluster-*"))  # the node's worker and files are gone when fix ends
