"""Copies of folders a student controls: regular files only, never a link followed, every refusal said.

Every copy of student files (collect, submit, fetch_feedback, the grading working copy, the hub's
collect) goes through :func:`copy_tree`. ``shutil.copytree`` and nbgrader's ``do_copy`` follow
symbolic links, open FIFOs (and block), read devices and recurse without bound; a student who can
write into the folder being copied can then make the grader copy the master notebook, the gradebook
or ``/etc/shadow`` into her submission, hang the collect, or make it die of a ``RecursionError``.

How it is safe, and why it is written here rather than taken from a library (no maintained Python
package copies a tree through directory file descriptors with these checks):

- Everything is opened *relative to a directory file descriptor* that is already open, with
  ``O_NOFOLLOW`` (and ``O_DIRECTORY`` for folders), so a link swapped in after a check, or an
  ancestor folder renamed or replaced by a link during the copy, is never followed: the open fails
  (``ELOOP``/``ENOTDIR``) and the entry is refused.
- Files are opened with ``O_NONBLOCK``, so a FIFO swapped in for a file never blocks the copy, and
  only after ``lstat`` said "regular file" or "folder" (devices, FIFOs and sockets are never opened
  at all). The type, the owner, the link count and the size are then checked again with ``fstat``
  on the open descriptor, which is the authority: it describes what will actually be read.
- Hard links (``st_nlink > 1``) are refused: a hard link may name a file the student does not own
  (the gradebook on the same file system), and its contents are not hers to hand in.
- The walk is iterative (an explicit stack of open folders, at most ``max_depth`` deep), and the
  count of entries, the total bytes, the bytes per file, the depth and the length of each name are
  bounded; reading stops at the bound even if the file grows while it is read.
- Names that are not valid UTF-8 or hold control characters (newlines...) are refused: they would
  garble the lists and messages that show them to people.
- :func:`copy_tree` never raises on hostile content: each refused entry is returned as a
  :class:`Refusal` that says what it was and that it was not copied. It raises only when the
  destination itself cannot be written (a grader-side problem).

This module is a leaf: it imports nothing else from edsgrade (the hub's collect uses it too).
"""
from __future__ import annotations

import errno
import fnmatch
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Union
from edsgrade.errors import EdsgradeError

__all__ = ["CopyLimits", "Refusal", "CopyReport", "copy_tree", "scan_tree", "read_regular", "UnsafeFile", "digest_tree",
           "safe_name"]

MiB = 1 << 20
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC

#: ``ignore``: glob patterns matched against each entry's name (like nbgrader's ``CourseDirectory.ignore``),
#: or a function of the entry's relative path (``"data/x.csv"``) that says whether to leave it out, silently.
Ignore = Union[Iterable[str], Callable[[str], bool], None]


@dataclass(frozen=True)
class CopyLimits:
    """Bounds of one copy; a copy stops taking entries once one is reached (and says so).

    The defaults fit every lab of the course with a wide margin (the largest release, lab4's LAS
    clouds, is tens of MiB) and nbgrader's own ``max_file_size`` (100 MB).

    Parameters
    ----------
    max_files:
        Entries (files and folders, refused ones included) looked at; past it the rest is left out.
    max_bytes:
        Total bytes copied.
    max_file_bytes:
        Bytes of one file; a larger file is refused whole.
    max_depth:
        Folder nesting below the copied folder (its own entries are at depth 1).
    max_name:
        Length of one name, in bytes of UTF-8 (255 is the usual file-system limit).
    max_refusals:
        Refusals reported one by one; past it a single refusal counts the others.
    """

    max_files: int = 10_000
    max_bytes: int = 512 * MiB
    max_file_bytes: int = 256 * MiB
    max_depth: int = 32
    max_name: int = 255
    max_refusals: int = 100


