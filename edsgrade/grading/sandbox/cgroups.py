"""One control group per running submission: memory, processes and CPU over its whole process tree.

Resource limits (``setrlimit``) are per process: four children of 1.5 GiB each, or 3 GiB written to
``/dev/shm``, pass a per-process limit of 2 GiB. A control group counts every process of the
submission, the shared memory and the tmpfs pages it touches included, and it is killed as one.

What the host has is detected, in this order:

- **cgroup v2** (the unified hierarchy) when it offers the ``memory``, ``pids`` and ``cpu``
  controllers to the grader's own cgroup: ``memory.max`` (``memory.swap.max`` = 0), ``pids.max``,
  ``cpu.weight`` and ``cpu.max``, and ``cgroup.kill`` for the final kill;
- else the **cgroup v1** ``memory``, ``pids`` and ``cpu`` controllers (and ``freezer`` when mounted):
  ``memory.limit_in_bytes`` and ``memory.memsw.limit_in_bytes``, ``pids.max``, ``cpu.shares`` and
  ``cpu.cfs_quota_us``; the kill freezes the group, kills every pid in it, and thaws it;
- else nothing (:func:`detect` returns ``None``) and the sandbox keeps its resource limits only.

Each group is made *inside the grader's own cgroup* of each hierarchy (never at the top of the
hierarchy, which would take the sandboxes out of whatever limits the machine puts on the grader),
named ``edsgrade-slot<N>`` after the grading slot that owns it (a slot is held by one grader at a
time, see :func:`edsgrade.grading.sandbox.confinement.acquire_slot`). The confined child enters it itself
(:func:`enter`), before any student code runs, so every process it starts is in it.

Why our own code and not a library: the few files involved are the kernel's documented interface,
and the libraries on PyPI either need systemd (which a container or CI runner may not run) or
cover v2 only.
"""
from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from edsgrade.errors import EdsgradeError

V1_CONTROLLERS = ("memory", "pids", "cpu")  # required
V1_OPTIONAL = ("freezer",)
V2_CONTROLLERS = ("memory", "pids", "cpu")
CFS_PERIOD = 100_000  # microseconds
KILL_ROUNDS = 200
FREEZE_AFTER = 6  # kill rounds before the group is frozen (a process that keeps forking)


class CgroupError(EdsgradeError, OSError):
    """A control group could not be made, entered or removed; the message says which and why."""


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, filesystem type, super options) of each cgroup mount of this process."""
    found = []
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        left, _, right = line.partition(" - ")
        parts, rparts = left.split(), right.split()
        if len(parts) < 5 or len(rparts) < 3 or rparts[0] not in ("cgroup", "cgroup2"):
            continue
        found.append((parts[4].replace("\\040", " "), rparts[0], set(rparts[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under key ``""`` its v2 path."""
    paths: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return paths
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


@dataclass
class Layout:
    """Where the groups of this host go: ``version`` "v2" or "v1", and the parent folder per controller
    (v2: one folder under key ``""``)."""

    version: str
    parents: dict[str, str] = field(default_factory=dict)


def _writable(path: str) -> bool:
    return os.path.isdir(path) and os.access(path, os.W_OK)


def detect() -> Layout | None:
    """The cgroup layout this (root) process can use for sandboxes, or ``None`` when there is none."""
    if os.geteuid() != 0:
        return None
    mounts, own = _mounts(), _own_paths()
    for point, kind, _ in mounts:
        if kind != "cgroup2" or "" not in own:
            continue
        parent = os.path.normpath(point + own[""])
        try:
            offered = set(Path(parent, "cgroup.controllers").read_text().split())
        except OSError:
            continue
        if set(V2_CONTROLLERS) <= offered and _writable(parent):
            return Layout("v2", {"": parent})
    parents: dict[str, str] = {}
    for point, kind, options in mounts:
        if kind != "cgroup":
            continue
        for name in (*V1_CONTROLLERS, *V1_OPTIONAL):
            if name in options and name in own and name not in parents:
                parent = os.path.normpath(point + own[name])
                if _writable(parent):
                    parents[name] = parent
    if all(name in parents for name in V1_CONTROLLERS):
        return Layout("v1", parents)
    return None


