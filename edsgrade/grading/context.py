"""What a hidden test case may receive besides the student's variables and ``ref``.

Three parameter names are reserved (:data:`edsgrade.authoring.CONTEXT_PARAMS`, part of the master format); a case that names one of them gets,
in the grader's process (never in the student's):

``hidden``
    :class:`HiddenData`: instructor-only files of the assignment's dataset (for instance the labels
    of a test set), written by the build into ``build/A/hidden/`` (or the hidden draw's folder) and
    never copied into ``source/``, ``release/``, the sandbox or the master's own build run.
``files``
    :class:`SubmissionFiles`: read-only access to files the notebook wrote in its working copy
    (``files.text("predictions.csv")``), read as bytes by the grader with a size cap; links,
    non-regular files and files not written during the run (handed in beside the notebook) are refused.
``run``
    :class:`RunInfo`: how the notebook's run went up to this test cell: whether every cell ran
    without error within the limits, its time, the number of figures it showed, and the source of
    its code cells (for static inspection: parse it, never execute it).

These cases must be hidden (public cases run in the student's notebook, which has none of them). A
case whose only parameters are context ones is still judged when the notebook's process stopped
before its test cell (a time limit, a crash): what the run produced so far earns its points.
"""
from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from edsgrade.errors import EdsgradeError

DEFAULT_FILE_LIMIT = 8 << 20  # bytes of one file the judge reads from a working copy
FIGURE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")


class SubmissionFileError(EdsgradeError, AssertionError):
    """A file the judge expected from the notebook is missing, too large or not a regular file.

    An ``AssertionError``: a case reading such a file fails with this message.
    """


