"""The warm template: a process that imports the heavy libraries once, then forks one child per submission.

Started by :class:`edsgrade.grading.pool.WarmPool` with a control socket (a Unix SEQPACKET pair).
Requests (JSON, one per packet):

``{"op": "spawn", "jail": {...}, "output_limit": n}`` with one file descriptor attached (the child's
    end of its channel to the grader): fork, confine the child (:func:`sandbox.confine`), serve the
    notebook there (:mod:`edsgrade.grading.runner`); reply ``{"pid": pid}``.
``{"op": "wait", "pid": pid}``: reap that child; reply ``{"status": raw wait status}``.

The child closes the control socket before anything else, so student code can never ask the
template (which runs as root) for anything.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import sys
import traceback


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
    from . import runner, sandbox

    jail = sandbox.Jail.from_dict(request["jail"])
    if len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return {"error": "spawn needs exactly one file descriptor"}
    # Set-up failures travel on a pipe of the template's own, closed before any student code runs:
    # the notebook's channel is the student's to write on, so nothing read there can pose as one.
    failed_r, failed_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        try:
            ctl.close()
            os.close(failed_r)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            sandbox.confine(jail, fds[0], threads)  # closes every other descriptor, the report pipe too
        except BaseException:
            try:
                os.write(2, traceback.format_exc().encode())
                os.write(failed_w, traceback.format_exc(limit=3).encode()[-4000:])
            finally:
                os._exit(70)
        runner.serve(fds[0], int(request.get("output_limit", 20_000)))
        os._exit(0)
    os.close(fds[0])
    os.close(failed_w)
    with os.fdopen(failed_r, "rb") as failed:
        report = failed.read(4000)  # EOF as soon as the child is confined (or dead)
    if report:
        return {"pid": pid, "setup_error": report.decode(errors="replace")}
    return {"pid": pid}


def main() -> None:
    fd, config = int(sys.argv[1]), json.loads(sys.argv[2])
    ctl = socket.socket(fileno=fd)
    from .sandbox import die_with_parent

    die_with_parent()  # the grader gone (even by kill -9), the template and its children go too
    threads = int(config.get("threads", 1))
    os.environ.update({v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    loaded = _preload(list(config.get("preload", [])))
    from . import runner, sandbox  # noqa: F401 - loaded before any fork

    if "torch" in loaded:
        import torch
        torch.set_num_threads(threads)
    ctl.send(json.dumps({"ready": True, "loaded": loaded}).encode())
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
                _, status = os.waitpid(int(request["pid"]), 0)
                reply = {"status": status}
            else:
                reply = {"error": f"unknown request {request.get('op')!r}"}
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        ctl.send(json.dumps(reply).encode())


if __name__ == "__main__":
    main()
