"""nbgrader's filesystem exchange on the course hub: a student writes only her own submissions, and
nothing a student plants in a folder is followed.

Three of nbgrader's exchange classes are replaced through its ``ExchangeFactory`` (never by patching
nbgrader): the students' servers use :class:`PrivateSubmit` and :class:`PrivateFetchFeedback`
(``c.ExchangeFactory.submit`` / ``fetch_feedback``, written by ``edsgrade.hub.system``), and the course
directory, whose configuration the formgrader's Collect button and ``nbgrader collect`` read, uses
:class:`HubCollect` (``c.ExchangeFactory.collect``).

- **Submit.** nbgrader's own submit leaves a submission world-readable, hidden only by a random folder
  name in an inbound folder that students cannot list, and copies the student's folder with
  ``shutil.copytree`` (links followed, no bound). :class:`PrivateSubmit` copies it with
  :func:`edsgrade.safecopy.copy_tree` (regular files only, no link followed, count and sizes bounded;
  each refusal is in the log the assignment list shows), creating every folder afresh so that each
  inherits the grader account's group from the set-group-id inbound folder, then makes it readable by
  its author and that group only. It submits only under the student's own user name.
- **Collect.** The inbound folder is writable by every student (sticky, so only its author renames or
  deletes a submission), so anyone can *create* a folder named ``bob+A+time+rand`` there.
  :class:`HubCollect` takes a submission only when the folder and everything in it belong to the system
  user of the student it is filed under; any other is refused before the latest submission is chosen
  (a planted folder can neither replace bob's work nor hide it) and the refusal is recorded.
- **Fetch feedback.** :class:`PrivateFetchFeedback` reads the released page as a regular file and
  writes it into the student's folder without following a link planted on the way.
"""
from __future__ import annotations

import datetime
import errno
import glob
import json
import os
import pwd
import stat
from collections import defaultdict
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.exchange.default import ExchangeCollect, ExchangeFetchFeedback, ExchangeSubmit
from nbgrader.utils import get_username

from ..safecopy import CopyLimits, CopyReport, Refusal, UnsafeFile, copy_tree, read_regular, scan_tree

#: largest feedback page a student's server fetches
MAX_FEEDBACK_BYTES = 64 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def close_to_others(path: Path) -> None:
    """Folders ``rwxr-x---``, files ``rw-r-----`` under ``path``: the author and the folder's group only
    (a link, which the copy never makes but its author could add, is left alone, never followed)."""
    for folder, dirs, files in os.walk(path):
        for name in files:
            target = Path(folder) / name
            if stat.S_ISREG(os.lstat(target).st_mode):
                os.chmod(target, 0o640)
        os.chmod(folder, 0o750)


class PrivateSubmit(ExchangeSubmit):
    """nbgrader's submit, with a safe copy and the submission closed to other students (module docstring)."""

    def init_dest(self) -> None:
        me = get_username()
        if self.coursedir.student_id not in ("*", "", me):
            self.fail(f"you are logged in as {me!r}: you can submit only under your own name, not as "
                      f"{self.coursedir.student_id!r} (remove CourseDirectory.student_id from your configuration).")
        super().init_dest()

    def copy_limits(self) -> CopyLimits:
        """nbgrader's ``max_file_size`` and ``max_dir_size`` (kB) as the copy's bounds."""
        return CopyLimits(max_file_bytes=1000 * self.coursedir.max_file_size,
                          max_bytes=1000 * self.coursedir.max_dir_size)

    def do_copy(self, src, dest, log=None):  # noqa: D102 - nbgrader's interface
        refusals = copy_tree(Path(src), Path(dest), limits=self.copy_limits(), ignore=list(self.coursedir.ignore),
                             verb="submitted")
        for refusal in refusals:
            self.log.warning("%s", refusal)

    def copy_files(self) -> None:  # noqa: D102 - nbgrader's interface
        super().copy_files()
        close_to_others(Path(self.inbound_path) / self.assignment_filename)


