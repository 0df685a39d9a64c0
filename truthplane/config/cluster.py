"""[cluster] in truthplane.toml: where `run-all`'s tasks and the ssh executor's jobs run, on Dask distributed.

    [cluster]
    kind = "local"            # local: a LocalCluster of this machine (the default); address: your own running
                              # scheduler; ssh: the [[executors.ssh.nodes]]; azure-vm: VMs made by dask-cloudprovider
    address = "tls://10.0.0.4:8786"   # your own scheduler (kind = "address" is implied)
    workers = 4               # local: worker processes (default: the CPU count)
    sandbox = "local"         # where a task runs on each worker: local (bubblewrap) or docker
    scheduler_host = "10.0.0.4"       # ssh: the address the nodes reach this machine's scheduler at
    tls_ca_file = "ca.pem"    # your own scheduler's TLS, as distributed's Security takes them
    tls_cert = "client.pem"
    tls_key = "client-key.pem"
    dashboard = false         # serve Dask's dashboard (needs bokeh) on the scheduler truthplane starts

    [cluster.azure]           # kind = "azure-vm": handed to dask_cloudprovider.azure.AzureVMCluster
    resource_group = "truthplane"
    location = "westeurope"
    vnet = "truthplane-vnet"
    security_group = "truthplane-nsg"
    vm_size = "Standard_D4s_v5"
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ClusterKind = Literal["local", "address", "ssh", "azure-vm"]


class AzureVMSettings(BaseModel):
    """`[cluster.azure]`: the arguments dask-cloudprovider's AzureVMCluster takes, by the same names."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    resource_group: str
    location: str
    vnet: str
    security_group: str
    vm_size: str = "Standard_DS1_v2"
    scheduler_vm_size: str | None = None
    subscription_id: str | None = None
    public_ingress: bool = Field(default=False, description="give the scheduler a public IP (default: private only)")
    disk_size: int = Field(default=50, ge=30, description="GB per VM")
    docker_image: str | None = Field(default=None, description="the scheduler's and workers' image (default: "
                                     "dask-cloudprovider's); it needs bubblewrap")
    docker_args: str | None = Field(default=None, description="e.g. the privileges bubblewrap needs in a container")
    auto_shutdown: bool = True
    pip_packages: list[str] = Field(default_factory=list, description="installed in each container at start "
                                    "(default: this truthplane's version)")


class ClusterSettings(BaseModel):
    """`[cluster]`"""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: ClusterKind | None = Field(default=None, description="default: address if one is given, else local")
    address: str | None = None
    workers: int | None = Field(default=None, ge=1)
    sandbox: str = "local"
    scheduler_host: str = "127.0.0.1"
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    dashboard: bool = False
    connect_timeout_s: float = Field(default=20.0, gt=0, le=600)
    azure: AzureVMSettings | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ClusterSettings:
        if self.kind is None:
            self.kind = "address" if self.address else "local"
        if self.kind == "address" and not self.address:
            raise ValueError('kind = "address" needs address = "tls://HOST:PORT" (or tcp://)')
        if self.kind == "azure-vm" and self.azure is None:
            raise ValueError('kind = "azure-vm" needs a [cluster.azure] table (resource_group, location, vnet, '
                             "security_group)")
        tls = [self.tls_ca_file, self.tls_cert, self.tls_key]
        if any(tls) and not all(tls):
            raise ValueError("tls_ca_file, tls_cert and tls_key go together: give all three or none")
        if self.address and "://" not in self.address:
            self.address = "tcp://" + self.address
        return self

    def describe(self) -> str:
        if self.kind == "address":
            return f"your cluster at {self.address}"
        if self.kind == "azure-vm":
            return "Azure VMs (dask-cloudprovider)"
        return "ssh nodes" if self.kind == "ssh" else "a local cluster"


def cluster_settings(raw: dict[str, Any] | None, **overrides: Any) -> ClusterSettings:
    """The [cluster] table with command-line overrides (None values are not overrides)."""
    data = {**(raw or {}), **{k: v for k, v in overrides.items() if v is not None}}
    if overrides.get("address") and "kind" not in overrides:
        data["kind"] = "address"
    return ClusterSettings.model_validate(data)
