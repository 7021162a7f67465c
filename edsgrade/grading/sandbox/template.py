"""The warm template: a process that imports the heavy libraries once, then forks one child per submission.

Started by :class:`edsgrade.grading.sandbox.pool.WarmPool` with a control socket (a Unix SEQPACKET pair).
Requests (JSON, one per packet):

``{"op": "spawn", "jail": {...}, "output_limit": n}`` with one file descriptor attached (the child's
    end of its channel to the grader): fork, confine the child (:func:`sandbox.confine`), serve the
    notebook there (:mod:`edsgrade.grading.sandbox.runner`); reply ``{"pid": pid, "init": pid of its PID
    namespace's init or null}``.
``{"op": "wait", "pid": pid}``: reap that child, then kill and reap its namespace's init (which kills
    whatever is left in the namespace); reply ``{"status": raw wait status of the child}``.

Confined, a submission gets a PID namespace of its own (:func:`_spawn_confined`): the template
unshares its *children's* PID namespace, forks the namespace's init (PID 1, which builds the other
namespaces and the jail), forks the notebook's process into the same namespace (PID 2, a child of
the template, so its exit status is the template's to read), and goes back to its own namespace.

The child closes the control socket before anything else, so student code can never ask the
template (which runs as root) for anything.
"""
from __future__ import annotations

import importlib
import json
import os
import select
import signal
import socket
import sys
import traceback

SETUP_TIMEOUT = 120  # seconds the namespace's init may take to build the jail (it copies the working copy)
#: init pid of each confined child's PID namespace, killed once the child is reaped
_inits: dict[int, int] = {}


def _preload(modules: list[str]) -> list[str]:
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception:  # not installed, or broken: the child imports it itself if it needs it
            pass
    if "matplotlib" in loaded:  # build the font cache and the inline backend once, not per child
        try:
            import matplotlib.pyplot  # noqa: F401
            import matplotlib_inline.backend_inline  # noqa: F401
        except Exception:
            pass
    return loaded


def _spawn(ctl: socket.socket, request: dict, fds: list[int], threads: int) -> dict:
    from edsgrade.grading.sandbox import runner, confinement as sandbox

    jail = sandbox.Jail.from_dict(request["jail"])
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return {"error": "spawn needs exactly one file descriptor"}
    if jail.uid is not None:
        return _spawn_confined(ctl, request, jail, fds[0], threads)
    # Set-up failures travel on a pipe of the template's own, closed once the child is confined and
    # before any student code runs: the notebook's channel is the student's to write on, so nothing
    # read there can pose as one.
    report_r, report_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(report_r)
        _child(ctl, jail, fds[0], threads, request, [], report_w)
    os.close(fds[0])
    failed = _setup_report(pid, report_r, report_w)
    return {"pid": pid, "init": None, **({"setup_error": failed} if failed else {})}


def _child(ctl: socket.socket, jail, channel: int, threads: int, request: dict, ns_fds: list[int],
           report: int) -> None:
    """The notebook's process: confine, then serve the notebook; never returns.

    A set-up failure is written on ``report``, the template's own pipe, never on the channel.
    """
    from edsgrade.grading.sandbox import runner, confinement as sandbox

    try:
        ctl.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        sandbox.confine(jail, channel, threads, ns_fds, keep=(report,))
    except BaseException:
        try:
            os.write(2, traceback.format_exc().encode())
            os.write(report, traceback.format_exc(limit=3).encode()[-4000:])
        finally:
            os._exit(70)
    os.close(report)  # confined: the template reads EOF; nothing of the student's can reach that pipe
    runner.serve(channel, int(request.get("output_limit", 20_000)))
    os._exit(0)


def _setup_report(pid: int, report_r: int, report_w: int) -> str:
    """What child ``pid`` wrote on its set-up pipe before it was confined ("" once it is confined)."""
    os.close(report_w)
    with os.fdopen(report_r, "rb") as failed:
        return failed.read(4000).decode(errors="replace")  # EOF as soon as the child is confined (or dead)


