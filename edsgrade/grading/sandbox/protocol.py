"""Framed messages between the grader and a sandboxed notebook process: a JSON header, then arrays.

The grader sends requests (run a cell, capture names, call a function) and reads one reply per
request. A message on the wire is::

    preamble   >QI       length of the JSON text, number of attachments
    sizes      >Q each   the size of every attachment, in order
    JSON text            one JSON object (UTF-8)
    attachments          each one numpy ``.npy`` array (numpy.lib.format, no object dtype)

Arrays travel as binary ``.npy`` attachments (see :mod:`edsgrade.grading.sandbox.plaindata`, which refers to them
by index) because turning 32 MB of float64 into JSON numbers or base64 and back costs hundreds of
milliseconds, and writing the raw buffer costs a copy.

The sandbox side is hostile once student code runs: it can write anything to the socket. So the
reading side (:func:`receive`) never trusts a message:

- every size is bounded *before* anything it announces is read or allocated: the JSON length, the
  number of attachments, each attachment's size and the total (:class:`Bounds`);
- the JSON text's nesting depth and number of values are counted on its bytes before it is parsed,
  so a reply nested 100 000 deep or holding 5 million empty lists is refused without building it;
- each attachment must be a well-formed ``.npy`` array of a plain dtype whose header matches its size;
  nothing is ever unpickled or evaluated;
- one deadline bounds the wait for the whole message: a message that starts and stalls is a time-out
  (:attr:`ChannelTimeout.partial`), never granted extra time past the notebook's own limits.

Anything wrong raises a :class:`ProtocolError` subclass whose message speaks of the notebook's
process, so that the submission's result says what happened (never "internal grading error").
"""
from __future__ import annotations

import io
import json
import re
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from edsgrade.errors import EdsgradeError

PREAMBLE = struct.Struct(">QI")
SIZE = struct.Struct(">Q")
NPY_MAGIC = b"\x93NUMPY"
NPY_HEADER_LIMIT = 10_000  # bytes of an .npy header (numpy's own default limit)
#: numpy dtype kinds that may travel as raw bytes: bool, integers, floats, complex, datetimes, bytes, str
BINARY_KINDS = "biufcmMSU"
MB = 1 << 20


class ChannelClosed(EdsgradeError, ConnectionError):
    """The other side closed the channel (the sandboxed process died or closed it)."""


class ChannelTimeout(EdsgradeError, TimeoutError):
    """No complete message arrived before the deadline.

    ``partial`` is true when part of a message had been read: the channel is then out of step (what
    follows is the rest of that message), and nothing more can be read from it.
    """

    partial: bool = False


class ProtocolError(EdsgradeError, ValueError):
    """A message was malformed or larger than allowed; the channel cannot be used any more."""

    prefix = "the notebook's process sent a malformed reply"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"{self.prefix}: {detail}")


class MalformedReply(ProtocolError):
    """The bytes are not a message: bad JSON, a bad ``.npy`` attachment, sizes that do not add up."""


class ReplyTooLarge(ProtocolError):
    """A message announces or holds more than :class:`Bounds` allows (bytes, attachments, values)."""

    prefix = "the notebook's process sent a reply over the grader's limits"


class ReplyTooDeep(ProtocolError):
    """A message's JSON is nested deeper than :attr:`Bounds.depth`."""

    prefix = "the notebook's process sent a reply over the grader's limits"


@dataclass(frozen=True)
class Bounds:
    """What one received message may hold.

    ``total``: bytes of the whole message (JSON and attachments); ``json``: bytes of its JSON text;
    ``attachments``: number of arrays; ``depth``: nesting of JSON arrays and objects; ``values``:
    JSON values (every item of a list, every key of an object, counted on the text).
    """

    total: int = 512 * MB
    json: int = 64 * MB
    attachments: int = 10_000
    depth: int = 100
    values: int = 2_000_000


def _size(n: float) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", MB), ("kB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


# ---------------------------------------------------------------------------------------- writing


