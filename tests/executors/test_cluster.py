"""The cluster executor and `[cluster]`: jobs on a LocalCluster's workers in their sandbox, `truthplane doctor`
against a team's own scheduler and workers on 127.0.0.1, and the Azure VM settings handed to dask-cloudprovider's
real AzureVMCluster (which cannot create VMs here)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from tests.executors._remote_fixtures import dask_cluster
from truthplane.cli.main import run
from truthplane.config import parse_config
from truthplane.config.cluster import ClusterSettings
from truthplane.errors import ConfigError, ExecutorError
from truthplane.executors.cluster import ClusterExecutor, azure_arguments, azure_cluster
from truthplane.executors.jobs import Job

pytestmark = pytest.mark.tool("bwrap")


def test_jobs_run_sandboxed_on_the_local_clusters_workers_and_the_snapshot_is_unpacked_once_per_worker(
        tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "value.txt").write_text("original\n")
    job = Job(command=["sh", "-c", "cat value.txt; echo $$; echo changed > value.txt; ls ../.. | wc -l"],
              source_dir=str(repo))

    async def go() -> tuple[list, list[tuple[str, str]]]:
        executor = ClusterExecutor(settings=ClusterSettings(workers=2))
        try:
            results = await executor.run_many([job] * 6)
            assert executor.cluster is not None
            scratch = Path(executor.cluster._scratch or "")
            unpacked = scratch.glob("dask-scratch-space/*/truthplane/snapshots/*")
            return results, sorted((p.parent.parent.parent.name, (p / "value.txt").read_text()) for p in unpacked)
        finally:
            await executor.close()

    results, snapshots = asyncio.run(go())
    assert [r.stdout.splitlines()[:2] for r in results] == [["original", "2"]] * 6  # own copies, own pid namespace
    assert all(r.sandboxed and r.executor == "cluster" and r.node in ("0", "1") for r in results)
    assert 1 <= len(snapshots) <= 2 and {text for _, text in snapshots} == {"original\n"}
    assert len({worker for worker, _ in snapshots}) == len(snapshots)  # at most one per worker


def test_an_unreachable_scheduler_is_one_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    executor = ClusterExecutor(settings=ClusterSettings(address=f"tcp://127.0.0.1:{port}", connect_timeout_s=1))
    with pytest.raises(ExecutorError, match=r"cannot reach the Dask scheduler at tcp://127.0.0.1:\d+ within 1 s"):
        asyncio.run(executor.run(Job(command=["true"])))


def test_doctor_checks_every_worker_of_a_teams_cluster(make_repo, tmp_path: Path, capsys,  # noqa: ANN001
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_repo({"truthplane.toml": 'verifiers = ["ruff"]\n'})
    with dask_cluster(tmp_path / "cluster", workers=2) as cluster:
        code = run(["doctor", str(root), "--format", "json", "--cluster", cluster.address])
    doc = json.loads(capsys.readouterr().out)
    nodes = doc["cluster"]
    assert set(nodes) == {"team-1", "team-2"}
    import truthplane

    for node in nodes.values():
        assert node["host"] == socket.gethostname() and node["truthplane"] == truthplane.__version__
        assert node["sandbox"] == "local" and node["sandbox_usable"] and node["problem"] == ""
        assert node["worker"].startswith("tcp://127.0.0.1:")
    assert code in (0, 4)  # 4 only for a verifier missing here, never for the cluster
    assert not [c for c in doc["missing"]] or code == 4


def test_doctor_says_when_the_scheduler_is_not_there(make_repo, capsys) -> None:  # noqa: ANN001
    root = make_repo({"truthplane.toml": 'verifiers = ["ruff"]\n[cluster]\nconnect_timeout_s = 1\n'})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = run(["doctor", str(root), "--cluster", f"127.0.0.1:{port}"])
    out = capsys.readouterr().out
    assert code == 4 and "cannot reach the Dask scheduler" in out and "not ready" in out


AZURE = {"resource_group": "rg-truthplane", "location": "westeurope", "vnet": "vnet-ci", "security_group": "nsg-ci",
         "vm_size": "Standard_D4s_v5", "subscription_id": "00000000-0000-0000-0000-000000000000"}


def test_azure_vm_settings_are_handed_to_the_real_azurevmcluster() -> None:
    pytest.importorskip("dask_cloudprovider.azure", reason="pip install 'truthplane[azure]'")
    import truthplane

    config = parse_config({"cluster": {"kind": "azure-vm", "workers": 3, "azure": AZURE}}, "truthplane.toml")
    arguments = azure_arguments(config.cluster)
    assert arguments["n_workers"] == 3 and arguments["security"] is True
    assert arguments["env_vars"] == {"EXTRA_PIP_PACKAGES": f"truthplane=={truthplane.__version__}"}

    async def made() -> object:
        return azure_cluster(config.cluster)  # constructed, not started: no VM is created

    cluster = asyncio.run(made())
    assert type(cluster).__name__ == "AzureVMCluster"
    assert (cluster.resource_group, cluster.location, cluster.vnet, cluster.security_group, cluster.vm_size,
            cluster.subscription_id) == ("rg-truthplane", "westeurope", "vnet-ci", "nsg-ci", "Standard_D4s_v5",
                                         AZURE["subscription_id"])
    assert cluster.public_ingress is False and cluster._n_workers == 3
    assert cluster.security.require_encryption  # TLS with credentials made for the cluster
    assert cluster.worker_options["env_vars"] == arguments["env_vars"]


def test_cluster_settings_are_checked_when_read() -> None:
    with pytest.raises(ConfigError, match=r'cluster: kind = "azure-vm" needs a \[cluster.azure\] table'):
        parse_config({"cluster": {"kind": "azure-vm"}}, "truthplane.toml")
    with pytest.raises(ConfigError, match="tls_ca_file, tls_cert and tls_key go together"):
        parse_config({"cluster": {"address": "tls://h:8786", "tls_ca_file": "ca.pem"}}, "truthplane.toml")
    with pytest.raises(ConfigError, match=r"cluster.azure.location: Field required"):
        parse_config({"cluster": {"kind": "azure-vm", "azure": {k: v for k, v in AZURE.items() if k != "location"}}},
                     "truthplane.toml")
    with pytest.raises(ConfigError, match=r"cluster.workers"):
        parse_config({"cluster": {"workers": 0}}, "truthplane.toml")
    assert parse_config({"cluster": {"address": "10.0.0.4:8786"}}, "t").cluster.address == "tcp://10.0.0.4:8786"


def test_a_worker_without_bubblewrap_refuses_the_task_rather_than_run_it_unsandboxed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from truthplane.executors import _on_worker

    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None if name == "bwrap" else which(name))
    monkeypatch.setattr(_on_worker, "_sandboxes", {})
    with pytest.raises(ExecutorError, match="has no bubblewrap: a task never runs unsandboxed on a worker"):
        _on_worker.sandbox("local", {})
    assert _on_worker.sandbox("local", {"sandbox": False}).name == "local"  # the user's own, explicit choice


def test_a_cluster_truthplane_starts_keeps_distributeds_logs_off_its_output(tmp_path: Path) -> None:
    """distributed sets its loggers up when it is first imported: truthplane quiets them after that, in a fresh
    process too (where the cluster's start is the first import), so nothing of Dask's own logging reaches stderr."""
    import subprocess
    import sys

    script = tmp_path / "start.py"
    script.write_text(
        "import asyncio, logging\n"
        "from truthplane.executors.cluster import Cluster, QUIET\n"
        "from truthplane.config.cluster import ClusterSettings\n"
        "async def main():\n"
        "    cluster = await Cluster(ClusterSettings(kind='local', workers=1), processes=False).start()\n"
        "    await cluster.close()\n"
        "    print(logging.getLogger('distributed').level == QUIET)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "True"
    assert "distributed." not in proc.stderr  # no "INFO - distributed.scheduler ..." lines
