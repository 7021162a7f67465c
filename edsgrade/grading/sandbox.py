"""Confine a forked process before it runs student code, and clean up after it.

Run as root (the normal case for a grading machine), a submission's process is confined with
Linux primitives only, so nothing else (no Docker) is needed:

- its own **network namespace**: no interface but a loopback that is down, so no connection to
  anything, local or remote (abstract Unix sockets of the host are out of reach too);
- its own **mount namespace** and a new root (``chroot``) built of read-only bind mounts of the
  system and Python directories, a private ``/tmp`` and ``/dev/shm``, and the submission's working
  copy: the course directory (``source/``, ``submitted/``, the gradebook, ``build/`` with hidden
  tests and reference values) and the exchange simply do not exist in there;
- an **unprivileged system user** per grading slot (``edsgrade-sbx0``, ``edsgrade-sbx1``...), so two
  submissions graded at once cannot signal or read each other, with ``no_new_privs`` set;
- **resource limits**: address space (memory), CPU time, number of processes, file size, open files,
  no core dumps. Wall-clock limits are the grader's (see :mod:`edsgrade.grading.executor`).

After the submission, every process of the slot's user is killed, so nothing it started survives.

Not root (a laptop), the same engine runs with the resource limits and a process group only; it
says so, and it must not be used for untrusted submissions.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CLONE_NEWNS, CLONE_NEWNET = 0x00020000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG = 38, 1
USER_PREFIX = "edsgrade-sbx"
HOME = "/home/student"
JAIL_ROOT = "/tmp/edsgrade-jail"  # mount point of each sandbox's private root (in its own namespace)
DEVICES = ("null", "zero", "full", "random", "urandom")
SYSTEM_DIRS = ("/usr", "/etc", "/opt")


class SandboxError(RuntimeError):
    """The sandbox could not be set up; the message says what to do."""


@dataclass
class Limits:
    """Resource limits of one submission's process tree."""

    memory: int = 4 << 30  # bytes of address space per process
    cpu_time: int = 1800  # seconds of CPU per process
    processes: int = 64  # processes and threads of the sandbox user
    file_size: int = 256 << 20  # bytes per file written
    open_files: int = 256
    tmp_size: int = 512 << 20  # bytes of the private /tmp and home (memory-backed)


@dataclass
class Jail:
    """Where and as whom a child runs. ``uid is None``: unconfined mode (resource limits only)."""

    workdir: str  # host path of the working copy
    name: str  # folder name inside the sandbox's home
    uid: int | None = None
    gid: int | None = None
    binds: list[str] = field(default_factory=list)  # extra read-only host paths (the Python environment)
    limits: Limits = field(default_factory=Limits)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Jail":
        return cls(**{**data, "limits": Limits(**data["limits"])})

    @property
    def inside(self) -> str:
        """The working copy's path as the student's code sees it."""
        return f"{HOME}/{self.name}" if self.uid is not None else self.workdir


_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _bind(host: str, root: str, writable: bool = False) -> None:
    """Bind-mount ``host`` at the same path under ``root``, read-only unless ``writable``."""
    target = root + host
    if os.path.isdir(host):
        os.makedirs(target, exist_ok=True)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).touch()
    _mount(host, target, None, MS_BIND | MS_REC)
    if not writable:
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def python_paths() -> list[str]:
    """Host directories the sandboxed interpreter needs to import libraries lazily.

    The Python environment, and edsgrade's own package directory (for ``edsgrade.authoring`` in a
    master notebook) but never the course directory around it.
    """
    package = str(Path(__file__).resolve().parents[1])
    roots = (sys.prefix, sys.base_prefix, sys.exec_prefix, package)
    # both the resolved folders and the paths as the interpreter spells them: an environment reached
    # through a link (``/srv/app/.venv -> /opt/venv``) keeps its unresolved path in ``sys.path``
    paths = {os.path.realpath(p) for p in roots} | {os.path.abspath(p) for p in roots}
    return sorted(p for p in paths if not any(p == d or p.startswith(d + "/") for d in SYSTEM_DIRS))


def _build_root(jail: Jail) -> None:
    """Mount namespace: a fresh root made of read-only system and Python directories."""
    root = JAIL_ROOT
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    os.makedirs(root, exist_ok=True)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, f"size={jail.limits.tmp_size},mode=755")
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), f"{root}/{name}")
        elif os.path.isdir(host):
            _bind(host, root)
    for host in (*SYSTEM_DIRS, *jail.binds):
        if os.path.exists(host):
            _bind(host, root)
    _bind("/proc", root, writable=True)
    if os.path.isdir("/sys"):
        _bind("/sys", root)
    os.makedirs(f"{root}/dev/shm", exist_ok=True)
    _mount("tmpfs", f"{root}/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777")
    for dev in DEVICES:
        if os.path.exists(f"/dev/{dev}"):
            _bind(f"/dev/{dev}", root, writable=True)
    for name in ("tmp", "var/tmp"):  # may exist already: the Python environment may live under /tmp
        os.makedirs(f"{root}/{name}", exist_ok=True)
        os.chmod(f"{root}/{name}", 0o1777)
    home = f"{root}{HOME}"
    os.makedirs(home, exist_ok=True)
    os.chown(home, jail.uid, jail.gid)
    os.chmod(home, 0o700)
    os.makedirs(f"{root}{jail.inside}")
    _mount(jail.workdir, f"{root}{jail.inside}", None, MS_BIND | MS_NOSUID | MS_NODEV)
    os.chroot(root)


