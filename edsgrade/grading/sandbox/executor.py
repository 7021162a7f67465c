"""Run one notebook in a sandboxed process, one cell at a time, and stop at its checkpoints.

:class:`SandboxExecutor` forks a confined interpreter from the warm pool for each notebook, sends
it the cells, enforces the wall-clock limits (per cell and per notebook), and at every checkpoint
(a question's test cell) hands a :class:`Session` to the caller, who captures plain values and
calls the student's functions through it, *outside* the student's process. Whatever the notebook
does (loop, crash, exhaust a limit, flood the output, exit), :meth:`SandboxExecutor.execute`
returns an :class:`Execution` saying what happened, and no process of the notebook survives it.
"""
from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import time
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Callable

import nbformat

from edsgrade.grading.sandbox import plaindata
from edsgrade.grading.sandbox import cgroups, protocol, confinement as sandbox
from edsgrade.grading.sandbox.pool import WarmPool
from edsgrade.grading.sandbox.confinement import Jail, Limits
from edsgrade.grading.sandbox.untrusted import clean, identifier, said
from edsgrade.errors import EdsgradeError

NOTEBOOK_TIMEOUT = "NotebookTimeout"
INTERRUPT_GRACE = 5.0  # seconds a timed-out cell gets to stop after SIGINT before it is killed
FREEZE_WAIT = 2.0  # seconds the other processes of a notebook get to stop before the judge calls into a snapshot
#: Largest reply to a ``run`` request beyond the per-cell text limit: the runner keeps 2 MB of rich outputs
#: and 30 traceback lines of a cell (JSON escapes can make a character 6 bytes); anything larger is malformed.
RUN_REPLY_SLACK = 2 * 2_000_000 + (8 << 20)

#: exception names, as the notebook's process reports them, that mean it reached one of its limits
LIMIT_ERRORS = {"MemoryError": "memory", "BlockingIOError": "processes"}


class Status(str, Enum):
    """The coarse outcome of a notebook's run (a ``str``: compares equal to its value)."""

    COMPLETED = "completed"
    TIMEOUT = "timeout"
    DIED = "died"
    FAILED = "failed"  # the sandbox could not be set up: the grader's problem, not the submission's


class Ending(str, Enum):
    """How a notebook's run ended, decided only from what the grader observed itself.

    Its own deadlines, the wait status the warm pool reaped, and the shape of the bytes on the
    channel; never the text the sandbox sends (a student's code can write anything there).
    """

    COMPLETED = "completed"  # every cell was sent and answered
    CELL_TIMEOUT = "cell-timeout"  # a cell passed its deadline and did not stop after the interrupt
    NOTEBOOK_TIMEOUT = "notebook-timeout"  # the notebook's time (cells and calls) was used up
    EXITED = "exited"  # the process exited by itself (Execution.exit_code)
    KILLED_BY_SIGNAL = "killed-by-signal"  # the process died of a signal (Execution.signal)
    CPU_TIME = "cpu-time"  # SIGXCPU: its CPU-time limit
    FILE_SIZE = "file-size"  # SIGXFSZ: its file-size limit
    MALFORMED_REPLY = "malformed-reply"  # it sent bytes that are not a valid reply (or too many)
    CHANNEL_CLOSED = "channel-closed"  # its end of the channel closed and it was not seen dying
    MEMORY = "memory"  # killed, and the grader's own accounting (the cgroup's OOM count, or memory_evidence) shows it
    SETUP_FAILED = "setup-failed"  # the sandbox could not be built (reported by the pool, not the notebook)


