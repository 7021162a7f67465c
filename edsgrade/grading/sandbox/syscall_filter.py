"""The sandbox's seccomp filter: system calls that grading never needs fail with ``EPERM``.

A notebook needs files, memory, threads, processes, pipes and signals; it never needs to trace
another process, load a BPF program or a kernel module, use io_uring, reach the kernel keyrings,
mount anything, make namespaces, or enter the kernel through the 32-bit (ia32, ``int 0x80``) or
x32 system-call tables (each a way around a filter written for the native table). Those calls
fail with ``EPERM`` rather than killing the process, so a library that probes for them (io_uring,
``personality``, ``clone3``) falls back cleanly; ``clone3`` answers ``ENOSYS`` so that the C library
falls back to ``clone``, whose namespace flags the filter can see (``clone3`` passes them in memory,
where seccomp cannot look).

The filter is compiled by libseccomp (through ``pyseccomp``, ctypes bindings to the system's
``libseccomp.so.2``): it knows each architecture's system-call numbers and emits the architecture
check, which a hand-written BPF program would have to get right by itself.
"""
from __future__ import annotations

import errno
from typing import Any

#: denied with EPERM, whatever their arguments
DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd",
    "bpf", "perf_event_open", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key",
    "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr", "quotactl", "quotactl_fd",
    "unshare", "setns",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "swapon", "swapoff", "reboot", "acct", "userfaultfd", "lookup_dcookie", "syslog",
    "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm", "uselib", "vhangup",
)
#: the namespace flags of clone(2) (CLONE_NEWTIME, 0x80, exists for clone3 and unshare only)
CLONE_NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)


def available() -> bool:
    """True when libseccomp can be loaded here (the filter is then always installed)."""
    try:
        import pyseccomp  # noqa: F401
        pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    except Exception:  # no libseccomp.so.2 on this host, or an unusable one
        return False
    return True


def build() -> Any:
    """The filter, not loaded yet (a ``pyseccomp.SyscallFilter``)."""
    import pyseccomp as sc

    eperm = sc.ERRNO(errno.EPERM)
    flt = sc.SyscallFilter(sc.ALLOW)
    # Only the native architecture: a 32-bit (ia32) or x32 system call fails with EPERM.
    flt.set_attr(sc.Attr.ACT_BADARCH, eperm)
    for name in DENIED:
        try:
            flt.add_rule(eperm, name)
        except OSError:
            continue  # not a system call of this architecture (iopl on arm64, for instance)
    flt.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    for flag in CLONE_NAMESPACE_FLAGS:
        flt.add_rule(eperm, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # personality(2): PER_LINUX only. libseccomp takes one comparison per argument and rule, so the
    # query (0xffffffff) is refused as well; nothing a notebook runs asks for it.
    flt.add_rule(eperm, "personality", sc.Arg(0, sc.NE, 0))
    return flt


_built: Any = None


def prepare() -> bool:
    """Compile the filter once (in the warm template, before it forks); True when it is available."""
    global _built
    if _built is None and available():
        _built = build()
    return _built is not None


def install() -> None:
    """Load the filter into the calling process (and every process it starts). Irreversible.

    Needs ``no_new_privs`` set (the sandbox sets it) or root. Raises if the filter cannot be loaded:
    the sandbox never runs student code without it once :func:`available` said yes.
    """
    (_built if _built is not None else build()).load()
