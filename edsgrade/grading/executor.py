"""Run one notebook in a sandboxed process, one cell at a time, and stop at its checkpoints.

:class:`SandboxExecutor` forks a confined interpreter from the warm pool for each notebook, sends
it the cells, enforces the wall-clock limits (per cell and per notebook), and at every checkpoint
(a question's test cell) hands a :class:`Session` to the caller, who captures plain values and
calls the student's functions through it, *outside* the student's process. Whatever the notebook
does (loop, crash, exhaust a limit, flood the output, exit), :meth:`SandboxExecutor.execute`
returns an :class:`Execution` saying what happened, and no process of the notebook survives it.
"""
from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import nbformat

from .. import plaindata
from . import cgroups, protocol, sandbox
from .pool import WarmPool
from .sandbox import Jail, Limits
from ..errors import EdsgradeError

NOTEBOOK_TIMEOUT = "NotebookTimeout"
INTERRUPT_GRACE = 5.0  # seconds a timed-out cell gets to stop after SIGINT before it is killed

#: what a cell error says about which limit was hit
LIMIT_ERRORS = {"MemoryError": "memory", "BlockingIOError": "processes"}


@dataclass
class CellProblem:
    """Something that went wrong in one cell (``cell`` = -1: outside any cell)."""

    cell: int
    kind: str  # error | timeout | died | limit
    ename: str = ""
    evalue: str = ""

    def describe(self) -> str:
        if self.kind == "timeout" and self.ename == NOTEBOOK_TIMEOUT:
            return f"cell {self.cell} and the cells after it were not run: {self.evalue}"
        if self.kind == "timeout":
            return f"cell {self.cell} did not finish within the time limit ({self.evalue})"
        if self.kind == "died":
            return f"the notebook's Python process stopped while running cell {self.cell}: {self.evalue}"
        if self.kind == "limit":
            return f"cell {self.cell} hit the sandbox's {self.ename} limit: {self.evalue}"
        if self.ename == "NotImplementedError" and not self.evalue:
            return f"cell {self.cell} is not answered yet (it still raises NotImplementedError)"
        return f"cell {self.cell} raised {self.ename}: {self.evalue}"


@dataclass
class Execution:
    """What executing one notebook produced."""

    notebook: nbformat.NotebookNode
    checkpoints: dict[str, Any] = field(default_factory=dict)  # grade_id -> what on_checkpoint returned
    problems: list[CellProblem] = field(default_factory=list)
    status: str = "completed"  # completed | timeout | died | failed
    limits_hit: list[str] = field(default_factory=list)  # cell-time, notebook-time, memory, cpu-time, ...
    seconds: float = 0.0  # wall time of the student's cells (checkpoints excluded)
    sandboxed: bool = True
    isolation: dict[str, Any] = field(default_factory=dict)  # what confined this run (see SandboxExecutor)
    resources: dict[str, Any] = field(default_factory=dict)  # what the kernel counted (cgroup), if anything

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "seconds": round(self.seconds, 2), "limits_hit": self.limits_hit,
                "sandboxed": self.sandboxed, "problems": [asdict(p) for p in self.problems],
                "isolation": self.isolation, "resources": self.resources}


class SessionGone(EdsgradeError, RuntimeError):
    """The sandboxed process is no longer available (dead, killed, or out of time)."""


class ChannelBroken(SessionGone):
    """The sandboxed process sent something that is not a reply within the grader's bounds (a
    :class:`protocol.ProtocolError`, in ``__cause__``): it is stopped, and its result says why."""