def _npy_parts(array: np.ndarray) -> tuple[bytes, memoryview]:
    """The ``.npy`` header of ``array`` and a zero-copy view of its bytes (in the header's order)."""
    if array.dtype.hasobject or array.dtype.kind not in BINARY_KINDS:
        raise TypeError(f"arrays of dtype {array.dtype} cannot be sent as raw bytes")
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        array = array.copy(order="C")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    flat = array.T if (array.flags.f_contiguous and not array.flags.c_contiguous) else array
    data = memoryview(flat.reshape(-1).view(np.uint8)) if array.size and array.itemsize else memoryview(b"")
    return header.getvalue(), data


def send(sock: socket.socket, message: dict[str, Any], arrays: list[np.ndarray] | tuple = ()) -> None:
    """Send ``message`` (JSON-compatible) followed by ``arrays`` as ``.npy`` attachments."""
    text = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    parts = [_npy_parts(a) for a in arrays]
    sizes = b"".join(SIZE.pack(len(h) + d.nbytes) for h, d in parts)
    head = PREAMBLE.pack(len(text), len(parts)) + sizes + text
    if not parts:
        sock.sendall(head)
        return
    sock.sendall(head)
    for header, data in parts:
        sock.sendall(header)
        if data.nbytes:
            sock.sendall(data)


# ---------------------------------------------------------------------------------------- reading


def _wait(sock: socket.socket, deadline: float | None, what: str) -> None:
    if deadline is None:
        return
    left = deadline - time.monotonic()
    if left <= 0 or not select.select([sock], [], [], left)[0]:
        raise ChannelTimeout(f"no reply within the time limit ({what})")


def _read_into(sock: socket.socket, buffer: memoryview, deadline: float | None) -> None:
    done, size = 0, buffer.nbytes
    while done < size:
        _wait(sock, deadline, f"{done} of {size} bytes of a part read")
        n = sock.recv_into(buffer[done:], min(size - done, 16 * MB))
        if not n:
            raise ChannelClosed("the sandboxed process closed its channel")
        done += n


def _read_exactly(sock: socket.socket, size: int, deadline: float | None) -> bytes:
    buffer = bytearray(size)
    _read_into(sock, memoryview(buffer), deadline)
    return bytes(buffer)