class HiddenData:
    """Instructor-only files of a dataset (``hidden.path(name)``, ``hidden.text(name)``, ``hidden.read_csv(name)``)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def path(self, name: str) -> Path:
        if self.folder is None or not (self.folder / name).is_file():
            where = self.folder or "build/<assignment>/hidden"
            raise FileNotFoundError(f"hidden file {name!r} not found in {where}: does the dataset generator write it "
                                    "(generate_hidden), and was the assignment built?")
        return self.folder / name

    def text(self, name: str) -> str:
        return self.path(name).read_text()

    def read_csv(self, name: str, **kwargs: Any) -> Any:
        import pandas as pd

        return pd.read_csv(self.path(name), **kwargs)

    def __repr__(self) -> str:
        return f"<hidden data in {self.folder}>"


class SubmissionFiles:
    """Files the student's notebook wrote at the top of its working copy, read safely by the grader.

    Only plain names (no folder) are accepted; a link, a folder, a pipe or a file over ``limit``
    bytes is refused with a :class:`SubmissionFileError`, whose message a case failure shows.
    With ``since`` (a time stamp), a file last modified before it (a copy handed in with the
    notebook, not written by this run) is refused too.
    """

    def __init__(self, workdir: Path | None, limit: int = DEFAULT_FILE_LIMIT, since: float | None = None) -> None:
        self.workdir, self.limit, self.since = workdir, limit, since

    def read_bytes(self, name: str) -> bytes:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"files[{name!r}]: give a plain file name in the notebook's folder, such as 'predictions.csv'")
        if self.workdir is None:
            raise SubmissionFileError(f"the notebook's working folder is not available: {name} cannot be read")
        folder = os.open(self.workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
            except FileNotFoundError:
                raise SubmissionFileError(f"the notebook did not write {name} in its folder (next to the "
                                          "notebook): write it there, e.g. df.to_csv(\"" + name + "\", index=False)") from None
            except OSError as exc:  # a symbolic link (ELOOP) or anything else that is not a plain file
                raise SubmissionFileError(f"{name} is not a regular file ({exc.strerror}); write the file itself") from None
            try:
                info = os.fstat(fd)
                if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:  # a hard link may point anywhere
                    raise SubmissionFileError(f"{name} is not a regular file of its own; write the file itself")
                if self.since is not None and info.st_mtime < self.since:
                    raise SubmissionFileError(f"{name} was not written when the notebook ran (it is the copy handed "
                                              "in): the notebook itself must write it")
                if info.st_size > self.limit:
                    raise SubmissionFileError(f"{name} is {info.st_size} bytes, more than the {self.limit} bytes "
                                              "the grader reads")
                with os.fdopen(fd, "rb", closefd=False) as handle:
                    data = handle.read(self.limit + 1)
            finally:
                os.close(fd)
        finally:
            os.close(folder)
        if len(data) > self.limit:
            raise SubmissionFileError(f"{name} grew past the {self.limit} bytes the grader reads")
        return data

    def text(self, name: str) -> str:
        return self.read_bytes(name).decode("utf-8", errors="replace")

    def exists(self, name: str) -> bool:
        try:
            self.read_bytes(name)
        except SubmissionFileError:
            return False
        return True

    def read_csv(self, name: str, **kwargs: Any) -> Any:
        """The file parsed by pandas (plain data in the grader's process); a parse error fails the case."""
        import pandas as pd

        try:
            return pd.read_csv(io.BytesIO(self.read_bytes(name)), **kwargs)
        except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise SubmissionFileError(f"{name} is not a readable CSV file ({type(exc).__name__}: {exc})") from None

    __getitem__ = text

    def __repr__(self) -> str:
        return f"<files written by the notebook in {self.workdir}>"


@dataclass(frozen=True)
class RunInfo:
    """How the notebook's run went before the test cell that asks for it.

    Put that test cell last in the master so that it sees the whole run.
    """

    completed: bool  # every code cell before it ran, without error, within every limit (long output aside)
    seconds: float  # wall time of the student's cells so far
    figures: int  # outputs holding an image (matplotlib figures...)
    limits_hit: tuple[str, ...] = ()  # cell-time, notebook-time, memory...
    problems: tuple[str, ...] = ()  # what went wrong, one sentence each
    code: tuple[str, ...] = field(default=(), repr=False)  # the code cells' sources (parse, never run)


def run_info(nb: Any, upto: int, problems: list[Any], limits_hit: list[str], seconds: float,
             skip: set[int] = frozenset()) -> RunInfo:  # type: ignore[assignment]
    """A :class:`RunInfo` for cells ``0 .. upto - 1`` of ``nb`` (``skip``: test cells, not student code)."""
    cells = [c for i, c in enumerate(nb.cells[:upto]) if i not in skip and c.cell_type == "code"]
    figures = sum(1 for c in cells for o in c.get("outputs", [])
                  if o.get("output_type") in ("display_data", "execute_result")
                  and any(t in o.get("data", {}) for t in FIGURE_TYPES))
    stopped = [limit for limit in limits_hit if limit != "output"]  # truncated output is not a failed run
    return RunInfo(completed=not problems and not stopped, seconds=round(seconds, 3), figures=figures,
                   limits_hit=tuple(limits_hit), problems=tuple(p.describe() for p in problems),
                   code=tuple(c.source for c in cells))


def session_context(session: Any, hidden: Path | None, limit: int = DEFAULT_FILE_LIMIT) -> dict[str, Any]:
    """The context values of a checkpoint, from the executor's session and the hidden-data folder."""
    progress = getattr(session, "progress", None)
    if progress is None:
        run = RunInfo(False, 0.0, 0)
    else:
        run = run_info(progress.notebook, session.at, progress.problems, progress.limits_hit, progress.seconds,
                       set(session.checkpoints))
    # confined, the working copy the notebook wrote is the jail's, seen from the grader as session.workdir
    workdir = Path(getattr(session, "workdir", None) or session.jail.workdir) if getattr(session, "jail", None) is not None else None
    since = getattr(session, "started", None)
    return {"hidden": HiddenData(hidden), "files": SubmissionFiles(workdir, limit, since), "run": run}