class Session:
    """The grader's handle on one sandboxed notebook process."""

    def __init__(self, pid: int, sock: socket.socket, jail: Jail, max_bytes: int, call_timeout: float,
                 value_limit: int = plaindata.Limits.value_bytes) -> None:
        self.pid, self.sock, self.jail = pid, sock, jail
        self.max_bytes, self.call_timeout = max_bytes, call_timeout
        self.bounds = protocol.Bounds(total=max_bytes, json=min(max_bytes, protocol.Bounds.json))
        #: what the sandbox may put in one capture or call reply (it marks bigger values "too large")
        self.limits = {"value_bytes": value_limit, "reply_bytes": max_bytes - (1 << 20),
                       "reply_items": self.bounds.values * 3 // 4, "reply_text": self.bounds.json - (4 << 20)}
        self.frames: list[Any] = []  # the arrays attached to the last reply
        self.broken: protocol.ProtocolError | None = None  # why the channel was given up, if it was
        self.alive = True
        self.ended: str = ""  # why the process stopped, when it did
        self.progress: Execution | None = None  # the execution so far, set by the executor
        self.checkpoints: dict[int, str] = {}
        self.at = 0  # index of the cell being run or checked
        self.started: float | None = None  # wall-clock time the first cell was sent
        #: where the grader reads the working copy: confined, the jail's copy, seen through its init's root
        self.workdir: str = jail.workdir
        self.cgroup: cgroups.SubmissionCgroup | None = None
        self.full: set[str] = set()  # the sandbox's file systems found full (working copy, /tmp)

    def request(self, message: dict[str, Any], timeout: float, arrays: list[Any] | tuple = ()) -> dict[str, Any]:
        """Send ``message`` (and ``arrays`` as attachments); return the reply, its arrays in :attr:`frames`.

        On timeout, interrupt, then kill, and raise :class:`SessionGone`. A reply that arrives within
        the grace period after the interrupt is returned with ``"timed_out": True``. A reply over
        the bounds or malformed raises :class:`ChannelBroken` (the process is then stopped).
        """
        if not self.alive:
            raise SessionGone(self.ended or "the notebook's process is gone")
        self.frames = []
        try:
            protocol.send(self.sock, message, arrays)
            reply, self.frames = protocol.receive_message(self.sock, self.bounds, timeout=timeout)
            return reply
        except protocol.ChannelTimeout:
            pass
        except (protocol.ChannelClosed, OSError) as exc:
            self.alive = False
            raise SessionGone("the notebook's process died") from exc
        except protocol.ProtocolError as exc:
            self._broke(exc)
        try:
            os.kill(self.pid, signal.SIGINT)
            reply, self.frames = protocol.receive_message(self.sock, self.bounds, timeout=INTERRUPT_GRACE)
            reply["timed_out"] = True
            return reply
        except protocol.ProtocolError as exc:
            self._broke(exc)
        except (OSError, protocol.ChannelTimeout, protocol.ChannelClosed):
            self.alive = False
            self.ended = f"no answer within {timeout:.0f} s, even after an interrupt: stopped"
            raise SessionGone(self.ended) from None

    def _broke(self, exc: protocol.ProtocolError) -> None:
        self.alive = False
        self.broken = exc
        self.ended = str(exc)
        raise ChannelBroken(self.ended) from exc

    def capture(self, names: list[str]) -> dict[str, Any]:
        """The plain-data encodings of ``names`` in the notebook's namespace (arrays bound to each)."""
        reply = self.request({"op": "capture", "names": names, "limits": self.limits}, self.call_timeout)
        values = reply.get("values")
        if not isinstance(values, dict) or reply.get("timed_out"):
            raise SessionGone("the notebook's process did not return its values")
        return {str(n): plaindata.bind_frames(v, self.frames) for n, v in values.items()}

    def call(self, name: str, path: list[list[Any]], args: Any, kwargs: Any, call: bool = True,
             arrays: list[Any] | tuple = ()) -> dict[str, Any]:
        """Resolve ``name`` and ``path`` in the notebook, call it with encoded arguments (their arrays in
        ``arrays``); the raw reply, its ``value`` bound to the arrays that came with it."""
        reply = self.request({"op": "call", "name": name, "path": path, "args": args, "kwargs": kwargs,
                              "call": call, "limits": self.limits}, self.call_timeout, arrays)
        if "value" in reply:
            reply["value"] = plaindata.bind_frames(reply["value"], self.frames)
        return reply


def _text(value: Any, limit: int = 100_000) -> str:
    return value[:limit] if isinstance(value, str) else ""


def clean_outputs(items: Any) -> list[nbformat.NotebookNode]:
    """nbformat outputs rebuilt from what the sandbox sent, keeping only well-formed fields."""
    outputs: list[nbformat.NotebookNode] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        kind = item.get("output_type")
        if kind == "stream" and item.get("name") in ("stdout", "stderr"):
            outputs.append(nbformat.v4.new_output("stream", name=item["name"], text=_text(item.get("text"), 1 << 22)))
        elif kind in ("display_data", "execute_result") and isinstance(item.get("data"), dict):
            data = {k: v for k, v in item["data"].items()
                    if isinstance(k, str) and "/" in k and isinstance(v, (str, dict, list))}
            extra = {"execution_count": item["execution_count"]} if kind == "execute_result" and isinstance(
                item.get("execution_count"), int) else ({"execution_count": None} if kind == "execute_result" else {})
            meta = item.get("metadata") if isinstance(item.get("metadata"), dict) else {}
            outputs.append(nbformat.v4.new_output(kind, data=data, metadata=meta, **extra))
        elif kind == "error":
            trace = [_text(t, 5000) for t in item.get("traceback", []) if isinstance(t, str)][:50]
            outputs.append(nbformat.v4.new_output("error", ename=_text(item.get("ename"), 200),
                                                  evalue=_text(item.get("evalue"), 2000), traceback=trace))
    return outputs


def _full(path: str) -> bool:
    """True when the (size-limited) file system at ``path`` has (almost) no room left."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < max(1 << 20, st.f_blocks * st.f_frsize // 100) or (
        st.f_files > 0 and st.f_favail < max(16, st.f_files // 100))


def describe_status(status: int) -> tuple[str, str]:
    """(limit or "", sentence) for a child's raw wait status."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        if sig == signal.SIGXCPU:
            return "cpu-time", "it used up its CPU-time limit (SIGXCPU)"
        if sig == signal.SIGXFSZ:
            return "file-size", "it wrote a file larger than the limit (SIGXFSZ)"
        if sig == signal.SIGSEGV:
            return "", "it crashed (segmentation fault, SIGSEGV)"
        return "", f"it was killed by signal {name}"
    if os.WIFEXITED(status):
        return "", f"it exited with code {os.WEXITSTATUS(status)} (os._exit or a crash)"
    return "", f"it stopped (status {status})"


class SandboxExecutor:
    """Execute notebooks in sandboxed processes forked from a warm pool.

    Parameters
    ----------
    pool:
        The :class:`WarmPool` to fork from (shared by every submission of a grading run).
    cell_timeout, timeout:
        Wall-clock limits in seconds for one cell, and for all the cells of a notebook.
    limits:
        Resource limits (memory, CPU time, processes, file size, open files).
    output_limit:
        Characters of text output kept per cell.
    max_message:
        Largest reply accepted from a sandbox, in bytes (captured values included).
    value_limit:
        Largest captured value (or value returned through the proxy), in bytes: a bigger one is not
        sent and its case fails saying its size.
    confine:
        Use the full sandbox (namespaces, own root, unprivileged user); default: when running as root.
    """

    def __init__(self, pool: WarmPool, *, cell_timeout: float = 120, timeout: float = 900,
                 limits: Limits | None = None, output_limit: int = 20_000, max_message: int = 512 << 20,
                 value_limit: int = 256 << 20, confine: bool | None = None) -> None:
        self.pool = pool
        self.cell_timeout, self.timeout = cell_timeout, timeout
        self.limits = limits or Limits()
        self.output_limit, self.max_message, self.value_limit = output_limit, max_message, value_limit
        self.confine = sandbox.can_confine() if confine is None else confine
        if self.confine and not sandbox.can_confine():
            raise sandbox.SandboxError("the sandbox needs root on Linux (namespaces, chroot, a system user per slot); "
                                       "run the grader as root, or turn confinement off for trusted notebooks only")
        self.cgroups = cgroups.detect() if self.confine else None

    def isolation(self) -> dict[str, Any]:
        """What confines each submission run by this executor (recorded in every result)."""
        if not self.confine:
            return {"sandboxed": False, "memory": "rlimit (address space per process)", "processes": "rlimit",
                    "seccomp": False, "cgroup": None, "pid_ns": False}
        version = self.cgroups.version if self.cgroups else None
        return {"sandboxed": True, "pid_ns": True, "fresh_proc": True, "mount_ns": True, "net_ns": True,
                "ipc_ns": True, "uts_ns": True, "cgroup_ns": True, "session_keyring": "fresh",
                "seccomp": self.pool.seccomp, "cgroup": version,
                "memory": "cgroup (all processes, shared memory and tmpfs)" if version else
                          "rlimit (address space per process)",
                "processes": "cgroup + rlimit" if version else "rlimit (per user)",
                "cpu": f"equal share, at most {max(1, self.pool.threads)} core(s)" if version else "not shared out",
                "disk": self.limits.disk, "tmp": self.limits.tmp_size}

    def execute(self, nb: nbformat.NotebookNode, workdir: Path, checkpoints: dict[int, str],
                on_checkpoint: Callable[[str, Session], Any]) -> Execution:
        """Run ``nb``'s code cells in ``workdir``; at each index of ``checkpoints``, call ``on_checkpoint``.

        Checkpoint cells are not run; ``on_checkpoint(grade_id, session)`` is called there instead
        and its return value stored in :attr:`Execution.checkpoints`. Never raises for anything
        the notebook does.
        """
        result = Execution(nb, sandboxed=self.confine, isolation=self.isolation())
        slot = sandbox.acquire_slot() if self.confine else None
        uid = gid = None
        group: cgroups.SubmissionCgroup | None = None
        try:
            if slot is not None:
                uid, gid = sandbox.sandbox_user(slot.index)
                sandbox.kill_user(uid)  # anything a crashed earlier run may have left
                if self.cgroups is not None:
                    group = cgroups.SubmissionCgroup(self.cgroups, f"edsgrade-slot{slot.index}", self.limits.memory,
                                                     self.limits.processes + 1, float(max(1, self.pool.threads)))
                    group.create()  # (replaces a left-over one of a crashed run)
            sandbox.prepare_workdir(workdir, uid, gid)
            jail = Jail(str(workdir), workdir.name, uid, gid, sandbox.python_paths(), self.limits,
                        cgroup=group.procs_files() if group else [], seccomp=self.confine and self.pool.seccomp)
            pid, sock = self.pool.spawn(jail, self.output_limit)
            session = Session(pid, sock, jail, self.max_message, self.cell_timeout, self.value_limit)
            session.cgroup = group
            init = self.pool.init_of(pid)
            if init:
                session.workdir = f"/proc/{init}/root{jail.inside}"
            try:
                self._run(nb, session, checkpoints, on_checkpoint, result)
            finally:
                self._end(session, result)
        except (sandbox.SandboxError, cgroups.CgroupError) as exc:
            result.status = "failed"
            result.problems.append(CellProblem(-1, "died", "SandboxError", str(exc)))
        finally:
            try:
                if group is not None:
                    group.destroy()
            finally:
                if slot is not None:
                    slot.release()
        return result

    def _check_disk(self, session: Session, index: int, result: Execution) -> None:
        """Record (once per file system) that the notebook filled its working copy or its /tmp."""
        init = self.pool.init_of(session.pid)
        if not init:
            return
        for name, path, size in (("working copy", session.workdir, self.limits.disk),
                                 ("/tmp", f"/proc/{init}/root/tmp", self.limits.tmp_size)):
            if name not in session.full and _full(path):
                session.full.add(name)
                if "disk" not in result.limits_hit:
                    result.limits_hit.append("disk")
                result.problems.append(CellProblem(index, "limit", "disk",
                                                   f"its {name} is full (the limit is {size >> 20} MiB of files "
                                                   "written); further writes failed with 'No space left on device'"))

    def _run(self, nb: nbformat.NotebookNode, session: Session, checkpoints: dict[int, str],
             on_checkpoint: Callable[[str, Session], Any], result: Execution) -> None:
        # The judge's view of the run so far (edsgrade.grading.context.RunInfo reads it at a checkpoint).
        session.progress, session.checkpoints = result, checkpoints
        session.started = time.time() - 1.0  # files older than this were not written by the run (1 s: clock granularity)
        stopped = False  # past a notebook time limit or a dead process: no more cells, checkpoints still judged
        for index, cell in enumerate(nb.cells):
            session.at = index
            if index in checkpoints:
                try:
                    result.checkpoints[checkpoints[index]] = on_checkpoint(checkpoints[index], session)
                except SessionGone:
                    if not stopped:
                        raise
                    # a caller that needs the live process: this checkpoint stays unjudged
            elif cell.cell_type == "code" and cell.source.strip() and not stopped:
                remaining = self.timeout - result.seconds
                if remaining <= 0:
                    result.status = "timeout"
                    result.limits_hit.append("notebook-time")
                    result.problems.append(CellProblem(index, "timeout", NOTEBOOK_TIMEOUT,
                                                       f"the notebook reached its {self.timeout:g} s limit"))
                    stopped = True
                    continue
                started = time.monotonic()
                try:
                    self._run_cell(session, cell, index, min(self.cell_timeout, remaining), result)
                finally:
                    result.seconds += time.monotonic() - started
            if not session.alive:
                stopped = True

    def _run_cell(self, session: Session, cell: Any, index: int, limit: float, result: Execution) -> None:
        try:
            reply = session.request({"op": "run", "source": cell.source}, limit)
        except SessionGone as exc:
            cell.outputs = []
            if isinstance(exc, ChannelBroken):  # recorded by _end, with what the process sent
                result.status = "died"
                return
            if "no answer within" in str(exc):
                result.status = "timeout"
                result.limits_hit.append("cell-time")
                result.problems.append(CellProblem(index, "timeout", "TimeoutError",
                                                   f"{limit:.0f} s; it ignored the interrupt and was stopped"))
            elif str(exc).startswith("output limit"):
                result.status = "died"
                result.limits_hit.append("output")
                result.problems.append(CellProblem(index, "limit", "output", str(exc)))
            else:
                result.status = "died"
                result.problems.append(CellProblem(index, "died", "", ""))
            return
        if "fatal" in reply:
            session.alive = False
            raise sandbox.SandboxError(f"the sandbox could not be set up: {str(reply['fatal'])[-500:]}")
        self._check_disk(session, index, result)
        cell.outputs = clean_outputs(reply.get("outputs"))
        if isinstance(reply.get("execution_count"), int):
            cell.execution_count = reply["execution_count"]
        if reply.get("truncated") and "output" not in result.limits_hit:
            result.limits_hit.append("output")
        if reply.get("timed_out"):
            result.limits_hit.append("cell-time")
            result.problems.append(CellProblem(index, "timeout", "TimeoutError", f"{limit:.0f} s; it was interrupted"))
            return
        error = reply.get("error")
        if isinstance(error, dict):
            ename, evalue = _text(error.get("ename"), 200), _text(error.get("evalue"), 2000)
            limit_name = LIMIT_ERRORS.get(ename) or ("file-size" if "File too large" in evalue else "")
            if limit_name:
                result.limits_hit.append(limit_name)
                result.problems.append(CellProblem(index, "limit", limit_name, f"{ename}: {evalue}"))
            else:
                result.problems.append(CellProblem(index, "error", ename, evalue))

    def _end(self, session: Session, result: Execution) -> None:
        """Kill everything the notebook started, reap it, and record how it ended if it died."""
        was_alive = session.alive
        session.alive = False
        try:
            session.sock.close()
        except OSError:
            pass
        if session.jail.uid is not None:
            self._check_disk(session, session.at, result)
            if session.cgroup is not None:
                session.cgroup.kill()  # the whole submission at once, frozen first
            sandbox.kill_user(session.jail.uid)
        else:
            sandbox.kill_group(session.pid)
        try:
            status = self.pool.wait(session.pid)  # and its PID namespace's init: nothing of it is left
        except sandbox.SandboxError:
            return
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        explains_death = not was_alive and killed and (
            not result.problems or any(p.kind == "died" and not p.evalue for p in result.problems))
        over_memory = self._account(session, result, explains_death)
        if was_alive:
            return
        if session.broken is not None:  # it sent what no reply may be: that, not its exit status, is the news
            result.status = "died"
            if isinstance(session.broken, (protocol.ReplyTooLarge, protocol.ReplyTooDeep)):
                result.limits_hit.append("reply-size")
            result.problems.append(CellProblem(session.at, "died", type(session.broken).__name__, str(session.broken)))
            return
        limit, sentence = describe_status(status)
        if over_memory and explains_death:
            limit, sentence = "memory", (f"it went over its memory limit ({self.limits.memory >> 20} MiB for all its "
                                         "processes together) and the kernel stopped it")
        unexplained = [p for p in result.problems if p.kind == "died" and not p.evalue]
        if not unexplained and not result.problems:  # it died while the judge was calling into it
            unexplained = [CellProblem(-1, "died")]
            result.problems.extend(unexplained)
            result.status = "died"
        for problem in unexplained:
            problem.evalue = sentence
            if limit:
                problem.kind, problem.ename = "limit", limit
                if limit not in result.limits_hit:
                    result.limits_hit.append(limit)

    def _account(self, session: Session, result: Execution, explains_death: bool) -> bool:
        """Record what the submission's control group counted; True when a process was killed for memory
        (a problem of its own unless it is what stopped the notebook's process: ``explains_death``)."""
        if session.cgroup is None:
            return False
        report = session.cgroup.report()
        result.resources = report
        if report.get("process_limit_hits") and "processes" not in result.limits_hit:
            result.limits_hit.append("processes")
        if not report.get("oom_kills"):
            return False
        if "memory" not in result.limits_hit:
            result.limits_hit.append("memory")
        if not explains_death:
            result.problems.append(CellProblem(session.at, "limit", "memory",
                                               f"{report['oom_kills']} of its processes went over the memory limit "
                                               f"({self.limits.memory >> 20} MiB for all its processes together) "
                                               "and were killed by the kernel"))
        return True
