"""nbgrader's filesystem exchange on the course hub: a student writes only her own submissions.

The course's safe exchange steps (:mod:`edsgrade.exchange.safe`: copies of regular files only, no link
followed, bounded; submissions dated by the exchange's inode change times) do the copying on the hub
too. What the hub adds is *who*: on a hub every student is a system user, and the inbound folder is
shared by all of them, so two of the steps are subclassed here, through nbgrader's ``ExchangeFactory``
(never by patching nbgrader):

- **Submit** (:class:`PrivateSubmit`, the students' servers' ``c.ExchangeFactory.submit``, written by
  :func:`edsgrade.hub.system.nbgrader_config`). :class:`~edsgrade.exchange.safe.SafeSubmit`'s copy,
  only under the student's own user name, and the submission closed to the other students (nbgrader's
  own leaves it world-readable, hidden only by a random name in an inbound folder nobody can list):
  every folder is created afresh by the copy, so it inherits the grader account's group from the
  set-group-id inbound folder, then it is made readable by its author and that group only.
- **Collect** (:class:`HubCollect`, the course directory's ``c.ExchangeFactory.collect``, which both
  the formgrader's Collect button and ``edsgrade hub-grade`` read: :func:`~edsgrade.hub.system.hub_course_config`).
  The inbound folder is writable by every student (sticky: only its author renames or deletes a
  submission), so anyone can *create* a folder named ``bob+A+TIME+RAND`` there. HubCollect takes a
  folder as bob's only when it belongs to bob's system user (and, as SafeCollect then checks, only
  what in it belongs to him); any other is refused *before* the latest submission is chosen, so a
  planted folder, however late its name, neither replaces bob's work nor hides it. Every refusal of
  a collect is written to ``collect-log/A.json`` in the course directory.
- **Fetch feedback**: :class:`~edsgrade.exchange.safe.SafeFetchFeedback` as it is (the page read as a
  regular file, written into the student's folder without following a link she planted there).
"""
from __future__ import annotations

import json
import os
import pwd
import stat
from collections import defaultdict
from pathlib import Path
from typing import Any

from nbgrader.utils import get_username

from edsgrade.exchange.safe import SafeCollect, SafeSubmit

#: where :class:`HubCollect` records what it refused, per assignment (``collect-log/A.json`` in the course)
COLLECT_LOG = "collect-log"


def close_to_others(path: Path) -> None:
    """Folders ``rwxr-x---``, files ``rw-r-----`` under ``path``: the author and the folder's group only
    (a link, which the copy never makes but its author could add, is left alone, never followed)."""
    for folder, dirs, files in os.walk(path):
        for name in files:
            target = Path(folder) / name
            if stat.S_ISREG(os.lstat(target).st_mode):
                os.chmod(target, 0o640)
        os.chmod(folder, 0o750)


class PrivateSubmit(SafeSubmit):
    """SafeSubmit under the student's own name only, the submission closed to others (module docstring)."""

    def init_dest(self) -> None:  # noqa: D102 - nbgrader's interface
        me = get_username()
        if self.coursedir.student_id not in ("*", "", me):
            self.fail(f"you are logged in as {me!r}: you can submit only under your own name, not as "
                      f"{self.coursedir.student_id!r} (remove CourseDirectory.student_id from your configuration).")
        super().init_dest()

    def copy_files(self) -> None:  # noqa: D102 - nbgrader's interface
        super().copy_files()
        close_to_others(Path(self.inbound_path) / self.assignment_filename)


class HubCollect(SafeCollect):
    """SafeCollect for the course hub: a folder ``S+A+TIME+RAND`` of the inbound folder is a submission
    of ``S`` only when it belongs to the system user ``S`` (see the module docstring).

    The ownership rule is SafeCollect's own (``pwd.getpwnam(S).pw_uid``, the folder and every entry in
    it), made mandatory: nbgrader's ``check_owner`` cannot turn it off on the hub, and a name that is no
    system user is refused rather than taken unchecked. Everything else is SafeCollect's: the trusted
    time, ``submitted/S/A/collect.json``, the choice of the latest submission among the accepted ones.
    Each refusal is logged and written to ``collect-log/A.json`` in the course directory
    (``{"student": ["sentence", ...]}``), the ones of the collected copies included.
    """

    def _owner_uid(self, student: str) -> int | None:
        try:
            return pwd.getpwnam(student).pw_uid
        except KeyError:
            return None

    def refuse(self, student: str, sentence: str) -> None:
        """Record one refused folder or file of ``student``'s (log and ``collect-log``)."""
        self.refusals[student].append(sentence)
        self.log.warning("%s: %s", student, sentence)

    def init_src(self) -> None:  # noqa: D102 - nbgrader's interface
        self.refusals: dict[str, list[str]] = defaultdict(list)
        super().init_src()

    def _path_to_record(self, path: str) -> dict[str, Any]:
        """SafeCollect's record of one inbound folder if it is its student's own, else ``{}`` (refused)."""
        filename = os.path.basename(path)
        parts = filename.rsplit("+", 3)
        if len(parts) < 3 or not parts[0]:
            self.refuse("(unknown)", f"`{filename}` is not named STUDENT+ASSIGNMENT+TIME: not collected")
            return {}
        student = parts[0]
        uid = self._owner_uid(student)
        if uid is None:
            self.refuse(student, f"`{filename}` is filed under {student!r}, who has no account: not collected")
            return {}
        try:
            info = os.lstat(path)
        except OSError:
            return {}  # gone since the listing: its author removed it
        if not stat.S_ISDIR(info.st_mode):
            self.refuse(student, f"`{filename}` is not a folder (a link, a file...): not collected")
            return {}
        if info.st_uid != uid:
            self.refuse(student, f"`{filename}`: submitted under {student}'s name by another account "
                                 f"(uid {info.st_uid}): not collected")
            return {}
        return super()._path_to_record(path)

    def copy_files(self) -> None:  # noqa: D102 - nbgrader's interface
        super().copy_files()
        for student, refused in self.collected.items():
            for refusal in refused:
                self.refusals[student].append(str(refusal))
        self.write_log()

    def write_log(self) -> None:
        """``collect-log/A.json`` in the course directory: each student's refusals of this collect."""
        folder = Path(self.coursedir.root) / COLLECT_LOG
        folder.mkdir(exist_ok=True)
        out = folder / f"{self.coursedir.assignment_id}.json"
        out.write_text(json.dumps(dict(self.refusals), indent=2, ensure_ascii=False))