def _open_folder_chain(base: Path, parts: list[str]) -> int:
    """A descriptor of ``base/parts...``, each part opened (created if missing) relative to the one
    before it without following a link; :class:`UnsafeFile` names the first part that is a link."""
    fd = os.open(base, _DIR_FLAGS)
    walked = []
    try:
        for part in parts:
            walked.append(part)
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafeFile(Refusal("/".join(walked), "is a link or not a folder",
                                             "written through")) from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class PrivateFetchFeedback(ExchangeFetchFeedback):
    """nbgrader's fetch_feedback without following a link: the released page is read as a regular file
    of bounded size, and written into ``A/feedback/TIMESTAMP/`` through folders opened one by one with
    ``O_NOFOLLOW`` (a link planted there refuses the fetch of that page, with a message, instead of
    writing where it points)."""

    def do_copy(self, src, dest):  # noqa: D102 - nbgrader's interface
        dest = Path(dest)
        base = Path(self.assignment_dir).resolve()
        rel = dest.relative_to(base) if dest.is_relative_to(base) else None
        for notebook_id, timestamp, feedbackpath in self.feedback_files:
            try:
                page = read_regular(Path(feedbackpath), MAX_FEEDBACK_BYTES, verb="fetched",
                                    shown=f"feedback of {notebook_id}")
                parts = [*(rel.parts if rel is not None else dest.parts[1:]), timestamp]
                folder = _open_folder_chain(base if rel is not None else Path("/"), parts)
            except UnsafeFile as exc:
                self.log.error("%s: feedback not fetched (remove it and fetch again)", exc.refusal)
                continue
            name = notebook_id + ".html"
            try:
                try:
                    os.unlink(name, dir_fd=folder)  # an earlier copy, or a link planted under its name
                except FileNotFoundError:
                    pass
                out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                              dir_fd=folder)
                with os.fdopen(out, "wb") as fh:
                    fh.write(page)
            except IsADirectoryError:
                self.log.error("%s/%s is a folder: feedback not fetched (remove it and fetch again)",
                               dest / timestamp, name)
                continue
            finally:
                os.close(folder)
            self.log.info("Fetched feedback: %s", dest / timestamp / name)


#: where :class:`HubCollect` records what it refused, per assignment (``collect-log/A.json`` in the course)
COLLECT_LOG = "collect-log"
#: nbgrader's timestamp format (what ``timestamp.txt`` holds and ``nbgrader.utils.parse_utc`` reads)
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"


def trusted_time(report: CopyReport) -> datetime.datetime | None:
    """The submission time the exchange itself observed: the latest inode change time over the folder
    and everything in it (no student can set a ctime back; renaming the folder or rewriting
    ``timestamp.txt`` only makes it later)."""
    if report.latest_change is None:
        return None
    return datetime.datetime.fromtimestamp(report.latest_change, datetime.timezone.utc)