# A JSON string, escapes included; possessive, so a long string costs one linear pass.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.S)
_OPEN = np.zeros(256, np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


def check_shape(text: bytes, bounds: Bounds) -> None:
    """Refuse JSON ``text`` nested deeper than ``bounds.depth`` or holding more than ``bounds.values`` values.

    Counted on the bytes, before parsing: brackets and commas are counted (a comma or an opening
    bracket per value at most), and the depth is the running sum of opening minus closing brackets
    (numpy, in chunks). Counted on the raw text, brackets and commas inside strings count too, which
    can only overstate: when that passes, the text passes; otherwise strings are blanked out (one
    regular-expression pass) and the exact counts decide. Python's own parser would raise
    ``RecursionError`` on deep input and build every value of a huge one before any check could see it.
    """
    if _shape_problem(text, bounds) is None:
        return
    problem = _shape_problem(_JSON_STRING.sub(b"0", text), bounds)
    if problem is not None:
        raise problem


def _shape_problem(text: bytes, bounds: Bounds) -> ProtocolError | None:
    opens = text.count(b"[") + text.count(b"{")
    values = opens + text.count(b",") + 1
    if values > bounds.values:
        return ReplyTooLarge(f"it holds about {values:,} values, over the limit of {bounds.values:,} "
                             "(a list or dict that large must be sent as a numpy array or a data frame)")
    if opens <= bounds.depth:
        return None
    codes = np.frombuffer(text, np.uint8)
    level, chunk = 0, 1 << 22
    for start in range(0, codes.size, chunk):
        steps = np.cumsum(_OPEN[codes[start:start + chunk]], dtype=np.int32)
        if steps.size and level + int(steps.max()) > bounds.depth:
            return ReplyTooDeep(f"it is nested more than {bounds.depth} levels deep")
        if steps.size:
            level += int(steps[-1])
    return None


def _read_npy(sock: socket.socket, size: int, deadline: float | None) -> np.ndarray:
    """One ``.npy`` attachment of exactly ``size`` bytes, validated before its data is read."""
    if size < 10:
        raise MalformedReply(f"an attachment of {size} bytes is too short to be an array")
    lead = _read_exactly(sock, 10, deadline)
    if lead[:6] != NPY_MAGIC or lead[6] not in (1, 2, 3):
        raise MalformedReply("an attachment is not a .npy array")
    if lead[6] == 1:
        header_len, taken = struct.unpack("<H", lead[8:10])[0], 10
    else:
        header_len, taken = struct.unpack("<I", lead[8:10] + _read_exactly(sock, 2, deadline))[0], 12
    if header_len > NPY_HEADER_LIMIT or taken + header_len > size:
        raise MalformedReply(f"an attachment's array header of {header_len} bytes is too large")
    header = io.BytesIO(lead[:taken] + _read_exactly(sock, header_len, deadline))
    try:
        version = np.lib.format.read_magic(header)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(header, max_header_size=NPY_HEADER_LIMIT)
    except (ValueError, TypeError, SyntaxError, struct.error) as exc:
        raise MalformedReply(f"an attachment has a malformed array header ({exc})") from None
    if dtype.hasobject or dtype.kind not in BINARY_KINDS or dtype.names is not None:
        raise MalformedReply(f"an attachment holds an array of dtype {dtype}, which is never accepted")
    count = 1
    for n in shape:
        count *= int(n)
    if count * dtype.itemsize != size - taken - header_len:
        raise MalformedReply(f"an attachment's header announces {count * dtype.itemsize} bytes of data "
                             f"but its frame has {size - taken - header_len}")
    if fortran:
        array = np.empty(shape[::-1], dtype).T
        flat = array.T
    else:
        array = flat = np.empty(shape, dtype)
    if array.nbytes:
        _read_into(sock, memoryview(flat.reshape(-1).view(np.uint8)), deadline)
    return array


def receive_message(sock: socket.socket, bounds: Bounds,
                    timeout: float | None = None) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Read one message within ``timeout`` seconds (``None``: wait forever): (JSON object, arrays).

    Raises :class:`ChannelTimeout`, :class:`ChannelClosed`, or a :class:`ProtocolError` subclass for
    anything over ``bounds`` or malformed (after which the channel is out of step: close it).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    _wait(sock, deadline, "nothing was sent")
    # The whole message within the same deadline: one that starts and then trickles (or stops) must
    # not stretch the notebook's time limit (issue 12). It is a time-out, marked partial: the channel
    # is out of step, so the caller stops the process.
    try:
        return _receive_rest(sock, bounds, deadline)
    except ChannelTimeout as exc:
        exc.partial = True
        raise


def _receive_rest(sock: socket.socket, bounds: Bounds,
                  deadline: float | None) -> tuple[dict[str, Any], list[np.ndarray]]:
    text_len, count = PREAMBLE.unpack(_read_exactly(sock, PREAMBLE.size, deadline))
    if count > bounds.attachments:
        raise ReplyTooLarge(f"it announces {count:,} attachments, over the limit of {bounds.attachments:,}")
    if text_len > bounds.json:
        raise ReplyTooLarge(f"its JSON part of {_size(text_len)} is over the limit of {_size(bounds.json)}")
    sizes = [SIZE.unpack_from(raw, i * SIZE.size)[0]
             for raw in [_read_exactly(sock, SIZE.size * count, deadline)] for i in range(count)]
    total = text_len + sum(sizes)
    if total > bounds.total:
        raise ReplyTooLarge(f"it announces {_size(total)}, over the limit of {_size(bounds.total)} for one reply")
    text = _read_exactly(sock, text_len, deadline)
    check_shape(text, bounds)
    try:
        message = json.loads(text)
    except RecursionError:  # cannot happen past check_shape; kept so that no input ever escapes as one
        raise ReplyTooDeep(f"it is nested more than {bounds.depth} levels deep") from None
    except ValueError as exc:
        raise MalformedReply(f"it is not valid JSON ({exc})") from None
    if not isinstance(message, dict):
        raise MalformedReply("it is not a JSON object")
    arrays = [_read_npy(sock, size, deadline) for size in sizes]
    return message, arrays


def receive(sock: socket.socket, *, max_bytes: int, timeout: float | None = None) -> dict[str, Any]:
    """Read one message that carries no attachment (the pool's and the template's messages)."""
    message, arrays = receive_message(sock, Bounds(total=max_bytes, json=min(max_bytes, Bounds.json)), timeout)
    if arrays:
        raise MalformedReply("it carries array attachments where none were expected")
    return message