@dataclass(frozen=True)
class Refusal:
    """One entry that was not copied: its path relative to the copied folder, and why."""

    path: str
    reason: str
    verb: str = "collected"

    def __str__(self) -> str:
        return f"`{self.path}` {self.reason}: not {self.verb}"


@dataclass
class CopyReport:
    """What a copy (or a scan) saw, besides its refusals (pass one to :func:`copy_tree` to get it).

    ``latest_change`` is the latest inode change time (``st_ctime``) over the copied folder and every
    entry looked at, measured *after* each file was read: no unprivileged process can set a ctime
    back (any change of contents, name, mode or owner sets it to the current time), so it is a time
    at or after which nothing that was copied changed, and the student can only make it later.
    """

    files: int = 0
    folders: int = 0
    bytes: int = 0
    latest_change: float | None = None
    refusals: list[Refusal] = field(default_factory=list)

    def _saw(self, st: os.stat_result) -> None:
        if self.latest_change is None or st.st_ctime > self.latest_change:
            self.latest_change = st.st_ctime


class UnsafeFile(EdsgradeError, OSError):
    """A file that :func:`read_regular` refused; ``refusal`` says which and why."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


def safe_name(name: str, limits: CopyLimits = CopyLimits()) -> str | None:
    """Why ``name`` cannot be taken as a file name (too long, not UTF-8, control characters), or ``None``."""
    raw = os.fsencode(name)
    if len(raw) > limits.max_name:
        return f"has a name longer than {limits.max_name} bytes"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "has a name that is not UTF-8 text"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "has a name with control characters"
    return None


def _shown(rel: str) -> str:
    """A relative path as text that can be printed anywhere (odd bytes and control characters escaped)."""
    text = os.fsencode(rel).decode("utf-8", "backslashreplace")
    return "".join(ch if 32 <= ord(ch) != 127 else f"\\x{ord(ch):02x}" for ch in text)[:300]


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "is a link"
    if stat.S_ISFIFO(mode):
        return "is a named pipe"
    if stat.S_ISSOCK(mode):
        return "is a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device"
    if stat.S_ISDIR(mode):
        return "is a folder"
    if stat.S_ISREG(mode):
        return "is a file"
    return "is not a regular file"


def _ignored(ignore: Ignore) -> Callable[[str, str], bool]:
    if ignore is None:
        return lambda rel, name: False
    if callable(ignore):
        return lambda rel, name: bool(ignore(rel))
    patterns = list(ignore)
    return lambda rel, name: any(fnmatch.fnmatch(name, p) for p in patterns)


class _Walk:
    """One copy (``dest_fd`` given) or scan (``None``) of a tree: the shared, iterative walker."""

    def __init__(self, limits: CopyLimits, ignore: Ignore, verb: str, expect_uid: int | None,
                 report: CopyReport) -> None:
        self.limits, self.verb, self.expect_uid, self.report = limits, verb, expect_uid, report
        self.ignored = _ignored(ignore)
        self.seen = 0
        self.extra_refusals = 0
        self.stopped = False
        self.sink: Callable[[str, int, int], None] | None = None  # (path, descriptor, byte cap): a reader

    def refuse(self, rel: str, reason: str) -> None:
        if len(self.report.refusals) < self.limits.max_refusals:
            self.report.refusals.append(Refusal(_shown(rel), reason, self.verb))
        else:
            self.extra_refusals += 1

    def _owner_ok(self, rel: str, st: os.stat_result) -> bool:
        if self.expect_uid is not None and st.st_uid != self.expect_uid:
            self.refuse(rel, f"is owned by another user (uid {st.st_uid})")
            return False
        return True

    def _names(self, fd: int) -> list[str]:
        """At most what the remaining entry budget allows (plus one, to know there are more), sorted."""
        budget = self.limits.max_files - self.seen + 1
        names: list[str] = []
        with os.scandir(fd) as entries:
            for entry in entries:
                names.append(entry.name)
                if len(names) >= budget:
                    break
        return sorted(names)

    def run(self, src_fd: int, dest_fd: int | None) -> None:
        stack: list[tuple[int, int | None, str, int, Iterator[str]]] = []
        try:
            stack.append((src_fd, dest_fd, "", 0, iter(self._names(src_fd))))
            while stack and not self.stopped:
                sfd, dfd, rel, depth, names = stack[-1]
                name = next(names, None)
                if name is None:
                    stack.pop()
                    if stack:  # the root's descriptors belong to the caller
                        os.close(sfd)
                        if dfd is not None:
                            os.close(dfd)
                    continue
                child = self._entry(sfd, dfd, f"{rel}/{name}" if rel else name, name, depth + 1)
                if child is not None:
                    csfd, cdfd, crel = child
                    try:
                        stack.append((csfd, cdfd, crel, depth + 1, iter(self._names(csfd))))
                    except OSError as exc:
                        os.close(csfd)
                        if cdfd is not None:
                            os.close(cdfd)
                        self.refuse(crel, f"could not be listed ({exc.strerror})")
        finally:
            for sfd, dfd, _, _, _ in stack[1:]:
                os.close(sfd)
                if dfd is not None:
                    os.close(dfd)
        if self.extra_refusals:
            self.report.refusals.append(Refusal("…", f"and {self.extra_refusals} more entries were refused", self.verb))

    def _entry(self, sfd: int, dfd: int | None, rel: str, name: str, depth: int) -> tuple[int, int | None, str] | None:
        """Copy one entry; return the (source, destination, path) of a folder to walk into."""
        if self.ignored(rel, name):
            return None
        self.seen += 1
        if self.seen > self.limits.max_files:
            self.refuse(rel, f"is past the limit of {self.limits.max_files} files and folders (the rest was "
                             "left out too)")
            self.stopped = True
            return None
        bad = safe_name(name, self.limits)
        if bad:
            self.refuse(rel, bad)
            return None
        try:
            before = os.stat(name, dir_fd=sfd, follow_symlinks=False)
        except OSError as exc:
            self.refuse(rel, f"could not be read ({exc.strerror})")
            return None
        self.report._saw(before)
        if stat.S_ISDIR(before.st_mode):
            return self._folder(sfd, dfd, rel, name, depth, before)
        if not stat.S_ISREG(before.st_mode):
            self.refuse(rel, _kind(before.st_mode))
            return None
        self._file(sfd, dfd, rel, name, before)
        return None

    def _folder(self, sfd: int, dfd: int | None, rel: str, name: str, depth: int,
                before: os.stat_result) -> tuple[int, int | None, str] | None:
        if depth > self.limits.max_depth:
            self.refuse(rel, f"is nested more than {self.limits.max_depth} folders deep")
            return None
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=sfd)
        except OSError as exc:
            self.refuse(rel, "is a link" if exc.errno in (errno.ELOOP, errno.ENOTDIR) else
                        f"could not be opened ({exc.strerror})")
            return None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) or not self._owner_ok(rel, st):
            if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
                self.refuse(rel, "changed while it was copied")
            os.close(fd)
            return None
        self.report._saw(st)
        self.report.folders += 1
        if dfd is None:
            return fd, None, rel
        try:
            try:
                os.mkdir(name, 0o755, dir_fd=dfd)
            except FileExistsError:
                pass
            out = os.open(name, _DIR_FLAGS, dir_fd=dfd)
        except OSError as exc:
            os.close(fd)
            self.refuse(rel, f"could not be written ({exc.strerror})")
            return None
        return fd, out, rel

    def _file(self, sfd: int, dfd: int | None, rel: str, name: str, before: os.stat_result) -> None:
        lim = self.limits
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=sfd)
        except OSError as exc:
            self.refuse(rel, "is a link" if exc.errno == errno.ELOOP else f"could not be opened ({exc.strerror})")
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self.refuse(rel, _kind(st.st_mode))
                return
            if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino):
                self.refuse(rel, "changed while it was copied")
                return
            if not self._owner_ok(rel, st):
                return
            if st.st_nlink > 1:
                self.refuse(rel, "is a hard link (it has other names)")
                return
            if st.st_size > lim.max_file_bytes:
                self.refuse(rel, f"is larger than {lim.max_file_bytes // MiB} MiB")
                return
            room = lim.max_bytes - self.report.bytes
            if st.st_size > room:
                self.refuse(rel, f"would take the copy past its total of {lim.max_bytes // MiB} MiB")
                return
            if dfd is not None:
                copied = self._write(fd, dfd, rel, name, min(room, lim.max_file_bytes), st)
                if copied is None:
                    return
                self.report.bytes += copied
            else:
                if self.sink is not None:
                    self.sink(rel, fd, min(room, lim.max_file_bytes))
                self.report.bytes += st.st_size
            self.report._saw(os.fstat(fd))  # after the read: a change made during it shows here
            self.report.files += 1
        finally:
            os.close(fd)

    def _write(self, fd: int, dfd: int, rel: str, name: str, cap: int, st: os.stat_result) -> int | None:
        try:
            os.unlink(name, dir_fd=dfd)  # a file of the release the student's own replaces
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            self.refuse(rel, "has the name of a folder already there")
            return None
        except OSError as exc:
            if exc.errno in (errno.EISDIR, errno.EPERM):
                self.refuse(rel, "has the name of a folder already there")
                return None
            raise
        mode = 0o755 if st.st_mode & 0o100 else 0o644
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dfd)
        total = 0
        try:
            while True:
                try:
                    chunk = os.read(fd, min(_CHUNK, cap - total + 1))
                except BlockingIOError:
                    chunk = b""
                except OSError as exc:
                    raise _ReadFailed(exc) from exc
                if not chunk:
                    break
                total += len(chunk)
                if total > cap:
                    raise _ReadFailed(None)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
            os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
        except _ReadFailed as failed:
            os.close(out)
            os.unlink(name, dir_fd=dfd)
            self.refuse(rel, "grew past the size limit while it was copied" if failed.error is None
                        else f"could not be read ({failed.error.strerror})")
            return None
        os.close(out)
        return total


class _ReadFailed(EdsgradeError):
    def __init__(self, error: OSError | None) -> None:
        super().__init__(str(error))
        self.error = error


def _open_root(src: Path, expect_uid: int | None, walk: _Walk) -> int | None:
    try:
        fd = os.open(src, _DIR_FLAGS)
    except OSError as exc:
        reason = "is a link" if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.islink(src) else \
            ("is not a folder" if exc.errno == errno.ENOTDIR else f"could not be opened ({exc.strerror})")
        walk.refuse(".", reason)
        return None
    st = os.fstat(fd)
    if not walk._owner_ok(".", st):
        os.close(fd)
        return None
    walk.report._saw(st)
    return fd


def copy_tree(src: Path, dest: Path, *, limits: CopyLimits = CopyLimits(), ignore: Ignore = None,
              verb: str = "collected", expect_uid: int | None = None,
              report: CopyReport | None = None) -> list[Refusal]:
    """Copy the regular files and folders of ``src`` into ``dest``; return what was refused.

    Parameters
    ----------
    src:
        The folder to copy (a student's). If it is itself a link, nothing is copied.
    dest:
        Where to copy it: created if missing, merged into if present (a file of the same name is
        replaced). It must be the grader's own folder: it is trusted.
    limits:
        Count, sizes, depth and name length (see :class:`CopyLimits`).
    ignore:
        Glob patterns of names, or a function of the relative path, to leave out silently.
    verb:
        The word the refusals use ("collected", "submitted", "copied for grading"...).
    expect_uid:
        If given, entries (and ``src``) owned by another uid are refused.
    report:
        If given, filled with counts and the latest inode change time (see :class:`CopyReport`).

    Returns
    -------
    list[Refusal]
        One per entry not copied, in the order met; ``str()`` of each is a sentence for people.

    Examples
    --------
    >>> for refusal in copy_tree(inbound / folder, submitted / "alice" / "lab1"):  # doctest: +SKIP
    ...     print(refusal)
    `data/x.csv` is a link: not collected
    """
    report = report if report is not None else CopyReport()
    walk = _Walk(limits, ignore, verb, expect_uid, report)
    fd = _open_root(Path(src), expect_uid, walk)
    if fd is None:
        return report.refusals
    try:
        Path(dest).mkdir(parents=True, exist_ok=True)
        out = os.open(dest, _DIR_FLAGS)
        try:
            walk.run(fd, out)
        finally:
            os.close(out)
    finally:
        os.close(fd)
    return report.refusals


def scan_tree(src: Path, *, limits: CopyLimits = CopyLimits(), ignore: Ignore = None, verb: str = "collected",
              expect_uid: int | None = None) -> CopyReport:
    """Walk ``src`` as :func:`copy_tree` would, copying nothing: counts, refusals and latest change time."""
    report = CopyReport()
    _walk_only(Path(src), _Walk(limits, ignore, verb, expect_uid, report), expect_uid)
    return report


def _walk_only(src: Path, walk: "_Walk", expect_uid: int | None) -> None:
    """Run ``walk`` over ``src`` without copying (a scan, or a reader through ``walk.sink``)."""
    fd = _open_root(src, expect_uid, walk)
    if fd is not None:
        try:
            walk.run(fd, None)
        finally:
            os.close(fd)


def digest_tree(src: Path, *, limits: CopyLimits = CopyLimits(), ignore: Ignore = None) -> str:
    """A SHA-256 of what :func:`copy_tree` would copy from ``src``: each regular file's path and
    contents (read through the same checks, within the same bounds) and each refusal."""
    import hashlib

    digest = hashlib.sha256()
    report = CopyReport()
    walk = _Walk(limits, ignore, "copied", None, report)

    def feed(rel: str, fd: int, cap: int) -> None:
        digest.update(b"F" + os.fsencode(rel) + b"\0")
        inner, total = hashlib.sha256(), 0
        while total <= cap:
            try:
                chunk = os.read(fd, min(_CHUNK, cap - total + 1))
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            total += len(chunk)
            inner.update(chunk)
        digest.update(inner.digest())

    walk.sink = feed
    _walk_only(Path(src), walk, None)
    for refusal in report.refusals:
        digest.update(b"R" + str(refusal).encode("utf-8", "backslashreplace") + b"\0")
    return digest.hexdigest()


def read_regular(path: Path, max_bytes: int, *, verb: str = "read", shown: str | None = None) -> bytes:
    """The contents of ``path`` if it is a regular file with one name, of at most ``max_bytes``.

    The last component is opened with ``O_NOFOLLOW | O_NONBLOCK`` and checked with ``fstat``: a link,
    a FIFO, a device, a hard link or a file too large raises :class:`UnsafeFile` (whose ``refusal``
    names the file as ``shown``, default its name) and is never read past the bound.
    """
    path = Path(path)
    label = shown or path.name
    try:
        fd = os.open(path, _FILE_FLAGS)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFile(Refusal(_shown(label), "is a link", verb)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(Refusal(_shown(label), _kind(st.st_mode), verb))
        if st.st_nlink > 1:
            raise UnsafeFile(Refusal(_shown(label), "is a hard link (it has other names)", verb))
        chunks, total = [], 0
        while True:
            try:
                chunk = os.read(fd, min(_CHUNK, max_bytes - total + 1))
            except BlockingIOError:
                chunk = b""
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise UnsafeFile(Refusal(_shown(label), f"is larger than {max_bytes} bytes", verb))
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