class HubCollect(ExchangeCollect):
    """nbgrader's collect for the course hub: only a student's own submissions, copied safely, with the
    time the exchange observed (see the module docstring).

    A folder ``S+A+TIME+RAND`` of the inbound folder is a submission of ``S`` only when it, and every
    entry in it, belongs to the system user ``S``; anything else is refused before the latest
    submission is chosen, and each refusal is logged and written to ``collect-log/A.json`` in the
    course directory (``{"student": ["sentence", ...]}``). The latest submission is the one with the
    latest trusted time (:func:`trusted_time`), never the time in its name or its ``timestamp.txt``;
    the collected ``timestamp.txt`` holds that trusted time, which the gradebook then records.
    """

    def owner_uid(self, student: str) -> int | None:
        """The uid of the system user ``student``, or ``None`` when there is none."""
        try:
            return pwd.getpwnam(student).pw_uid
        except KeyError:
            return None

    def refuse(self, student: str, sentence: str) -> None:
        self.refusals[student].append(sentence)
        self.log.warning("%s: %s", student, sentence)

    def init_src(self) -> None:  # noqa: D102 - nbgrader's interface; its selection, on checked records
        if self.coursedir.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        self.refusals: dict[str, list[str]] = defaultdict(list)
        self.course_path = os.path.join(self.root, self.coursedir.course_id)
        self.inbound_path = os.path.join(self.course_path, "inbound")
        if not os.path.isdir(self.inbound_path):
            self.fail(f"Course not found: {self.inbound_path}")
        student_id = self.coursedir.student_id if self.coursedir.student_id else "*"
        pattern = os.path.join(glob.escape(self.inbound_path), f"{student_id}+{self.coursedir.assignment_id}+*")
        by_student: dict[str, list[dict]] = defaultdict(list)
        for path in glob.glob(pattern):
            record = self.checked_record(path)
            if record is not None:
                by_student[record["username"]].append(record)
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                self.duedate = gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                self.duedate = None
        if self.duedate is not None and self.duedate.tzinfo is None:
            self.duedate = self.duedate.replace(tzinfo=datetime.timezone.utc)  # the gradebook stores UTC
        self.src_records = []
        for records in by_student.values():
            records.sort(key=lambda r: r["timestamp"], reverse=True)
            on_time = [r for r in records if self.duedate is not None and r["timestamp"] <= self.duedate]
            self.src_records.append(on_time[0] if self.before_duedate and on_time else records[0])

    def checked_record(self, path: str) -> dict | None:
        """The record of one inbound folder if it is its student's own submission, else ``None`` (refused)."""
        filename = os.path.basename(path)
        parts = filename.rsplit("+", 3)
        if len(parts) < 3 or not parts[0]:
            self.refuse("(unknown)", f"`{filename!r}` is not named STUDENT+ASSIGNMENT+TIME: not collected")
            return None
        student = parts[0]
        uid = self.owner_uid(student)
        if uid is None:
            self.refuse(student, f"`{filename}` is filed under {student!r}, who has no account: not collected")
            return None
        try:
            info = os.lstat(path)
        except OSError:
            return None
        if not stat.S_ISDIR(info.st_mode):
            self.refuse(student, f"`{filename}` is not a folder (a link, a file...): not collected")
            return None
        if info.st_uid != uid:
            self.refuse(student, f"`{filename}`: submitted under {student}'s name by another account "
                                 f"(uid {info.st_uid}): not collected")
            return None
        report = scan_tree(Path(path), limits=self.copy_limits(), expect_uid=uid)
        when = trusted_time(report)
        if when is None:
            self.refuse(student, f"`{filename}` could not be read: not collected")
            return None
        return {"username": student, "filename": filename, "timestamp": when, "uid": uid}

    def copy_limits(self) -> CopyLimits:
        """nbgrader's ``max_file_size`` and ``max_dir_size`` (kB) as the copy's bounds."""
        return CopyLimits(max_file_bytes=1000 * self.coursedir.max_file_size,
                          max_bytes=1000 * self.coursedir.max_dir_size)

    def copy_files(self) -> None:  # noqa: D102 - nbgrader's interface
        self._records = {os.path.join(self.inbound_path, r["filename"]): r for r in self.src_records}
        super().copy_files()
        self.write_log()

    def do_copy(self, src, dest):  # noqa: D102 - nbgrader's interface
        record = self._records[src]
        report = CopyReport()
        for refusal in copy_tree(Path(src), Path(dest), limits=self.copy_limits(), expect_uid=record["uid"],
                                 ignore=["timestamp.txt"], report=report):
            self.refuse(record["username"], str(refusal))
        when = max(filter(None, [record["timestamp"], trusted_time(report)]))
        Path(dest, "timestamp.txt").write_text(when.strftime(TIMESTAMP_FORMAT))

    def write_log(self) -> None:
        """``collect-log/A.json`` in the course directory: each student's refusals of this collect."""
        folder = Path(self.coursedir.root) / COLLECT_LOG
        folder.mkdir(exist_ok=True)
        out = folder / f"{self.coursedir.assignment_id}.json"
        out.write_text(json.dumps(dict(self.refusals), indent=2, ensure_ascii=False))
