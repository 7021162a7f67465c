"""Confine a forked process before it runs student code, and clean up after it.

Run as root (the normal case for a grading machine), a submission is confined with Linux
primitives only, so nothing else (no Docker) is needed. Two processes are forked from the warm
template (:mod:`edsgrade.grading.sandbox.template`) into a new **PID namespace**:

- the namespace's *init* (PID 1, :func:`build_namespaces` then :func:`be_init`), which makes the
  other namespaces and the jail's root, then only reaps orphans; killing it kills the namespace;
- the notebook's process (:func:`confine`), which joins those namespaces, enters the jail and gives
  up its privileges before any student code runs.

What they share nothing of with the host or with the next submission:

- **processes**: a fresh ``/proc`` (``hidepid=invisible``) shows only the submission's own processes,
  never the grader's command line or another sandbox's;
- **network**: its own namespace, with no interface but a loopback that is down (the host's abstract
  Unix sockets are out of reach too);
- **files**: its own mount namespace and a new root (``chroot``) of read-only bind mounts of the
  system and Python directories (``/sys`` without its sub-mounts), a fresh ``/tmp``, ``/dev/shm`` and
  ``/dev/mqueue``, and the working copy *copied* onto a size-limited tmpfs: the course directory and
  the exchange do not exist in there, the host's copy is never written, and the tmpfs goes with the
  namespace (no hostile tree is ever walked on the host to clean it up);
- **IPC and host name**: its own IPC namespace (SysV shared memory, queues, semaphores, POSIX message
  queues: all gone with it) and UTS namespace; a fresh session keyring, and keyctl denied;
- **system calls**: a seccomp filter (:mod:`edsgrade.grading.sandbox.syscall_filter`);
- **resources**: one control group for the whole submission (:mod:`edsgrade.grading.sandbox.cgroups`:
  memory over all its processes, shared memory and tmpfs included, a process count, an equal CPU
  share), plus resource limits per process (CPU time, file size, open files, no core dumps; address
  space only where no cgroup bounds memory);
- an **unprivileged system user** per grading slot (``edsgrade-sbx0``, ``edsgrade-sbx1``...), with
  ``no_new_privs`` set. Wall-clock limits are the grader's (see :mod:`edsgrade.grading.sandbox.executor`).

After the submission, its control group and every process of the slot's user are killed, and the
namespace's init with them, so nothing it started survives.

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
from edsgrade.errors import EdsgradeError

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID = 0x00020000, 0x40000000, 0x20000000
CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP = 0x08000000, 0x04000000, 0x02000000
#: what the namespace's init unshares (the PID namespace is made by the template, see template._spawn_confined)
NAMESPACES = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP
#: the namespace files the notebook's process joins, in this order (mnt last: it resets the root)
NS_FILES = ("cgroup", "ipc", "uts", "net", "mnt")
KEYCTL_JOIN_SESSION_KEYRING, SYS_KEYCTL = 1, 250
HOSTNAME = "sandbox"
MS_NOEXEC = 8
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 38, 1, 4
USER_PREFIX = "edsgrade-sbx"
HOME = "/home/student"
JAIL_ROOT = "/tmp/edsgrade-jail"  # mount point of each sandbox's private root (in its own namespace)
DEVICES = ("null", "zero", "full", "random", "urandom")
SYSTEM_DIRS = ("/usr", "/etc", "/opt")


class SandboxError(EdsgradeError, RuntimeError):
    """The sandbox could not be set up; the message says what to do."""


@dataclass
class Limits:
    """Resource limits of one submission's process tree."""

    memory: int = 4 << 30  # bytes for all processes (cgroup), else of address space per process (rlimit)
    cpu_time: int = 1800  # seconds of CPU per process
    processes: int = 64  # processes and threads of the submission
    file_size: int = 256 << 20  # bytes per file written
    open_files: int = 256
    tmp_size: int = 512 << 20  # bytes of the private /tmp, /var/tmp and home (memory-backed)
    disk: int = 1 << 30  # bytes the notebook may add to its working copy (memory-backed)
    files: int = 100_000  # files and folders it may add to its working copy


