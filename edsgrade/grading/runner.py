"""The sandbox side: run a notebook's cells one request at a time, in a fresh IPython shell.

This module is imported by the warm template (:mod:`edsgrade.grading.template`) *before* it forks,
so a sandboxed child starts with it (and the heavy libraries) already loaded; it serves one
submission over one socket and then exits. Requests, each answered by one reply:

``{"op": "run", "source": ...}``
    run a cell; reply ``{"outputs": [nbformat outputs], "error": null | {ename, evalue}}``.
``{"op": "capture", "names": [...], "limits": {...}}``
    reply ``{"values": {name: plain-data encoding}}`` (see :mod:`edsgrade.plaindata`), its arrays as
    ``.npy`` attachments (:mod:`edsgrade.grading.protocol`); a value over ``limits``
    (:class:`edsgrade.plaindata.Limits`) is replaced by a "too large" mark saying its size.
``{"op": "call", "name": ..., "path": [...], "args": ..., "kwargs": ..., "call": bool}``
    resolve ``name`` then each ``["attr", a]`` / ``["item", key]`` step of ``path``, call it with the
    decoded plain arguments (arrays as attachments) when ``call`` is true, and reply
    ``{"value": encoding}`` (within ``limits``) or
    ``{"error": ...}``: this is how the judge reaches a student's functions and fitted models.

Why not a Jupyter kernel: starting one costs a second or more per submission and puts test
verdicts and student code in the same process; a forked, pre-loaded interpreter costs a few
milliseconds and only ever hands out plain data.
"""
from __future__ import annotations

import builtins
import io
import json
import os
import signal
import socket
import sys
from typing import Any

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from traitlets import Type
from traitlets.config import Config

from .. import plaindata
from . import protocol

IMAGE_LIMIT = 2_000_000  # bytes of rich display data kept per cell


