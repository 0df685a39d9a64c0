"""One cgroup per local job, for the caps rlimits cannot give root: memory and process count.

cgroup v2 is used where its memory and pids controllers can be delegated to a child of our own
cgroup; otherwise the v1 memory, pids (and cpu) hierarchies. Job cgroups are made under the
cgroup this process already runs in, so an outer supervisor's limits still hold. CPU bandwidth
(`Limits.cpus`) is set only under v2, where it costs nothing extra; CPU time is an rlimit.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from truthplane.executors.jobs import Limits
from truthplane.leftovers import is_dead, owned_prefix, owner_of

_CPU_PERIOD_US = 100_000


class CgroupUnavailable(Exception):
    """No writable cgroup with memory and pids controllers; the message says why."""


@dataclass(frozen=True)
class _Mount:
    fstype: str
    root: str
    mountpoint: str
    controllers: frozenset[str]


@cache
def _mounts() -> tuple[_Mount, ...]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = frozenset(tail[2].split(",")) if tail[0] == "cgroup" else frozenset()
        mounts.append(_Mount(tail[0], fields[3], fields[4].replace("\\040", " "), options))
    return tuple(mounts)


@cache
def _own_paths() -> dict[str, str]:
    """controller (or "" for v2) -> this process's cgroup path."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _dir_for(mount: _Mount, path: str) -> Path | None:
    root = mount.root.rstrip("/")
    if root and not (path == root or path.startswith(root + "/")):
        return None  # our cgroup is outside what is mounted here
    return Path(mount.mountpoint) / path[len(root):].lstrip("/")


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _delegable(parent: Path) -> bool:
    """Can job cgroups with memory and pids be made under parent? Enables the controllers if needed."""
    try:
        available = set((parent / "cgroup.controllers").read_text().split())
        if not {"memory", "pids"} <= available:
            return False
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        wanted = {"memory", "pids", "cpu"} & available
        if not wanted <= enabled:
            _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted - enabled)))
    except OSError:
        return False  # processes live there (the no-internal-process rule) or no permission
    return True


def _v2_parent() -> Path | None:
    """Our own cgroup if it can delegate; else, as root, the top of the hierarchy (the root cgroup is
    exempt from the no-internal-process rule), which a systemd session scope never allows."""
    mount = next((m for m in _mounts() if m.fstype == "cgroup2"), None)
    own = _own_paths().get("")
    if mount is None or own is None:
        return None
    candidates = [_dir_for(mount, own), Path(mount.mountpoint) if os.geteuid() == 0 else None]
    return next((c for c in candidates if c is not None and _delegable(c)), None)


def _v1_parents() -> dict[str, Path] | None:
    parents: dict[str, Path] = {}
    own = _own_paths()
    # no v1 cpu hierarchy: each hierarchy joined costs a migration per job; CPU time is capped by RLIMIT_CPU
    for controller in ("memory", "pids"):
        mount = next((m for m in _mounts() if m.fstype == "cgroup" and controller in m.controllers), None)
        if mount is None or controller not in own:
            continue
        parent = _dir_for(mount, own[controller])
        if parent is not None and os.access(parent, os.W_OK):
            parents[controller] = parent
    return parents if {"memory", "pids"} <= parents.keys() else None


class JobCgroup:
    """A cgroup made for one job: limits set, members listed and signalled, removed afterwards."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version = version
        self.dirs = dirs

    @classmethod
    def create(cls, limits: Limits) -> JobCgroup:
        name = f"{owned_prefix('cgroup')}{uuid.uuid4().hex[:12]}"
        v2 = _v2_parent()
        if v2 is not None:
            group = cls(2, {"unified": v2 / name})
        else:
            v1 = _v1_parents()
            if v1 is None:
                raise CgroupUnavailable(
                    "no writable cgroup with memory and pids controllers (run as root, or delegate a cgroup v2 subtree)"
                )
            group = cls(1, {controller: parent / name for controller, parent in v1.items()})
        try:
            for path in group.dirs.values():
                path.mkdir()
            group.set_limits(limits)
        except OSError as exc:
            group.remove()
            raise CgroupUnavailable(f"cannot set up a job cgroup: {exc}") from None
        return group

    def set_limits(self, limits: Limits) -> None:
        memory = limits.memory_mb * 1024 * 1024
        quota = max(1000, int(limits.cpus * _CPU_PERIOD_US))
        if self.version == 2:
            unified = self.dirs["unified"]
            _write(unified / "memory.max", str(memory))
            if (unified / "memory.swap.max").exists():
                _write(unified / "memory.swap.max", "0")
            _write(unified / "pids.max", str(limits.pids))
            if (unified / "cpu.max").exists():
                _write(unified / "cpu.max", f"{quota} {_CPU_PERIOD_US}")
            return
        # v1 wants memory <= memory+swap at every step: raising, the memsw limit goes first; lowering, last
        limit, memsw = (
            self.dirs["memory"] / "memory.limit_in_bytes",
            self.dirs["memory"] / "memory.memsw.limit_in_bytes",
        )
        try:
            raising = memory > int(limit.read_text())
        except (OSError, ValueError):
            raising = False
        for path in ([memsw, limit] if raising else [limit, memsw]):
            try:
                _write(path, str(memory))
            except FileNotFoundError:
                continue  # swap accounting is off: there is no swap to escape into
        _write(self.dirs["pids"] / "pids.max", str(limits.pids))

    def procs_files(self) -> list[str]:
        """Files a child writes "0" into to join this cgroup before it execs."""
        return [str(path / "cgroup.procs") for path in self.dirs.values()]

    def pids(self) -> set[int]:
        members: set[int] = set()
        for path in self.dirs.values():
            try:
                members.update(int(pid) for pid in (path / "cgroup.procs").read_text().split())
            except OSError:
                continue
        return members

    def signal(self, sig: int, spare: int | None = None) -> None:
        for pid in self.pids():
            if pid == spare or pid <= 0:  # 0: a member outside our pid namespace (kill(0) would hit our own group)
                continue
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                continue

    def oom_killed(self) -> bool:
        path = (
            self.dirs["unified"] / "memory.events" if self.version == 2 else self.dirs["memory"] / "memory.oom_control"
        )
        try:
            for line in path.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            return False
        return False

    def remove(self) -> None:
        """Kill stragglers and remove the directories; a cgroup still busy after ~1 s is left behind."""
        for attempt in range(100):
            busy = False
            for path in self.dirs.values():
                try:
                    path.rmdir()
                except FileNotFoundError:
                    continue
                except OSError:
                    busy = True
            if not busy:
                return
            self.signal(signal.SIGKILL)
            time.sleep(0.01 if attempt < 50 else 0.02)


def _parents() -> list[Path]:
    """Every directory job cgroups are made in here."""
    v2 = _v2_parent()
    if v2 is not None:
        return [v2]
    return list((_v1_parents() or {}).values())


def sweep_dead() -> list[str]:
    """Remove the job cgroups of runs that died without cleaning up (kill -9): their owner pid is in the
    name; what still runs in one is killed first. Returns the names removed."""
    removed = []
    v2 = _v2_parent()
    for parent in _parents():
        try:
            entries = [p for p in parent.iterdir() if p.is_dir()]
        except OSError:
            continue
        for path in entries:
            pid = owner_of(path.name)
            # not writable: seen from inside a sandbox (another pid namespace), where "dead" means nothing
            if pid is None or pid == os.getpid() or not os.access(path, os.W_OK) or not is_dead(pid):
                continue
            group = JobCgroup(2 if parent == v2 else 1, {"dir": path})
            group.remove()
            if not path.exists():
                removed.append(path.name)
    return removed