@dataclass
class CellProblem:
    """Something that went wrong in one cell (``cell`` = -1: outside any cell).

    ``evalue`` is the grader's own sentence; ``said`` is what the notebook's process reported (an
    exception's message), kept apart so that it is always shown quoted and labelled as the submission's.
    """

    cell: int
    kind: str  # error | timeout | died | limit | malformed
    ename: str = ""
    evalue: str = ""
    said: str = ""

    def describe(self) -> str:
        """One sentence for the result and the feedback; text from the sandbox only as a labelled quote."""
        quoted = f" ({said(self.said)})" if self.said else ""
        if self.kind == "timeout" and self.ename == NOTEBOOK_TIMEOUT:
            return f"cell {self.cell} and the cells after it were not run: {self.evalue}"
        if self.kind == "timeout":
            return f"cell {self.cell} did not finish within the time limit ({self.evalue})"
        if self.kind == "died":
            return f"the notebook's Python process stopped while running cell {self.cell}: {self.evalue}"
        if self.kind == "malformed":  # evalue: the protocol's typed error, in the grader's words
            return f"while running cell {self.cell}, {self.evalue}; it was stopped"
        if self.kind == "limit":
            return f"cell {self.cell} hit the sandbox's {self.ename} limit" + (
                f": {self.evalue}" if self.evalue else "") + quoted
        if self.ename == "NotImplementedError" and not self.said:
            return f"cell {self.cell} is not answered yet (it still raises NotImplementedError)"
        return f"cell {self.cell} raised {self.ename}{quoted}"


@dataclass
class Execution:
    """What executing one notebook produced."""

    notebook: nbformat.NotebookNode
    checkpoints: dict[str, Any] = field(default_factory=dict)  # grade_id -> what on_checkpoint returned
    problems: list[CellProblem] = field(default_factory=list)
    status: Status = Status.COMPLETED
    ending: Ending = Ending.COMPLETED
    exit_code: int | None = None  # when ending is EXITED
    signal: int | None = None  # when the process died of a signal
    limits_hit: list[str] = field(default_factory=list)  # cell-time, notebook-time, memory, cpu-time, ...
    seconds: float = 0.0  # wall time spent in the student's code: cells, captures and calls through proxies
    cell_seconds: float = 0.0  # of which running the notebook's own cells (what benchmarks call its own time)
    output_bytes: int = 0  # size (JSON) of the outputs kept in the notebook so far
    sandboxed: bool = True
    isolation: dict[str, Any] = field(default_factory=dict)  # what confined this run (see SandboxExecutor)
    resources: dict[str, Any] = field(default_factory=dict)  # what the kernel counted (cgroup), if anything
    snapshots: int = 0  # copies of the process made for the judge's calls (one per checkpoint that calls)
    snapshot_seconds: float = 0.0  # wall time spent making, freezing around and discarding them

    def end(self, status: Status, ending: Ending) -> None:
        """Record how the run ended (the first ending observed is kept)."""
        self.status = status
        if self.ending is Ending.COMPLETED:
            self.ending = ending

    def hit(self, limit: str) -> None:
        if limit not in self.limits_hit:
            self.limits_hit.append(limit)

    def summary(self) -> dict[str, Any]:
        return {"status": self.status.value, "ending": self.ending.value, "exit_code": self.exit_code,
                "signal": self.signal, "seconds": round(self.seconds, 2),
                "cell_seconds": round(self.cell_seconds, 3), "limits_hit": self.limits_hit,
                "sandboxed": self.sandboxed, "snapshots": self.snapshots,
                "snapshot_seconds": round(self.snapshot_seconds, 4), "problems": [asdict(p) for p in self.problems],
                "isolation": self.isolation, "resources": self.resources}


class SessionGone(EdsgradeError, RuntimeError):
    """The sandboxed process cannot answer (dead, stopped, or out of time); the message is the grader's."""

    ending = Ending.CHANNEL_CLOSED


class ChannelLost(SessionGone):
    """The notebook's end of the channel closed: the process died or closed it."""


class ChannelBroken(SessionGone):
    """The notebook's process sent bytes that are not a reply within the grader's bounds (garbage, too
    large, too deep: a :class:`protocol.ProtocolError` subclass, in :attr:`error`); the channel is given up."""

    ending = Ending.MALFORMED_REPLY

    def __init__(self, message: str, error: protocol.ProtocolError | None = None) -> None:
        super().__init__(message)
        self.error = error


class CallTimedOut(SessionGone):
    """No reply before the grader's deadline (``reason``: what the grader then did, in its own words)."""

    ending = Ending.CELL_TIMEOUT

    def __init__(self, message: str, reason: str = "it ignored the interrupt and was stopped") -> None:
        super().__init__(message)
        self.reason = reason