def _set_limits(limits: Limits) -> None:
    for which, value in ((resource.RLIMIT_AS, limits.memory), (resource.RLIMIT_CPU, limits.cpu_time),
                         (resource.RLIMIT_NPROC, limits.processes), (resource.RLIMIT_FSIZE, limits.file_size),
                         (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))


def sandbox_env(jail: Jail, threads: int) -> dict[str, str]:
    """The whole environment of a sandboxed process: nothing of the grader's (no secrets) leaks in."""
    home = HOME if jail.uid is not None else jail.workdir
    env = {"HOME": home, "USER": "student", "LANG": "C.UTF-8", "TMPDIR": "/tmp" if jail.uid is not None else home,
           "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
           "MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYTHONHASHSEED": "0"}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (a grader killed with -9)."""
    if sys.platform.startswith("linux"):
        _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def confine(jail: Jail, keep_fd: int, threads: int) -> None:
    """Confine the calling (freshly forked, single-threaded) process. Irreversible."""
    os.setsid()
    if jail.uid is not None:
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWNET), "unshare")
        _build_root(jail)
        os.setgroups([])
        os.setresgid(jail.gid, jail.gid, jail.gid)
        os.setresuid(jail.uid, jail.uid, jail.uid)
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    die_with_parent()  # after the uid change, which would clear it
    os.chdir(jail.inside)
    _set_limits(jail.limits)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, keep_fd)
    os.closerange(keep_fd + 1, 1 << 16)
    os.environ.clear()
    os.environ.update(sandbox_env(jail, threads))


# --- the grader's side: users, slots, cleanup -------------------------------------------------

def can_confine() -> bool:
    """True when this process may build sandboxes (root on Linux)."""
    return sys.platform.startswith("linux") and os.geteuid() == 0


def sandbox_user(slot: int) -> tuple[int, int]:
    """The (uid, gid) of grading slot ``slot``'s system user, created if needed (root only)."""
    name = f"{USER_PREFIX}{slot}"
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        cmd = ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
               "--shell", "/usr/sbin/nologin", "--user-group", name]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 and "already exists" not in done.stderr:
            raise SandboxError(f"could not create the sandbox user {name}: {done.stderr.strip()}. "
                               "Grading needs root (useradd) to isolate submissions.")
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


class Slot:
    """One grading slot, held through a lock file so that no two graders (threads, processes,
    Dask workers on one machine) ever share a sandbox user at the same time."""

    def __init__(self, index: int, handle: Any) -> None:
        self.index, self._handle = index, handle

    def release(self) -> None:
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


def lock_dir() -> Path:
    base = Path("/run/edsgrade") if os.access("/run", os.W_OK) else Path(os.environ.get("TMPDIR", "/tmp")) / "edsgrade"
    base.mkdir(parents=True, exist_ok=True)
    return base


def acquire_slot(max_slots: int = 64, wait: float = 600) -> Slot:
    """Take the first free slot (0, 1, ...), waiting up to ``wait`` seconds if all are taken."""
    folder = lock_dir()
    deadline = time.monotonic() + wait
    while True:
        for index in range(max_slots):
            handle = open(folder / f"slot{index}.lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return Slot(index, handle)
        if time.monotonic() > deadline:
            raise SandboxError(f"no free grading slot among {max_slots} after {wait:.0f} s")
        time.sleep(0.2)


def processes_of(uid: int) -> list[int]:
    """Pids of the live processes whose real uid is ``uid``."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status") as fh:
                for line in fh:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry.name))
                        break
                    if line.startswith("State:") and "Z" in line.split()[1]:
                        break  # a zombie is already dead
        except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError):
            continue
    return pids


def kill_user(uid: int, rounds: int = 200) -> int:
    """SIGKILL every process of ``uid`` until none is left (a fork bomb included); return the count."""
    killed = 0
    for _ in range(rounds):
        pids = processes_of(uid)
        if not pids:
            return killed
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.01)
    raise SandboxError(f"processes of uid {uid} survive repeated SIGKILL: {processes_of(uid)}")


def kill_group(pid: int) -> None:
    """Unconfined mode: kill the child's process group (its session)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def prepare_workdir(workdir: Path, uid: int | None, gid: int | None) -> None:
    """Give the working copy to the slot's user (only it can read it); root-owned parents stay closed."""
    if uid is None:
        return
    os.chmod(workdir, 0o700)
    for folder, dirs, files in os.walk(workdir):
        os.chown(folder, uid, gid)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chown(path, uid, gid)


def remove_workdir(workdir: Path) -> None:
    shutil.rmtree(workdir, ignore_errors=True)