@dataclass
class Jail:
    """Where and as whom a child runs. ``uid is None``: unconfined mode (resource limits only)."""

    workdir: str  # host path of the working copy
    name: str  # folder name inside the sandbox's home
    uid: int | None = None
    gid: int | None = None
    binds: list[str] = field(default_factory=list)  # extra read-only host paths (the Python environment)
    limits: Limits = field(default_factory=Limits)
    cgroup: list[str] = field(default_factory=list)  # cgroup.procs files to enter (empty: no cgroup)
    seccomp: bool = False  # install the seccomp filter (fail closed when true)

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


def _bind(host: str, root: str, writable: bool = False, recursive: bool = True) -> None:
    """Bind-mount ``host`` at the same path under ``root``, read-only unless ``writable``."""
    target = root + host
    if os.path.isdir(host):
        os.makedirs(target, exist_ok=True)
    else:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).touch()
    _mount(host, target, None, MS_BIND | (MS_REC if recursive else 0))
    if not writable:
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def python_paths() -> list[str]:
    """Host directories the sandboxed interpreter needs to import libraries lazily.

    The Python environment, and edsgrade's own package directory (for ``edsgrade.authoring`` in a
    master notebook) but never the course directory around it.
    """
    package = str(Path(__file__).resolve().parents[2])
    roots = (sys.prefix, sys.base_prefix, sys.exec_prefix, package)
    # both the resolved folders and the paths as the interpreter spells them: an environment reached
    # through a link (``/srv/app/.venv -> /opt/venv``) keeps its unresolved path in ``sys.path``
    paths = {os.path.realpath(p) for p in roots} | {os.path.abspath(p) for p in roots}
    return sorted(p for p in paths if not any(p == d or p.startswith(d + "/") for d in SYSTEM_DIRS))


PAGE = 4096


