"""Length-prefixed JSON frames between the grader and a sandboxed notebook process.

The grader sends requests (run a cell, capture names, call a function) and reads one reply per
request. The sandbox side is hostile, so the reading side never trusts a frame: its size is
bounded before anything is read, its body must be JSON, and a deadline bounds the wait. Nothing
here ever unpickles or evaluates what arrives.
"""
from __future__ import annotations

import json
import select
import socket
import struct
import time
from typing import Any

HEADER = struct.Struct(">Q")


class ChannelClosed(ConnectionError):
    """The other side closed the channel (the sandboxed process died or closed it)."""


class ChannelTimeout(TimeoutError):
    """No complete frame arrived before the deadline.

    ``partial`` is true when part of a frame had been read: the channel is then out of step (what
    follows is the rest of that frame), and nothing more can be read from it.
    """

    partial: bool = False


class ProtocolError(ValueError):
    """A frame was malformed or larger than allowed."""


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    """Send one frame holding ``message`` as JSON."""
    body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    sock.sendall(HEADER.pack(len(body)) + body)


def _read_exactly(sock: socket.socket, size: int, deadline: float | None) -> bytes:
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([sock], [], [], left)[0]:
                raise ChannelTimeout(f"no reply within the time limit ({size - remaining} of {size} bytes read)")
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ChannelClosed("the sandboxed process closed its channel")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket, *, max_bytes: int, timeout: float | None = None) -> dict[str, Any]:
    """Read one frame within ``timeout`` seconds (``None``: wait forever); at most ``max_bytes`` of body."""
    deadline = None if timeout is None else time.monotonic() + timeout
    if deadline is not None and not select.select([sock], [], [], max(timeout, 0))[0]:
        raise ChannelTimeout("no reply within the time limit")
    try:
        (size,) = HEADER.unpack(_read_exactly(sock, HEADER.size, deadline))
    except ChannelTimeout as exc:
        exc.partial = True  # some of the header was read
        raise
    if size > max_bytes:
        raise ProtocolError(f"a reply of {size} bytes exceeds the limit of {max_bytes} bytes")
    # The whole frame within the same deadline: a frame that starts and then trickles (or stops) must
    # not stretch the notebook's time limit (issue 12).
    try:
        body = _read_exactly(sock, size, deadline)
    except ChannelTimeout as exc:
        exc.partial = True
        raise
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"a reply was not valid JSON ({exc})") from None
    if not isinstance(message, dict):
        raise ProtocolError("a reply was not a JSON object")
    return message