class CellOutputs:
    """The outputs of the cell being run, bounded in size."""

    def __init__(self, text_limit: int) -> None:
        self.text_limit = text_limit
        self.reset()

    def reset(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.text_used = 0
        self.rich_used = 0
        self.truncated = False

    def stream(self, name: str, text: str) -> None:
        if not text:
            return
        if self.text_used >= self.text_limit:
            self._truncate()
            return
        text = text[: self.text_limit - self.text_used]
        self.text_used += len(text)
        if self.items and self.items[-1].get("output_type") == "stream" and self.items[-1]["name"] == name:
            self.items[-1]["text"] += text
        else:
            self.items.append({"output_type": "stream", "name": name, "text": text})
        if self.text_used >= self.text_limit:
            self._truncate()

    def _truncate(self) -> None:
        if not self.truncated:
            self.truncated = True
            self.items.append({"output_type": "stream", "name": "stderr",
                               "text": f"\n... [output truncated after {self.text_limit} characters]\n"})

    def rich(self, output: dict[str, Any]) -> None:
        size = len(json.dumps(output.get("data", {}), default=str))
        if self.rich_used + size > IMAGE_LIMIT:
            self._truncate()
            return
        self.rich_used += size
        self.items.append(output)


class BoundedStream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` of the sandbox: text goes into the cell's outputs."""

    def __init__(self, name: str, outputs: CellOutputs) -> None:
        self.name, self._outputs = name, outputs

    def writable(self) -> bool:
        return True

    def write(self, text: Any) -> int:
        text = str(text)
        self._outputs.stream(self.name, text)
        return len(text)

    def isatty(self) -> bool:
        return False


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (v if isinstance(v, (str, dict, list)) else str(v)) for k, v in (data or {}).items()}


class RecordingPublisher(DisplayPublisher):
    """``display(...)`` and figures become ``display_data`` outputs of the cell."""

    outputs: CellOutputs | None = None

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs) -> None:
        if self.outputs is not None:
            self.outputs.rich({"output_type": "display_data", "data": _jsonable(data),
                               "metadata": _jsonable(metadata or {})})

    def clear_output(self, wait: bool = False) -> None:
        if self.outputs is not None:
            self.outputs.items.clear()


class RecordingDisplayHook(DisplayHook):
    """The value of a cell's last expression becomes its ``execute_result``."""

    outputs: CellOutputs | None = None

    def write_output_prompt(self) -> None:
        pass

    def write_format_data(self, format_dict, md_dict=None) -> None:
        if self.outputs is not None:
            self.outputs.rich({"output_type": "execute_result", "execution_count": self.prompt_count,
                               "data": _jsonable(format_dict), "metadata": _jsonable(md_dict or {})})


class SandboxShell(InteractiveShell):
    """An IPython shell whose outputs and tracebacks are recorded, not printed."""

    displayhook_class = Type(RecordingDisplayHook)
    display_pub_class = Type(RecordingPublisher)
    last_error: dict[str, Any] | None = None

    def _showtraceback(self, etype, evalue, stb) -> None:
        try:
            text = str(evalue)
        except Exception:
            text = "(unprintable exception)"
        self.last_error = {"ename": getattr(etype, "__name__", str(etype)), "evalue": text[:2000]}
        self.display_pub.outputs.items.append({"output_type": "error", **self.last_error,
                                               "traceback": [str(line)[:5000] for line in stb[-30:]]})

    def enable_gui(self, gui=None) -> None:  # no event loop in a sandbox
        pass


def _no_input(*args: Any, **kwargs: Any) -> str:
    raise RuntimeError("input() is not available while grading: the notebook must run without typing anything")


class Runner:
    """Serve one submission's requests on ``sock`` until it closes."""

    def __init__(self, sock: socket.socket, output_limit: int, max_request: int = 512 << 20) -> None:
        self.sock, self.max_request = sock, max_request
        self.outputs = CellOutputs(output_limit)
        config = Config()
        config.HistoryManager.enabled = False
        config.InteractiveShell.colors = "nocolor"
        config.InteractiveShell.xmode = "Context"
        self.shell = SandboxShell.instance(config=config)
        self.shell.display_pub.outputs = self.outputs
        self.shell.displayhook.outputs = self.outputs
        sys.stdout = BoundedStream("stdout", self.outputs)
        sys.stderr = BoundedStream("stderr", self.outputs)
        sys.stdin = io.StringIO()
        builtins.input = _no_input
        self._inline = False
        self._enable_inline_figures()
        self.shell.events.register("post_execute", self._enable_inline_figures)
        self.outputs.reset()

    def _enable_inline_figures(self) -> None:
        """Figures become outputs, as in Jupyter, once matplotlib is loaded (by the template or a cell):
        importing it here for every notebook would cost most of a second per submission."""
        if self._inline or "matplotlib" not in sys.modules:
            return
        try:
            self.shell.enable_matplotlib("inline")
            self._inline = True
            from matplotlib_inline.backend_inline import flush_figures

            flush_figures()  # the figures of the cell that imported matplotlib
        except Exception:  # matplotlib broken: the notebook still runs, without figures
            self._inline = True

    def serve(self) -> None:
        while True:
            try:
                request, frames = protocol.receive_message(self.sock, protocol.Bounds(total=self.max_request))
            except KeyboardInterrupt:  # a late interrupt, after the cell had already finished
                continue
            except (protocol.ChannelClosed, OSError, ValueError):
                return
            arrays: list[Any] = []
            try:
                reply = self.handle(request, frames, arrays)
            except KeyboardInterrupt:
                reply = {"error": {"ename": "KeyboardInterrupt", "evalue": "interrupted (time limit)"}}
            except BaseException as exc:  # noqa: BLE001 - whatever happens, answer the grader
                reply = {"error": {"ename": type(exc).__name__, "evalue": str(exc)[:2000]}}
            if "error" in reply:
                arrays = []
            try:
                protocol.send(self.sock, reply, arrays)
            except (TypeError, ValueError) as exc:  # not JSON (raised before anything is written)
                try:
                    protocol.send(self.sock, {"error": {"ename": "UnsupportedValue",
                                                        "evalue": f"the reply could not be sent ({exc})"}})
                except (OSError, ValueError):
                    return
            except OSError:
                return

    def handle(self, request: dict[str, Any], frames: list[Any], arrays: list[Any]) -> dict[str, Any]:
        """Answer one request; arrays of the reply are appended to ``arrays``."""
        op = request.get("op")
        if op == "run":
            return self.run(str(request.get("source", "")))
        if op == "capture":
            return {"values": plaindata.encode_names(self.shell.user_ns, list(request.get("names", [])),
                                                     arrays=arrays, limits=_limits(request))}
        if op == "call":
            return self.call(request, frames, arrays)
        return {"error": {"ename": "ProtocolError", "evalue": f"unknown request {op!r}"}}

    def run(self, source: str) -> dict[str, Any]:
        self.outputs.reset()
        self.shell.last_error = None
        try:
            self.shell.run_cell(source, store_history=True)
        except KeyboardInterrupt:  # arrived outside the cell's own code (e.g. in a post-execute hook)
            self.shell.last_error = {"ename": "KeyboardInterrupt", "evalue": "interrupted (time limit)"}
        return {"outputs": self.outputs.items, "error": self.shell.last_error,
                "execution_count": self.shell.execution_count - 1, "truncated": self.outputs.truncated}

    def call(self, request: dict[str, Any], frames: list[Any], arrays: list[Any]) -> dict[str, Any]:
        name = str(request.get("name"))
        if name not in self.shell.user_ns:
            return {"error": {"ename": "NameError", "evalue": f"name {name!r} is not defined"}}
        target = self.shell.user_ns[name]
        for kind, key in request.get("path", []):
            target = getattr(target, str(key)) if kind == "attr" else target[plaindata.decode(key)]
        if request.get("call", True):
            args = plaindata.decode(request.get("args", {plaindata.TAG: "tuple", "items": []}), frames=frames)
            kwargs = plaindata.decode(request.get("kwargs", {plaindata.TAG: "dict", "items": {}}), frames=frames)
            saved = self.outputs.items
            target = target(*args, **kwargs)
            self.outputs.items = saved
        try:
            encoded = plaindata.encode(target, arrays=arrays, limits=_limits(request))
        except plaindata.ValueTooLarge as exc:
            return {"error": {"ename": "ValueTooLarge", "evalue": f"the result {exc}: it was not judged"}}
        except (plaindata.UnsupportedValue, TypeError, ValueError, OverflowError) as exc:
            return {"error": {"ename": "UnsupportedValue",
                              "evalue": f"the result is a {type(target).__name__}, not plain data ({exc})"}}
        return {"value": encoded}


def _limits(request: dict[str, Any]) -> plaindata.Limits:
    """The grader's size limits sent with a request (the defaults when it sent none)."""
    given = request.get("limits")
    if not isinstance(given, dict):
        return plaindata.Limits()
    return plaindata.Limits(**{k: int(v) for k, v in given.items() if k in plaindata.Limits.__dataclass_fields__})


def serve(fd: int, output_limit: int) -> None:
    """Child entry point: serve requests on the inherited socket ``fd``, then exit."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sock = socket.socket(fileno=fd)
    Runner(sock, output_limit).serve()
    os._exit(0)