def _write(path: str, value: str | int) -> None:
    with open(path, "w") as fh:
        fh.write(str(value))


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def _keyed(text: str) -> dict[str, int]:
    """``name value`` lines (memory.events, pids.events, memory.oom_control) as a dict."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


class SubmissionCgroup:
    """The control group(s) of one running submission.

    Parameters
    ----------
    layout:
        From :func:`detect`.
    name:
        Folder name of the group in each hierarchy (``edsgrade-slot<N>``).
    memory:
        Bytes of memory (RAM + swap) for all the submission's processes, its shared memory and tmpfs pages.
    processes:
        Processes and threads at most at once.
    cpus:
        CPU cap in cores (0: none); every group has the same CPU weight.
    """

    def __init__(self, layout: Layout, name: str, memory: int, processes: int, cpus: float = 0) -> None:
        self.layout, self.name = layout, name
        self.memory, self.processes, self.cpus = memory, processes, cpus
        self.dirs = {ctl: os.path.join(parent, name) for ctl, parent in layout.parents.items()}

    # --- life cycle (grader side) -------------------------------------------------------------
    def create(self) -> "SubmissionCgroup":
        """Make the group (killing and replacing a left-over one of the same name) and set its limits."""
        if any(os.path.isdir(d) for d in self.dirs.values()):
            self.destroy()
        try:
            for folder in self.dirs.values():
                os.mkdir(folder)
            if self.layout.version == "v2":
                self._limits_v2(self.dirs[""])
            else:
                self._limits_v1()
        except OSError as exc:
            self.destroy()
            raise CgroupError(exc.errno, f"could not set up the control group {self.name} ({exc}); "
                                         "check that the grader runs as root with cgroups mounted read-write") from exc
        return self

    def _limits_v2(self, folder: str) -> None:
        _write(f"{folder}/memory.max", self.memory)
        if os.path.exists(f"{folder}/memory.swap.max"):
            _write(f"{folder}/memory.swap.max", 0)
        _write(f"{folder}/pids.max", self.processes)
        _write(f"{folder}/cpu.weight", 100)
        if self.cpus:
            _write(f"{folder}/cpu.max", f"{int(self.cpus * CFS_PERIOD)} {CFS_PERIOD}")

    def _limits_v1(self) -> None:
        mem = self.dirs["memory"]
        _write(f"{mem}/memory.limit_in_bytes", self.memory)
        if os.path.exists(f"{mem}/memory.memsw.limit_in_bytes"):
            _write(f"{mem}/memory.memsw.limit_in_bytes", self.memory)  # no swap beyond the limit
        _write(f"{self.dirs['pids']}/pids.max", self.processes)
        cpu = self.dirs["cpu"]
        _write(f"{cpu}/cpu.shares", 1024)
        if self.cpus:
            _write(f"{cpu}/cpu.cfs_period_us", CFS_PERIOD)
            _write(f"{cpu}/cpu.cfs_quota_us", int(self.cpus * CFS_PERIOD))

    def procs_files(self) -> list[str]:
        """The ``cgroup.procs`` files a process writes itself into (see :func:`enter`)."""
        return [f"{d}/cgroup.procs" for d in self.dirs.values()]

    def pids(self) -> list[int]:
        """Pids (in the grader's namespace) of the processes in the group."""
        found: set[int] = set()
        for folder in self.dirs.values():
            found.update(int(p) for p in _read(f"{folder}/cgroup.procs").split() if p.isdigit())
        return sorted(found)

    def kill(self) -> None:
        """Kill every process of the group (a fork bomb included) and wait until none is left.

        Each round sends SIGKILL to every pid in the group: a killed process forks no more, and a
        child forked meanwhile is in the group (``pids.max`` bounds how many), so rounds converge.
        The freezer (v1), which costs tens of milliseconds, is used only if processes remain after a
        few rounds; v2 has ``cgroup.kill``, which the kernel applies to the whole group at once.
        """
        if self.layout.version == "v2" and os.path.exists(f"{self.dirs['']}/cgroup.kill"):
            _write(f"{self.dirs['']}/cgroup.kill", 1)
        frozen = False
        for round_ in range(KILL_ROUNDS):
            pids = self.pids()
            if not pids:
                break
            if round_ == FREEZE_AFTER:
                frozen = self._freeze(True)
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if frozen:
                self._freeze(False)  # a frozen process dies of SIGKILL only once thawed
                frozen = False
            time.sleep(min(0.01, 0.0005 * 2 ** round_))  # most processes are gone within a millisecond or two
        else:
            raise CgroupError(errno.EBUSY, f"processes of control group {self.name} survive SIGKILL: {self.pids()}")

    def _freeze(self, on: bool) -> bool:
        folder = self.dirs.get("freezer")
        if self.layout.version != "v1" or not folder:
            return False
        try:
            _write(f"{folder}/freezer.state", "FROZEN" if on else "THAWED")
        except OSError:
            return False
        if on:
            deadline = time.monotonic() + 1.0
            while _read(f"{folder}/freezer.state").strip() != "FROZEN" and time.monotonic() < deadline:
                time.sleep(0.002)
        return True

    def report(self) -> dict[str, Any]:
        """What the kernel counted: ``oom_kills`` (processes killed over the memory limit), ``memory_peak``
        (bytes), ``process_limit_hits`` (forks refused)."""
        if self.layout.version == "v2":
            folder = self.dirs[""]
            events = _keyed(_read(f"{folder}/memory.events"))
            peak = _read(f"{folder}/memory.peak").strip()
            return {"oom_kills": events.get("oom_kill", 0), "memory_peak": int(peak) if peak.isdigit() else None,
                    "process_limit_hits": _keyed(_read(f"{folder}/pids.events")).get("max", 0)}
        mem = self.dirs["memory"]
        peak = _read(f"{mem}/memory.max_usage_in_bytes").strip()
        return {"oom_kills": _keyed(_read(f"{mem}/memory.oom_control")).get("oom_kill", 0),
                "memory_peak": int(peak) if peak.isdigit() else None,
                "process_limit_hits": _keyed(_read(f"{self.dirs['pids']}/pids.events")).get("max", 0)}

    def destroy(self) -> None:
        """Kill what is left and remove the group from every hierarchy."""
        self.kill()
        for folder in self.dirs.values():
            for _ in range(100):
                try:
                    os.rmdir(folder)
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:  # EBUSY: the last processes are still being torn down
                    if exc.errno != errno.EBUSY:
                        raise CgroupError(exc.errno, f"could not remove control group {folder}: {exc}") from exc
                    time.sleep(0.01)
            else:
                raise CgroupError(errno.EBUSY, f"control group {folder} is still busy after its processes were killed")

    def describe(self) -> dict[str, Any]:
        """What the result records of this group."""
        return {"cgroup": self.layout.version, "memory_limit": self.memory, "process_limit": self.processes,
                "cpu_cap": self.cpus or None}


def enter(procs_files: list[str]) -> None:
    """Move the calling process into the group (each ``cgroup.procs`` of it): called by the confined child
    itself, as root, before it gives up its privileges and long before any student code runs."""
    for path in procs_files:
        _write(path, 0)  # 0: the writing process itself, whatever pid namespace it is in
