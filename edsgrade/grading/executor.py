"""Execute a notebook and capture, at given cells, the values the judge needs, as plain data.

This is the one stage the grading-engine work replaces (sandbox, warm pool): anything with the
same ``execute(notebook, cwd, captures) -> Execution`` method can grade. This executor runs the
notebook in an nbclient kernel (a separate process), one cell at a time, with a per-cell and a
per-notebook wall-clock limit; an error in a cell is recorded and execution goes on; a cell that
never returns is interrupted, and the kernel is killed if it does not come back.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

TIMEOUT_ENAME = "CellTimeoutError"
NOTEBOOK_TIMEOUT = "NotebookTimeout"
CAPTURE_MIME = "application/vnd.edsgrade.capture+json"
CODEC_SOURCE = (Path(__file__).resolve().parent.parent / "plaindata.py").read_text()
log = logging.getLogger("edsgrade")


@dataclass
class CellProblem:
    """Something that went wrong in one cell."""

    cell: int
    kind: str  # "error", "timeout", "kernel-died"
    ename: str = ""
    evalue: str = ""

    def describe(self) -> str:
        if self.kind == "timeout" and self.ename == NOTEBOOK_TIMEOUT:
            return f"cell {self.cell} and the cells after it were not run: {self.evalue}"
        if self.kind == "timeout":
            return f"cell {self.cell} did not finish within the time limit ({self.evalue}) and was interrupted"
        if self.kind == "kernel-died":
            return f"the Python process died while running cell {self.cell} ({self.evalue or 'killed'})"
        if self.ename == "NotImplementedError" and not self.evalue:
            return f"cell {self.cell} is not answered yet (it still raises NotImplementedError)"
        return f"cell {self.cell} raised {self.ename}: {self.evalue}"


@dataclass
class Execution:
    """What executing one notebook produced."""

    notebook: nbformat.NotebookNode
    captures: dict[str, dict[str, Any]] = field(default_factory=dict)  # grade_id -> name -> encoded value
    problems: list[CellProblem] = field(default_factory=list)
    status: str = "completed"  # completed | timeout | kernel-died | kernel-failed
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "seconds": round(self.seconds, 2),
                "problems": [asdict(p) for p in self.problems]}


def capture_code(names: list[str]) -> str:
    """Kernel-side code that displays the plain-data encoding of ``names`` (and defines nothing)."""
    return (
        "def __edsgrade_capture(_names, _g=globals()):\n"
        "    _codec = {'__name__': 'edsgrade_plaindata'}\n"
        f"    exec(compile({CODEC_SOURCE!r}, '<edsgrade-plaindata>', 'exec'), _codec)\n"
        "    from IPython.display import display\n"
        f"    display({{{CAPTURE_MIME!r}: _codec['encode_names'](_g, _names)}}, raw=True)\n"
        f"__edsgrade_capture({names!r})\n"
        "del __edsgrade_capture\n"
    )


def _truncate_outputs(cell: Any, limit: int) -> None:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and len(out.get("text", "")) > limit:
            out["text"] = out["text"][:limit] + f"\n... [output truncated after {limit} characters]\n"


class NotebookExecutor:
    """Run notebooks in a Jupyter kernel with time limits, capturing values for the judge.

    Parameters
    ----------
    cell_timeout, timeout:
        Wall-clock limits in seconds for one cell and for the whole notebook.
    startup_timeout:
        Time allowed for the kernel to start.
    kernel_name:
        The Jupyter kernel to use.
    output_limit:
        Characters of stream output kept per cell.
    """

    def __init__(self, cell_timeout: int = 120, timeout: int = 900, startup_timeout: int = 120,
                 kernel_name: str = "python3", output_limit: int = 20_000) -> None:
        self.cell_timeout = cell_timeout
        self.timeout = timeout
        self.startup_timeout = startup_timeout
        self.kernel_name = kernel_name
        self.output_limit = output_limit

    def execute(self, notebook: nbformat.NotebookNode, cwd: Path,
                captures: dict[int, tuple[str, list[str]]]) -> Execution:
        """Execute ``notebook`` in ``cwd``; at cell ``i`` in ``captures``, capture its names.

        ``captures`` maps a cell index to ``(grade_id, names)``; those cells (the test cells) are
        not run in the kernel, the values are captured there instead. Never raises for anything the
        notebook does: problems are recorded in the returned :class:`Execution`.
        """
        start = time.monotonic()
        nb = notebook  # executed in place: outputs are written into it
        result = Execution(nb)
        # IPC (Unix sockets) rather than TCP: nothing listens on a network port, and it keeps working
        # when the kernel is moved into its own network namespace.
        km = AsyncKernelManager(kernel_name=self.kernel_name, transport="ipc")
        km.ip = str(Path(tempfile.mkdtemp(prefix="edsgrade-kernel-")) / "kernel")
        client = NotebookClient(nb, km=km, timeout=self.cell_timeout, allow_errors=True,
                                interrupt_on_timeout=True, startup_timeout=self.startup_timeout,
                                error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": "time limit reached"},
                                kernel_name=self.kernel_name, resources={"metadata": {"path": str(cwd)}},
                                record_timing=False, log=logging.getLogger("edsgrade.kernel"))
        try:
            with client.setup_kernel():
                for index, cell in enumerate(nb.cells):
                    remaining = self.timeout - (time.monotonic() - start)
                    if remaining <= 0:
                        result.status = "timeout"
                        result.problems.append(CellProblem(index, "timeout", NOTEBOOK_TIMEOUT,
                                                           f"the notebook reached its {self.timeout} s limit"))
                        break
                    if cell.cell_type == "code" and cell.source.strip() and index not in captures:
                        if not self._run_cell(client, cell, index, min(self.cell_timeout, remaining), result):
                            break
                    if index in captures:
                        grade_id, names = captures[index]
                        result.captures[grade_id] = self._capture(client, index, names)
        except DeadKernelError as exc:
            result.status = "kernel-died"
            result.problems.append(CellProblem(-1, "kernel-died", "DeadKernelError", str(exc)))
        except Exception as exc:  # kernel could not start, or the client broke: record, never crash the run
            if not result.problems:
                result.status = "kernel-failed"
                result.problems.append(CellProblem(-1, "kernel-died", type(exc).__name__, str(exc)))
        finally:
            try:
                if km.has_kernel:
                    run_sync(km.shutdown_kernel)(now=True)
            except Exception:
                log.warning("could not shut the kernel down cleanly")
            shutil.rmtree(Path(km.ip).parent, ignore_errors=True)
        result.seconds = time.monotonic() - start
        return result

    def _run_cell(self, client: NotebookClient, cell: Any, index: int, limit: float, result: Execution) -> bool:
        """Run one cell; return False when execution cannot go on."""
        try:
            timed_out = self._execute(client, cell, index, limit)
        except DeadKernelError as exc:
            result.status = "kernel-died"
            result.problems.append(CellProblem(index, "kernel-died", "DeadKernelError", str(exc)))
            return False
        finally:
            _truncate_outputs(cell, self.output_limit)
        if timed_out:
            result.problems.append(CellProblem(index, "timeout", "TimeoutError", f"no result after {int(limit)} s"))
            # nbclient has interrupted the kernel; if it does not answer now, it is gone for good.
            if self._execute(client, nbformat.v4.new_code_cell("pass"), -1, 10):
                result.status = "timeout"
                return False
            return True
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                result.problems.append(CellProblem(index, "error", out.get("ename", ""), out.get("evalue", "")))
                break
        return True

    @staticmethod
    def _execute(client: NotebookClient, cell: Any, index: int, limit: float) -> bool:
        """Execute ``cell`` within ``limit`` seconds; return True if it timed out.

        On timeout nbclient interrupts the kernel itself and reports a ``CellTimeoutError`` reply
        (``error_on_timeout``), which the ``on_cell_executed`` hook sees.
        """
        replies: list[dict[str, Any]] = []
        client.on_cell_executed = lambda **kw: replies.append(kw.get("execute_reply") or {})
        client.timeout = max(1, int(limit))
        client.execute_cell(cell, index)
        return any(r.get("content", {}).get("ename") == TIMEOUT_ENAME for r in replies)

    def _capture(self, client: NotebookClient, index: int, names: list[str]) -> dict[str, Any]:
        cell = nbformat.v4.new_code_cell(capture_code(names))
        missing = {n: {"__plain__": "unavailable", "reason": "unsupported",
                       "detail": "the grader could not read it"} for n in names}
        try:
            if self._execute(client, cell, index, 60):
                return missing
        except DeadKernelError:
            return missing
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if CAPTURE_MIME in data and isinstance(data[CAPTURE_MIME], dict):
                return dict(data[CAPTURE_MIME])
        return missing