def _spawn_confined(ctl: socket.socket, request: dict, jail, channel: int, threads: int) -> dict:
    """Fork a PID namespace's init and the notebook's process inside it (see the module's docstring)."""
    from edsgrade.grading.sandbox import confinement as sandbox

    ready_r, ready_w = os.pipe()
    own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    ns_fds: list[int] = []
    init = pid = 0
    report_r = report_w = -1
    try:
        sandbox.unshare(sandbox.CLONE_NEWPID)  # the template's next children only: it stays where it is
        init = os.fork()
        if init == 0:  # PID 1 of the new namespace: never returns
            try:
                ctl.close()
                for fd in (ready_r, own, channel):
                    os.close(fd)
                sandbox.build_namespaces(jail)
                os.write(ready_w, b"ready")
            except BaseException:
                os.write(ready_w, traceback.format_exc(limit=4).encode()[-4000:])
                os._exit(70)
            try:
                sandbox.be_init()
            finally:
                os._exit(70)
        os.close(ready_w)
        ready_w = -1
        said = b""
        if select.select([ready_r], [], [], SETUP_TIMEOUT)[0]:
            said = os.read(ready_r, 8192)
        if said != b"ready":
            _kill_init(init)
            init = 0
            return {"error": "the sandbox's namespaces could not be set up: "
                             + (said.decode(errors="replace") or f"no answer within {SETUP_TIMEOUT} s")}
        ns_fds = [os.open(f"/proc/{init}/ns/{name}", os.O_RDONLY) for name in sandbox.NS_FILES]
        report_r, report_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # PID 2: the notebook's process
            os.close(ready_r)
            os.close(report_r)
            _child(ctl, jail, channel, threads, request, ns_fds, report_w)
    finally:
        try:
            sandbox.setns(own, sandbox.CLONE_NEWPID)  # back: the next child is not in this namespace
        except OSError:
            os._exit(71)  # never fork another submission into this one's namespace
        for fd in (own, ready_r, ready_w, *ns_fds):
            if fd >= 0:
                os.close(fd)
        os.close(channel)
    if not pid and init:
        for fd in (report_r, report_w):
            if fd >= 0:
                os.close(fd)
        _kill_init(init)
        return {"error": "the notebook's process could not be forked"}
    _inits[pid] = init
    failed = _setup_report(pid, report_r, report_w)
    return {"pid": pid, "init": init, **({"setup_error": failed} if failed else {})}


def _kill_init(init: int) -> None:
    """Kill a PID namespace's init (the kernel then kills every process in the namespace) and reap it."""
    try:
        os.kill(init, signal.SIGKILL)
        os.waitpid(init, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def main() -> None:
    fd, config = int(sys.argv[1]), json.loads(sys.argv[2])
    ctl = socket.socket(fileno=fd)
    from edsgrade.grading.sandbox.confinement import die_with_parent

    die_with_parent()  # the grader gone (even by kill -9), the template and its children go too
    threads = int(config.get("threads", 1))
    os.environ.update({v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    loaded = _preload(list(config.get("preload", [])))
    from edsgrade.grading.sandbox import cgroups, runner, confinement as sandbox, syscall_filter  # noqa: F401 - loaded before any fork

    seccomp = syscall_filter.prepare()  # compiled once; every confined child loads it

    if "torch" in loaded:
        import torch
        torch.set_num_threads(threads)
    ctl.send(json.dumps({"ready": True, "loaded": loaded, "seccomp": seccomp}).encode())
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(ctl, 1 << 20, 4)
        except OSError:
            return
        if not data:
            return
        try:
            request = json.loads(data)
            if request.get("op") == "spawn":
                reply = _spawn(ctl, request, fds, threads)
            elif request.get("op") == "wait":
                pid = int(request["pid"])
                _, status = os.waitpid(pid, 0)
                if pid in _inits:
                    _kill_init(_inits.pop(pid))
                reply = {"status": status}
            else:
                reply = {"error": f"unknown request {request.get('op')!r}"}
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        ctl.send(json.dumps(reply).encode())


if __name__ == "__main__":
    main()