class OutOfTime(SessionGone):
    """The notebook's time limit is used up: the request was not sent."""

    ending = Ending.NOTEBOOK_TIMEOUT


class SnapshotUnavailable(SessionGone):
    """No copy of the notebook's process could be made for the judge's calls (they are not made)."""


@dataclass
class Reply:
    """A reply as received, and whether the grader had to interrupt the process to get it."""

    body: dict[str, Any]
    interrupted: bool = False


def _task_files(pid: int, name: str) -> list[str]:
    """The text of ``/proc/PID/task/*/NAME`` for each thread of ``pid`` still readable (read by the grader)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    texts = []
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/{name}") as f:
                texts.append(f.read())
        except OSError:
            pass
    return texts


def children(pid: int) -> set[int]:
    """The child processes of ``pid``, read from ``/proc`` by the grader itself."""
    return {int(p) for text in _task_files(pid, "children") for p in text.split() if p.isdigit()}


def _stopped(pid: int) -> bool:
    """Whether every thread of ``pid`` is stopped, a zombie or gone (read from ``/proc``)."""
    states = [text.rsplit(")", 1)[1].split()[:1] for text in _task_files(pid, "stat") if ")" in text]
    return all(not state or state[0] in ("T", "t", "Z", "X") for state in states)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


class Session:
    """The grader's handle on one sandboxed notebook process.

    Cells and captures are answered by the notebook's process itself. Calls into the student's
    code (:meth:`call`) are answered by a *snapshot*: a copy of the process forked at the
    checkpoint (same confinement, plus no writes to files, no processes, no IPC, no signals to
    others), while every other process of the notebook is frozen; the snapshot is killed when the
    checkpoint ends (:meth:`end_checkpoint`), so nothing a called function does (recording the
    judge's hidden inputs in a global, a file, an environment variable...) reaches the notebook's
    later cells, outputs or files. Every request's deadline is the cell limit or what is left of
    the notebook's time, whichever is smaller, and its time is counted against the notebook's.
    """

    def __init__(self, pid: int, sock: socket.socket, jail: Jail, max_bytes: int, call_timeout: float,
                 timeout: float = float("inf"), run_bytes: int | None = None,
                 value_limit: int = plaindata.Limits.value_bytes) -> None:
        self.pid, self.sock, self.jail = pid, sock, jail
        self.max_bytes, self.call_timeout, self.timeout = max_bytes, call_timeout, timeout
        self.run_bytes = min(run_bytes or max_bytes, max_bytes)
        self.bounds = protocol.Bounds(total=max_bytes, json=min(max_bytes, protocol.Bounds.json))
        #: what the sandbox may put in one capture or call reply (it marks bigger values "too large")
        self.limits = {"value_bytes": value_limit, "reply_bytes": max_bytes - (1 << 20),
                       "reply_items": self.bounds.values * 3 // 4, "reply_text": self.bounds.json - (4 << 20)}
        self.frames: list[Any] = []  # the arrays attached to the last reply
        self.broken: protocol.ProtocolError | None = None  # why the main channel was given up, if it was
        #: where the grader reads the working copy: confined, the jail's copy, seen through its init's root
        self.workdir: str = jail.workdir
        self.cgroup: cgroups.SubmissionCgroup | None = None
        self.full: set[str] = set()  # the sandbox's file systems found full (working copy, /tmp)
        self.alive = True
        self.ended: str = ""  # why the process stopped, when it did
        self.progress: Execution | None = None  # the execution so far, set by the executor
        self.checkpoints: dict[int, str] = {}
        self.at = 0  # index of the cell being run or checked
        self.started: float | None = None  # wall-clock time the first cell was sent
        self.snapshot: set[int] = set()  # pids of the checkpoint's snapshot, while there is one
        self.frozen: list[int] = []  # processes stopped while a snapshot answers
        self.snapshot_refused = ""  # why no snapshot can be made at this checkpoint

    # -- time -------------------------------------------------------------------------------------
    def time_left(self) -> float:
        """Seconds left of the notebook's time limit (cells, captures and calls all count)."""
        used = self.progress.seconds if self.progress is not None else 0.0
        return self.timeout - used

    def _spend(self, seconds: float) -> None:
        if self.progress is not None:
            self.progress.seconds += seconds

    def _deadline(self, what: str) -> float:
        left = self.time_left()
        if left <= 0:
            if self.progress is not None:
                self.progress.hit("notebook-time")
            raise OutOfTime(f"{what} was not made: the notebook's time limit ({self.timeout:g} s, its cells and "
                            "the judge's calls together) was used up")
        return min(self.call_timeout, left)

    # -- the main process -------------------------------------------------------------------------
    def request(self, message: dict[str, Any], timeout: float, max_bytes: int | None = None,
                arrays: list[Any] | tuple = ()) -> Reply:
        """Send ``message`` (``arrays`` as attachments) to the notebook's process; its reply within ``timeout`` s.

        The reply's arrays are in :attr:`frames`. Past the deadline the process is interrupted; a
        reply within the grace period is returned with ``interrupted=True``, else
        :class:`CallTimedOut` is raised (at once when a reply had started and stalled: the channel
        is out of step). Raises :class:`ChannelLost` or :class:`ChannelBroken` as observed on the channel.
        """
        if not self.alive:
            raise ChannelLost(self.ended or "the notebook's process is gone")
        limit = max_bytes or self.max_bytes
        self.frames = []
        try:
            protocol.send(self.sock, message, arrays)
        except OSError as exc:  # its end closed (it exited, or closed the channel itself)
            self.alive = False
            self.ended = "the notebook's process closed its channel"
            raise ChannelLost(self.ended) from exc
        try:
            return Reply(self._receive(timeout, limit))
        except protocol.ChannelTimeout as exc:
            if exc.partial:  # a frame started and did not end in time: the channel is out of step
                self.alive = False
                self.ended = f"its reply did not finish within {timeout:.0f} s: stopped"
                raise CallTimedOut(self.ended, "its reply started and did not finish, so it was stopped") from None
        try:
            os.kill(self.pid, signal.SIGINT)
            return Reply(self._receive(INTERRUPT_GRACE, limit), interrupted=True)
        except (protocol.ChannelTimeout, ProcessLookupError):
            self.alive = False
            self.ended = f"no answer within {timeout:.0f} s, even after an interrupt: stopped"
            raise CallTimedOut(self.ended) from None

    def _bounds(self, max_bytes: int) -> protocol.Bounds:
        if max_bytes >= self.max_bytes:
            return self.bounds
        return protocol.Bounds(total=max_bytes, json=min(max_bytes, self.bounds.json))

    def _receive(self, timeout: float, max_bytes: int) -> dict[str, Any]:
        """One reply, mapping what the channel showed to typed errors (never to the reply's text)."""
        try:
            reply, self.frames = protocol.receive_message(self.sock, self._bounds(max_bytes), timeout=timeout)
            return reply
        except protocol.ChannelTimeout:
            raise
        except (protocol.ChannelClosed, OSError) as exc:
            self.alive = False
            self.ended = "the notebook's process closed its channel"
            raise ChannelLost(self.ended) from exc
        except protocol.ProtocolError as exc:
            self.alive = False
            self.broken = exc
            self.ended = clean(str(exc), 300)
            raise ChannelBroken(self.ended, exc) from None

    def capture(self, names: list[str]) -> dict[str, Any]:
        """The plain-data encodings of ``names`` in the notebook's namespace (answered by the process itself)."""
        deadline = self._deadline("the capture of the notebook's values")
        started = time.monotonic()
        try:
            reply = self.request({"op": "capture", "names": names, "limits": self.limits}, deadline)
        finally:
            self._spend(time.monotonic() - started)
        values = reply.body.get("values")
        if reply.interrupted:
            raise CallTimedOut(f"the notebook's values were not returned within {deadline:.0f} s")
        if not isinstance(values, dict):
            raise ChannelBroken("the notebook's process did not return its values")
        return {str(n): plaindata.bind_frames(v, self.frames) for n, v in values.items()}

    # -- the snapshot -----------------------------------------------------------------------------
    def call(self, name: str, path: list[list[Any]], args: Any, kwargs: Any, call: bool = True,
             arrays: list[Any] | tuple = ()) -> dict[str, Any]:
        """Resolve ``name`` and ``path`` in a snapshot of the notebook, call it with encoded arguments (their
        arrays in ``arrays``); the raw reply, its ``value`` bound to the arrays that came with it.

        Raises :class:`SessionGone` subclasses: :class:`OutOfTime` (not sent), :class:`CallTimedOut`
        (the snapshot was killed at the deadline), :class:`SnapshotUnavailable`, :class:`ChannelBroken`.
        """
        deadline = self._deadline(f"the call of {name}")
        started = time.monotonic()
        try:
            self._enter_snapshot(deadline)
            left = deadline - (time.monotonic() - started)
            protocol.send(self.sock, {"op": "call", "name": name, "path": path, "args": args, "kwargs": kwargs,
                                      "call": call, "limits": self.limits}, arrays)
            reply = self._from_snapshot(left, f"{name} did not return within {deadline:.1f} s")
            if "value" in reply:
                reply["value"] = plaindata.bind_frames(reply["value"], self.frames)
            return reply
        except CallTimedOut:
            if deadline >= self.call_timeout:
                raise
            if self.progress is not None:  # it was the notebook's time, not the cell limit, that ran out
                self.progress.hit("notebook-time")
            raise OutOfTime(f"{name} did not return within {deadline:.1f} s, what was left of the notebook's time "
                            f"limit ({self.timeout:g} s, its cells and the judge's calls together)") from None
        except OSError as exc:
            self._leave_snapshot()
            raise ChannelLost("the notebook's process closed its channel") from exc
        finally:
            self._spend(time.monotonic() - started)

    def _from_snapshot(self, timeout: float, late: str) -> dict[str, Any]:
        """The snapshot's reply; if it dies or passes the deadline, it is killed and the error raised."""
        end = time.monotonic() + max(timeout, 0.0)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                self._leave_snapshot()
                raise CallTimedOut(late)
            if select.select([self.sock], [], [], min(left, 0.05))[0]:
                break
            if all(_gone(p) for p in self.snapshot):
                self._leave_snapshot()
                raise SnapshotUnavailable("the copy of the notebook's process stopped during the call "
                                          "(the function exited or crashed it)")
        self.frames = []
        try:
            reply, self.frames = protocol.receive_message(self.sock, self.bounds, timeout=max(end - time.monotonic(), 0.1))
            return reply
        except protocol.ChannelTimeout:
            self._leave_snapshot()
            raise CallTimedOut(late) from None
        except (protocol.ChannelClosed, OSError) as exc:
            self._leave_snapshot()
            self.alive = False
            raise ChannelLost("the notebook's process closed its channel") from exc
        except protocol.ProtocolError as exc:  # the copy is discarded with its bytes; the notebook goes on
            self._leave_snapshot()
            raise ChannelBroken(clean(str(exc), 300), exc) from None

    def _enter_snapshot(self, deadline: float) -> None:
        if self.snapshot:
            return
        if self.snapshot_refused:
            raise SnapshotUnavailable(self.snapshot_refused)
        started = time.monotonic()
        try:
            self._make_snapshot(deadline)
        finally:
            if self.progress is not None:
                self.progress.snapshot_seconds += time.monotonic() - started
                self.progress.snapshots += 1

    def _make_snapshot(self, deadline: float) -> None:
        before = children(self.pid)
        reply = self.request({"op": "snapshot"}, deadline)
        made = children(self.pid) - before
        if reply.interrupted or reply.body.get("snapshot") is not True or not made:
            self.snapshot_refused = ("the notebook's process could not be copied for the judge's calls "
                                     "(it could not start one more process, or did not answer as expected)")
            if made:  # a copy exists but answered wrongly: it must not serve anything
                self.snapshot = made
                self._leave_snapshot()
            raise SnapshotUnavailable(self.snapshot_refused)
        self.snapshot = made
        # Freeze every other process of the notebook (threads included), so that none of them can read
        # the judge's requests from the shared channel; checked in /proc before anything is sent.
        others = (sandbox.processes_of(self.jail.uid) if self.jail.uid is not None else [self.pid])
        self.frozen = [p for p in others if p not in made]
        for p in self.frozen:
            try:
                os.kill(p, signal.SIGSTOP)
            except ProcessLookupError:
                pass
        limit = time.monotonic() + FREEZE_WAIT
        while not all(_stopped(p) for p in self.frozen):
            if time.monotonic() > limit:
                self._leave_snapshot()
                self.snapshot_refused = "the notebook's other processes could not be paused for the judge's calls"
                raise SnapshotUnavailable(self.snapshot_refused)
            time.sleep(0.005)

    def _leave_snapshot(self) -> None:
        """Kill the snapshot, wait until it is gone, resume the frozen processes, drop stale bytes."""
        pids, self.snapshot = self.snapshot, set()
        started = time.monotonic()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        limit = time.monotonic() + FREEZE_WAIT
        while not all(_gone(p) for p in pids) and time.monotonic() < limit:
            time.sleep(0.005)
        frozen, self.frozen = self.frozen, []
        for p in frozen:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        try:  # whatever a killed snapshot left half-written on the channel
            while select.select([self.sock], [], [], 0)[0]:
                if not self.sock.recv(1 << 20, socket.MSG_DONTWAIT):
                    break
        except OSError:
            pass
        if pids and self.progress is not None:
            self.progress.snapshot_seconds += time.monotonic() - started

    def end_checkpoint(self) -> None:
        """Discard the checkpoint's snapshot, if one was made; the next checkpoint gets a fresh one."""
        self._leave_snapshot()
        self.snapshot_refused = ""


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
        if sig == signal.SIGKILL:
            return "", ("it was killed by signal SIGKILL, which the grader did not send (the system's "
                        "out-of-memory killer, or the notebook itself)")
        return "", f"it was killed by signal {name}"
    if os.WIFEXITED(status):
        return "", f"it exited with code {os.WEXITSTATUS(status)} (os._exit or a crash)"
    return "", f"it stopped (status {status})"


def ending_of(status: int) -> tuple[Ending, int | None, int | None]:
    """(ending, exit code, signal) for a child's raw wait status, as the pool reaped it."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        kind = {signal.SIGXCPU: Ending.CPU_TIME, signal.SIGXFSZ: Ending.FILE_SIZE}.get(sig, Ending.KILLED_BY_SIGNAL)
        return kind, None, sig
    if os.WIFEXITED(status):
        return Ending.EXITED, os.WEXITSTATUS(status), None
    return Ending.CHANNEL_CLOSED, None, None


class SandboxExecutor:
    """Execute notebooks in sandboxed processes forked from a warm pool.

    Parameters
    ----------
    pool:
        The :class:`WarmPool` to fork from (shared by every submission of a grading run).
    cell_timeout, timeout:
        Wall-clock limits in seconds for one cell (and one call by the judge), and for the whole
        notebook: its cells, the captures and the judge's calls into it all count.
    limits:
        Resource limits (memory, CPU time, processes, file size, open files).
    output_limit:
        Characters of text output kept per cell.
    notebook_output_limit:
        Bytes (as JSON) of outputs kept for the whole notebook; past it, a cell's outputs are
        replaced by a note saying so. Bounds the autograded notebook and the grader's memory.
    max_message:
        Largest reply accepted from a sandbox, in bytes (captured values included).
    value_limit:
        Largest captured value (or value returned through the proxy), in bytes: a bigger one is not
        sent and its case fails saying its size.
    confine:
        Use the full sandbox (namespaces, own root, unprivileged user); default: when running as root.
    memory_evidence:
        Called with the notebook's :class:`Jail` after it was killed by a signal the grader did not
        send, before its processes are cleaned up: True when the grader's *own* accounting shows
        that it reached its memory limit; the run then ends as :attr:`Ending.MEMORY`. ``None`` (the
        default): the submission's control group is that accounting (the kernel's count of OOM kills
        in it, :meth:`cgroups.SubmissionCgroup.report`); without a cgroup (rlimits only) there is
        none, and a ``MemoryError`` the notebook reports is recorded as its own words.
    """

    def __init__(self, pool: WarmPool, *, cell_timeout: float = 120, timeout: float = 900,
                 limits: Limits | None = None, output_limit: int = 20_000, notebook_output_limit: int = 20_000_000,
                 max_message: int = 512 << 20, value_limit: int = 256 << 20, confine: bool | None = None,
                 memory_evidence: Callable[[Jail], bool] | None = None) -> None:
        self.pool = pool
        self.memory_evidence = memory_evidence
        self.cell_timeout, self.timeout = cell_timeout, timeout
        self.limits = limits or Limits()
        self.output_limit, self.max_message, self.value_limit = output_limit, max_message, value_limit
        self.notebook_output_limit = notebook_output_limit
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
            session = Session(pid, sock, jail, self.max_message, self.cell_timeout, self.timeout,
                              6 * self.output_limit + RUN_REPLY_SLACK, self.value_limit)
            session.cgroup = group
            init = self.pool.init_of(pid)
            if init:
                session.workdir = f"/proc/{init}/root{jail.inside}"
            try:
                self._run(nb, session, checkpoints, on_checkpoint, result)
            finally:
                self._end(session, result)
        # raised by the grader's side (the pool, the template's own set-up pipe, the slot, the cgroup), never
        # read from the notebook's channel
        except (sandbox.SandboxError, cgroups.CgroupError) as exc:
            result.end(Status.FAILED, Ending.SETUP_FAILED)
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
                result.hit("disk")
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
                finally:
                    session.end_checkpoint()
            elif cell.cell_type == "code" and cell.source.strip() and not stopped:
                remaining = self.timeout - result.seconds
                if remaining <= 0:
                    result.end(Status.TIMEOUT, Ending.NOTEBOOK_TIMEOUT)
                    result.hit("notebook-time")
                    result.problems.append(CellProblem(index, "timeout", NOTEBOOK_TIMEOUT,
                                                       f"the notebook reached its {self.timeout:g} s limit "
                                                       "(its cells and the judge's calls together)"))
                    stopped = True
                    continue
                started = time.monotonic()
                try:
                    self._run_cell(session, cell, index, min(self.cell_timeout, remaining), result)
                finally:
                    spent = time.monotonic() - started
                    result.seconds += spent
                    result.cell_seconds += spent
            if not session.alive:
                stopped = True

    def _run_cell(self, session: Session, cell: Any, index: int, limit: float, result: Execution) -> None:
        try:
            reply = session.request({"op": "run", "source": cell.source}, limit, max_bytes=session.run_bytes)
        except SessionGone as exc:
            cell.outputs = []
            if isinstance(exc, CallTimedOut):
                result.end(Status.TIMEOUT, Ending.CELL_TIMEOUT)
                result.hit("cell-time")
                result.problems.append(CellProblem(index, "timeout", "TimeoutError", f"{limit:.0f} s; {exc.reason}"))
            elif isinstance(exc, ChannelBroken):  # recorded by _end, with what the process sent
                result.end(Status.DIED, Ending.MALFORMED_REPLY)
            else:  # how it died is read from its wait status in _end
                result.end(Status.DIED, Ending.CHANNEL_CLOSED)
                result.problems.append(CellProblem(index, "died", "", ""))
            return
        self._check_disk(session, index, result)
        self._keep_outputs(cell, index, clean_outputs(reply.body.get("outputs")), result)
        if isinstance(reply.body.get("execution_count"), int):
            cell.execution_count = reply.body["execution_count"]
        if reply.body.get("truncated"):
            result.hit("output")
        if reply.interrupted:
            result.hit("cell-time")
            result.problems.append(CellProblem(index, "timeout", "TimeoutError", f"{limit:.0f} s; it was interrupted"))
            return
        error = reply.body.get("error")
        if isinstance(error, dict):
            ename, evalue = identifier(error.get("ename")), _text(error.get("evalue"), 2000)
            # What the process reports is its own account: shown quoted; a limit name only from the exception's class.
            limit_name = LIMIT_ERRORS.get(ename) or ("file-size" if error.get("errno") == errno.EFBIG else "")
            if limit_name:
                result.hit(limit_name)
                result.problems.append(CellProblem(index, "limit", limit_name, f"it raised {ename}", evalue))
            else:
                result.problems.append(CellProblem(index, "error", ename, "", evalue))

    def _keep_outputs(self, cell: Any, index: int, outputs: list[nbformat.NotebookNode], result: Execution) -> None:
        """Keep a cell's outputs while the notebook's output budget lasts; past it, a note instead."""
        size = len(json.dumps(outputs))
        if result.output_bytes + size <= self.notebook_output_limit:
            result.output_bytes += size
            cell.outputs = outputs
            return
        cell.outputs = [nbformat.v4.new_output(
            "stream", name="stderr", text=f"[outputs of this cell dropped: the notebook's outputs reached the limit of "
                                          f"{self.notebook_output_limit} bytes (c.Grader.notebook_output_limit)]\n")]
        if "notebook-output" not in result.limits_hit:
            result.hit("notebook-output")
            result.problems.append(CellProblem(index, "limit", "notebook-output",
                                               f"its outputs and those of later cells were dropped past "
                                               f"{self.notebook_output_limit} bytes for the whole notebook"))

    def _end(self, session: Session, result: Execution) -> None:
        """Kill everything the notebook started, reap it, and record how it ended if it died.

        How it ended comes from what the grader observed: its own deadlines, the bytes on the channel
        (:attr:`Session.broken`), the wait status the pool reaped, and the submission's control group
        (the kernel's count of OOM kills: :attr:`Ending.MEMORY`) or the ``memory_evidence`` hook.
        """
        was_alive = session.alive
        session.alive = False
        session.end_checkpoint()
        # read before the clean-up, which may reset the accounting (the hook is the confinement's)
        hooked = (bool(self.memory_evidence(session.jail))
                  if not was_alive and self.memory_evidence is not None else None)
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
            result.end(Status.DIED, Ending.MALFORMED_REPLY)
            if isinstance(session.broken, (protocol.ReplyTooLarge, protocol.ReplyTooDeep)):
                result.hit("reply-size")
            result.problems.append(CellProblem(session.at, "malformed", type(session.broken).__name__, session.ended))
            return
        limit, sentence = describe_status(status)
        if result.ending is Ending.CHANNEL_CLOSED or result.status is Status.COMPLETED:
            ending, result.exit_code, result.signal = ending_of(status)
            result.ending = ending
        memory = hooked if hooked is not None else (over_memory and explains_death)
        if memory and result.ending is Ending.KILLED_BY_SIGNAL:
            result.ending, limit = Ending.MEMORY, "memory"
            counted = ("the kernel's count of out-of-memory kills in its control group" if hooked is None
                       else "the grader's own accounting")
            sentence = (f"it went over its memory limit and was killed ({self.limits.memory >> 20} MiB"
                        f"{' for all its processes together' if session.cgroup is not None else ''}; {counted} shows it)")
        unexplained = [p for p in result.problems if p.kind == "died" and not p.evalue]
        if not unexplained and not result.problems:  # it died while the judge was calling into it
            unexplained = [CellProblem(-1, "died")]
            result.problems.extend(unexplained)
            result.status = Status.DIED
        for problem in unexplained:
            problem.evalue = sentence
            if limit:
                problem.kind, problem.ename = "limit", limit
                result.hit(limit)

    def _account(self, session: Session, result: Execution, explains_death: bool) -> bool:
        """Record what the submission's control group counted; True when a process was killed for memory
        (a problem of its own unless it is what stopped the notebook's process: ``explains_death``)."""
        if session.cgroup is None:
            return False
        report = session.cgroup.report()
        result.resources = report
        if report.get("process_limit_hits"):
            result.hit("processes")
        if not report.get("oom_kills"):
            return False
        result.hit("memory")
        if not explains_death:
            result.problems.append(CellProblem(session.at, "limit", "memory",
                                               f"{report['oom_kills']} of its processes went over the memory limit "
                                               f"({self.limits.memory >> 20} MiB for all its processes together) "
                                               "and were killed by the kernel"))
        return True
