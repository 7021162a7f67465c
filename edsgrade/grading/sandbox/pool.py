"""The warm pool: one pre-loaded template process per grading process, forking a child per submission.

The heavy imports (numpy, pandas, scikit-learn, matplotlib, obspy, torch...) are paid once when
the pool starts; each submission then gets a fresh interpreter, forked from the template and
confined (:mod:`edsgrade.grading.sandbox.confinement`), in a few milliseconds.
"""
from __future__ import annotations

import ast
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterable

from edsgrade.grading.sandbox.confinement import Jail, SandboxError

#: libraries worth importing once in the template when a notebook uses them
HEAVY = ("numpy", "pandas", "scipy", "sklearn", "matplotlib", "seaborn", "obspy", "laspy", "torch", "torchvision")
#: always loaded: the grader's own plain-data codec uses them
ALWAYS = ("numpy", "pandas")


def imported_modules(sources: Iterable[str]) -> set[str]:
    """Top-level modules imported by code cells (cells that do not parse are skipped)."""
    found: set[str] = set()
    for source in sources:
        lines = [l for l in source.splitlines() if not l.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def preload_for(sources: Iterable[str]) -> list[str]:
    """What the template should import for notebooks made of ``sources``: the heavy modules they use."""
    used = imported_modules(sources)
    return [m for m in HEAVY if m in used or m in ALWAYS]


class WarmPool:
    """A template process that forks sandboxed notebook processes on request.

    Parameters
    ----------
    preload:
        Modules to import in the template.
    threads:
        Threads each sandboxed process may use for numerical libraries (BLAS, OpenMP, torch).
    startup_timeout:
        Seconds allowed for the template's imports.
    """

    def __init__(self, preload: Iterable[str] = ALWAYS, threads: int = 1, startup_timeout: float = 300) -> None:
        self.preload, self.threads = list(preload), threads
        self._lock = threading.Lock()
        self._log = tempfile.NamedTemporaryFile(prefix="edsgrade-template-", suffix=".log", delete=False)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = json.dumps({"preload": self.preload, "threads": threads})
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TZ")}
        # The grader's own package, never a copy in the current folder: ``-P`` keeps the working directory
        # off ``sys.path`` (``-m`` would put it first), and PYTHONPATH names this package's parent folder.
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
        self._proc = subprocess.Popen([sys.executable, "-P", "-m", "edsgrade.grading.sandbox.template", str(theirs.fileno()),
                                       config],
                                      pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                      stdout=self._log, stderr=self._log, env=env)
        theirs.close()
        self._ctl = ours
        if not select.select([ours], [], [], startup_timeout)[0]:
            self.close()
            raise SandboxError(f"the warm template did not start within {startup_timeout:.0f} s; log: {self._log.name}")
        ready = self._ctl.recv(1 << 16)
        if not ready:
            self.close()
            raise SandboxError(f"the warm template failed to start: {self.log_tail()}")
        hello = json.loads(ready)
        self.loaded: list[str] = hello.get("loaded", [])
        #: the template compiled the seccomp filter: every confined child installs it (or fails to start)
        self.seccomp: bool = bool(hello.get("seccomp"))
        self._inits: dict[int, int] = {}

    def log_tail(self) -> str:
        try:
            return Path(self._log.name).read_text()[-2000:]
        except OSError:
            return ""

    def _request(self, message: dict, fds: list[int] | None = None) -> dict:
        with self._lock:
            if self._proc.poll() is not None:
                raise SandboxError(f"the warm template has exited: {self.log_tail()}")
            data = json.dumps(message).encode()
            if fds:
                socket.send_fds(self._ctl, [data], fds)
            else:
                self._ctl.send(data)
            reply = self._ctl.recv(1 << 16)
        if not reply:
            raise SandboxError(f"the warm template has exited: {self.log_tail()}")
        answer = json.loads(reply)
        if "error" in answer:
            raise SandboxError(f"the warm template refused a request: {answer['error']}")
        return answer

    def spawn(self, jail: Jail, output_limit: int) -> tuple[int, socket.socket]:
        """Fork a confined child serving a notebook; return its pid and the grader's end of its channel.

        Confined, the child is PID 2 of a PID namespace of its own whose init is :meth:`init_of` it.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            reply = self._request({"op": "spawn", "jail": jail.to_dict(), "output_limit": output_limit},
                                  [theirs.fileno()])
        finally:
            theirs.close()
        pid = int(reply["pid"])
        if reply.get("init"):
            self._inits[pid] = int(reply["init"])
        if "setup_error" in reply:  # from the template's own pipe, before any student code ran
            ours.close()
            try:
                self.wait(pid)  # the child, and its namespace's init
            finally:
                raise SandboxError(f"the sandbox could not be set up: {str(reply['setup_error'])[-500:]}")
        return pid, ours

    def init_of(self, pid: int) -> int | None:
        """The pid (in the grader's namespace) of child ``pid``'s PID-namespace init, if it has one."""
        return self._inits.get(pid)

    def wait(self, pid: int) -> int:
        """Reap child ``pid`` (already dead or killed), kill its namespace, and return its raw wait status."""
        try:
            return int(self._request({"op": "wait", "pid": pid})["status"])
        finally:
            self._inits.pop(pid, None)

    def close(self) -> None:
        """Stop the template (its children are the caller's to kill)."""
        try:
            self._ctl.close()
        finally:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._log.close()
            os.unlink(self._log.name)

    def __enter__(self) -> "WarmPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