def _tree_size(top: str) -> tuple[int, int]:
    """(bytes in whole pages, entries) of the working copy ``top``, walked without recursion or links."""
    used, count, stack = 0, 0, [top]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                count += 1
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    used += PAGE
                elif entry.is_file(follow_symlinks=False):
                    used += -(-entry.stat(follow_symlinks=False).st_size // PAGE) * PAGE
    return used, count


def _copy_tree(src: str, dest: str, uid: int, gid: int) -> None:
    """Copy the (grader-made) working copy into the jail: folders and regular files only, no link followed,
    modes without set-id bits, modification times kept (the judge tells the run's files by their age)."""
    stack = [(src, dest)]
    while stack:
        here, there = stack.pop()
        with os.scandir(here) as entries:
            for entry in entries:
                target = os.path.join(there, entry.name)
                st = entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    os.mkdir(target, 0o700)
                    stack.append((entry.path, target))
                elif entry.is_file(follow_symlinks=False):
                    shutil.copyfile(entry.path, target, follow_symlinks=False)
                else:
                    continue
                os.chown(target, uid, gid, follow_symlinks=False)
                os.chmod(target, (st.st_mode & 0o777) | 0o600 | (0o100 if entry.is_dir(follow_symlinks=False) else 0))
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _build_root(jail: Jail) -> None:
    """Mount namespace: a fresh root made of read-only system and Python directories (run by the
    namespace's init, which is in the new PID and IPC namespaces, so ``/proc`` and ``/dev/mqueue``
    mounted here are the sandbox's own)."""
    root = JAIL_ROOT
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    os.makedirs(root, exist_ok=True)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, f"size={jail.limits.tmp_size},nr_inodes=50000,mode=755")
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), f"{root}/{name}")
        elif os.path.isdir(host):
            _bind(host, root)
    for host in (*SYSTEM_DIRS, *jail.binds):
        if os.path.exists(host):
            _bind(host, root)
    os.makedirs(f"{root}/proc")
    _mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
    if os.path.isdir("/sys"):
        _bind("/sys", root, recursive=False)  # not its sub-mounts (the host's cgroups, debugfs...)
    os.makedirs(f"{root}/dev/shm", exist_ok=True)
    _mount("tmpfs", f"{root}/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"size={jail.limits.memory},mode=1777")
    os.makedirs(f"{root}/dev/mqueue", exist_ok=True)
    _mount("mqueue", f"{root}/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
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
    work = f"{root}{jail.inside}"
    os.makedirs(work)
    used, count = _tree_size(jail.workdir)
    _mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={used + jail.limits.disk},nr_inodes={count + jail.limits.files},mode=700,"
           f"uid={jail.uid},gid={jail.gid}")
    _copy_tree(jail.workdir, work, jail.uid, jail.gid)


def _set_limits(limits: Limits, cgroup: bool) -> None:
    # With a control group the memory limit is the cgroup's, over all the processes: the address space
    # stays unlimited (some libraries reserve far more virtual memory than they use).
    address_space = resource.RLIM_INFINITY if cgroup else limits.memory
    for which, value in ((resource.RLIMIT_AS, address_space), (resource.RLIMIT_CPU, limits.cpu_time),
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


def unshare(flags: int) -> None:
    """``unshare(2)`` (``os.unshare`` exists from Python 3.12 only)."""
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    """``setns(2)`` (``os.setns`` exists from Python 3.12 only)."""
    _check(_libc.setns(fd, nstype), "setns")


def _null_stdio() -> None:
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def build_namespaces(jail: Jail) -> None:
    """In the namespace's init (PID 1 of a fresh PID namespace, still root): enter the submission's control
    group, make its mount, network, IPC, UTS and cgroup namespaces and the jail's root, then chroot there."""
    from edsgrade.grading.sandbox import cgroups

    cgroups.enter(jail.cgroup)
    unshare(NAMESPACES)
    name = HOSTNAME.encode()
    _check(_libc.sethostname(name, len(name)), "sethostname")
    _build_root(jail)
    os.chroot(JAIL_ROOT)
    os.chdir("/")


def be_init() -> None:
    """The namespace's init after :func:`build_namespaces`: hold the namespaces, reap orphans, never return.

    It keeps root (so ``hidepid`` hides it from the submission, which cannot signal it either), is never
    the out-of-memory killer's choice, and dies with the template; when it is killed, the kernel kills
    every process of the namespace.
    """
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # orphans are reaped by the kernel as they exit
    _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    try:
        with open("/proc/self/oom_score_adj", "w") as fh:
            fh.write("-1000")
    except OSError:
        pass
    die_with_parent()
    _null_stdio()
    os.closerange(3, 1 << 16)
    while True:
        signal.pause()


def confine(jail: Jail, keep_fd: int, threads: int, ns_fds: list[int] | None = None,
            keep: tuple[int, ...] = ()) -> None:
    """Confine the calling (freshly forked, single-threaded) process. Irreversible.

    Every descriptor but ``keep_fd`` (the channel) and ``keep`` (the template's set-up pipe, which
    the caller closes once this returns) is closed.

    Confined (``jail.uid`` set), the process is in the sandbox's PID namespace already and ``ns_fds`` are
    the namespace files of its init (:data:`NS_FILES` order): it enters the control group, joins the
    namespaces and the jail, takes a fresh session keyring, becomes the slot's user, and installs the
    seccomp filter last.
    """
    os.setsid()
    if jail.uid is not None:
        from edsgrade.grading.sandbox import cgroups, syscall_filter

        cgroups.enter(jail.cgroup)
        for fd in ns_fds or []:
            setns(fd)
        os.chroot(JAIL_ROOT)
        os.chdir("/")
        os.setgroups([])
        os.setresgid(jail.gid, jail.gid, jail.gid)
        os.setresuid(jail.uid, jail.uid, jail.uid)
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
        if _libc.syscall(SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, None) < 0:  # the template's keyring left behind
            _check(-1, "keyctl(join_session_keyring)")
    die_with_parent()  # after the uid change, which would clear it
    os.chdir(jail.inside)
    _set_limits(jail.limits, cgroup=bool(jail.cgroup))
    _null_stdio()
    low = 3
    for fd in sorted({keep_fd, *keep}):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)
    os.environ.clear()
    os.environ.update(sandbox_env(jail, threads))
    if jail.uid is not None and jail.seccomp:
        syscall_filter.install()


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


def acquire_slot(max_slots: int = 64, wait: float = 600, first: int = 0) -> Slot:
    """Take the first free slot (``first``, ``first + 1``, ...), waiting up to ``wait`` seconds if all are taken."""
    folder = lock_dir()
    deadline = time.monotonic() + wait
    while True:
        for index in range(first, max_slots):
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
    """Close the host's working copy to everyone but root.

    Confined, the sandbox works on a copy of it made inside the jail (see :func:`_build_root`), so the
    slot's user never owns, writes or fills the host's folder; unconfined, the notebook runs in it.
    """
    os.chmod(workdir, 0o700)
