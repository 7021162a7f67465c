"""nbgrader's filesystem exchange with copies that never follow a student's links, and trusted times.

nbgrader's exchange copies with ``shutil.copytree`` (links followed, FIFOs opened, no bound on
depth) and dates each submission from its folder name and ``timestamp.txt``, both written by the
student's own process and rewritable by her afterwards. These subclasses replace the three steps
that copy a student's files, through nbgrader's ``ExchangeFactory`` (``c.ExchangeFactory.collect``,
``.submit``, ``.fetch_feedback`` in ``nbgrader_config.py``), so that ``edsgrade collect``, ``nbgrader
collect`` and the formgrader's Collect button all use them; nbgrader itself is not patched.

The submission time (:class:`SafeCollect`)
-------------------------------------------
A collected submission is dated by the latest *inode change time* (``st_ctime``) over its folder in
the exchange and every entry in it, read by the grader's process. The kernel sets a ctime to the
current time on every change of an inode (contents, name, mode, owner, links), and no
unprivileged process can set it back (``utime`` sets the access and modification times only; a
rename or a ``touch`` makes the ctime *later*). So a student can make her submission look later,
never earlier: rewriting ``timestamp.txt``, renaming the folder to an earlier time, adding a file
or a link after the deadline all move the time to when she did it. The time the student's process
wrote (``timestamp.txt``, the folder name) is kept in ``collect.json`` as "claimed", for
information only. The grader writes ``submitted/S/A/timestamp.txt`` itself with the trusted time,
and the latest submission of each student is chosen by trusted time too.

A simulated class (``edsgrade exam-demo``, the tests) cannot wait for real minutes to pass: its
simulation writes a table of simulated arrival times, keyed by submission folder, in the course
directory (never in the exchange) and points ``c.SafeCollect.simulated_arrivals`` at it; nothing a
student writes is ever read as a time.

What each collected submission records
--------------------------------------
``submitted/S/A/collect.json`` (:data:`COLLECT_FILE`): the exchange folder it came from, the trusted
and the claimed times, counts, and each refusal as a sentence ("`data/x.csv` is a link: not
collected"). The grading engine shows those sentences in the submission's result and feedback.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from nbgrader.exchange.default import ExchangeCollect, ExchangeFetchFeedback, ExchangeSubmit
from nbgrader.utils import parse_utc
from traitlets import Unicode

from edsgrade.exchange.safecopy import CopyLimits, CopyReport, Refusal, UnsafeFile, copy_tree, read_regular, scan_tree

if sys.platform != "win32":
    import pwd
else:  # pragma: no cover - the exchange does not run on Windows
    pwd = None

COLLECT_FILE = "collect.json"
TIMESTAMP_FILE = "timestamp.txt"
STAMP = "%Y-%m-%d %H:%M:%S.%f UTC"  # nbgrader's submission time format, always in UTC here
#: files of a submission that the student's process writes but the collect writes itself
GRADER_WRITTEN = (TIMESTAMP_FILE, COLLECT_FILE)
MAX_SMALL_FILE = 4096  # bytes of a timestamp.txt, submission_secret.txt or collect.json read at most


def format_time(when: dt.datetime) -> str:
    """``when`` (naive UTC or aware) in nbgrader's timestamp format, in UTC."""
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return when.strftime(STAMP)


def read_time(text: str) -> dt.datetime | None:
    """A timestamp as nbgrader writes it, as naive UTC; ``None`` when it is no readable time."""
    try:
        value = parse_utc(text.strip())
    except (ValueError, OverflowError, TypeError, LookupError):
        return None
    if not isinstance(value, dt.datetime) or not (2000 <= value.year <= 2200):
        return None  # absurd: no submission of this course was made then
    return value.replace(tzinfo=None) if value.tzinfo else value


def read_small(path: Path) -> str | None:
    """The text of a small regular file (never a link, FIFO...), or ``None``."""
    try:
        return read_regular(path, MAX_SMALL_FILE).decode("utf-8", "replace")
    except (OSError, UnsafeFile):
        return None


def read_collect_record(folder: Path) -> dict[str, Any]:
    """The ``collect.json`` of a collected submission folder (``{}`` if there is none or it is unreadable)."""
    try:
        data = json.loads(read_regular(folder / COLLECT_FILE, 1 << 20))
    except (OSError, UnsafeFile, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _limits(coursedir: Any) -> CopyLimits:
    """nbgrader's size settings (in kB, as its own copy reads them) as copy limits."""
    return CopyLimits(max_file_bytes=1000 * int(coursedir.max_file_size),
                      max_bytes=1000 * max(int(coursedir.max_dir_size), int(coursedir.max_file_size)))


class SafeCollect(ExchangeCollect):
    """nbgrader's collect with safe copies and trusted submission times (see the module's docstring)."""

    simulated_arrivals = Unicode(
        "", help="Simulations only: a JSON file {submission folder name: time} in the course directory "
                 "(never in the exchange) whose times replace the exchange's for those folders."
    ).tag(config=True)

    def _simulated(self) -> dict[str, str]:
        if not self.simulated_arrivals:
            return {}
        path = Path(self.simulated_arrivals).resolve()
        if Path(self.root).resolve() in path.parents:
            self.fail(f"c.SafeCollect.simulated_arrivals = {path} is in the exchange, where students write: "
                      "keep the simulation's table in the course directory")
        text = read_small_json(path)
        return {str(k): str(v) for k, v in text.items()}

    def _owner_uid(self, student: str) -> int | None:
        """The uid a submission of ``student`` must belong to, when ``check_owner`` and she has an account."""
        if not self.check_owner or pwd is None:
            return None
        try:
            return pwd.getpwnam(student).pw_uid
        except KeyError:
            return None  # a local exchange with student ids that are not accounts (the demo, tests)

    def _path_to_record(self, path: str) -> dict[str, Any]:
        name = os.path.basename(path)
        parts = name.rsplit("+", 3)
        if len(parts) < 3:
            return {}
        student = parts[0]
        simulated = self._simulated_table.get(name)
        report = scan_tree(Path(path), limits=self._copy_limits, ignore=self._ignored,
                           expect_uid=self._owner_uid(student))
        claimed = read_small(Path(path) / TIMESTAMP_FILE)
        record = {"username": student, "filename": name, "claimed": (claimed or "").strip()[:100] or parts[2][:100],
                  "time_source": "exchange inode change time", "scan": report}
        if simulated is not None and read_time(simulated) is not None:
            record["timestamp"], record["time_source"] = read_time(simulated), "simulation"
        elif report.latest_change is not None:
            record["timestamp"] = dt.datetime.fromtimestamp(report.latest_change, dt.timezone.utc).replace(tzinfo=None)
        else:
            record["timestamp"] = None
        return record

    def _sort_by_timestamp(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        dated = [r for r in records if r["timestamp"] is not None]
        undated = [r for r in records if r["timestamp"] is None]
        return sorted(dated, key=lambda r: (r["timestamp"], r["filename"]), reverse=True) + undated

    def _ignored(self, rel: str) -> bool:
        import fnmatch

        name = rel.rsplit("/", 1)[-1]
        if rel in GRADER_WRITTEN:
            return True
        return any(fnmatch.fnmatch(name, p) for p in self.coursedir.ignore)

    def init_src(self) -> None:
        """Find each student's submissions in inbound and pick the latest by trusted time (nbgrader's
        choice, with ``before_duedate`` too, but never by a time the student wrote)."""
        import glob

        from nbgrader.api import Gradebook, MissingEntry

        if self.coursedir.course_id == "":
            self.fail("No course id specified. Re-run with --course flag.")
        self._copy_limits = _limits(self.coursedir)
        self._simulated_table = self._simulated()
        self.course_path = os.path.join(self.root, self.coursedir.course_id)
        self.inbound_path = os.path.join(self.course_path, "inbound")
        if not os.path.isdir(self.inbound_path):
            self.fail(f"Course not found: {self.inbound_path}")
        student = glob.escape(self.coursedir.student_id) if self.coursedir.student_id not in ("", "*") else "*"
        pattern = os.path.join(self.inbound_path, f"{student}+{glob.escape(self.coursedir.assignment_id)}+*")
        by_student: dict[str, list[dict[str, Any]]] = {}
        for path in glob.glob(pattern):
            record = self._path_to_record(path)
            if record:
                by_student.setdefault(record["username"], []).append(record)
        with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gb:
            try:
                self.duedate = gb.find_assignment(self.coursedir.assignment_id).duedate
            except MissingEntry:
                self.duedate = None
        self.src_records = []
        for records in by_student.values():
            ordered = self._sort_by_timestamp(records)
            if self.duedate is not None and self.before_duedate:
                on_time = [r for r in ordered if r["timestamp"] is not None and r["timestamp"] <= self.duedate]
                ordered = on_time or ordered
            self.src_records.append(ordered[0])

    def copy_files(self) -> None:
        if not self.src_records:
            self.log.warning("No submissions of '%s' for course '%s' to collect",
                             self.coursedir.assignment_id, self.coursedir.course_id)
        self.collected: dict[str, list[Refusal]] = {}
        for rec in self.src_records:
            self._collect_one(rec)

    def _collect_one(self, rec: dict[str, Any]) -> None:
        student = rec["username"]
        src = Path(self.inbound_path) / rec["filename"]
        dest = Path(self.coursedir.format_path(self.coursedir.submitted_directory, student,
                                               self.coursedir.assignment_id))
        if dest.is_dir() and not dest.is_symlink():
            existing = read_time(read_small(dest / TIMESTAMP_FILE) or "")
            new = rec["timestamp"]
            newer = existing is None or new is None or new > existing
            if not ((self.update and newer) or (self.before_duedate and existing != new)):
                self.log.info("No newer submission to collect: %s %s", student, self.coursedir.assignment_id)
                return
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.collect-", dir=dest.parent))
        try:
            report = CopyReport()
            refusals = copy_tree(src, staging, limits=self._copy_limits, ignore=self._ignored, verb="collected",
                                 expect_uid=self._owner_uid(student), report=report)
            when = rec["timestamp"]
            if rec["time_source"] != "simulation" and report.latest_change is not None:
                # measured after the copy: anything changed while it ran dates the submission later
                when = max(when or dt.datetime.min,
                           dt.datetime.fromtimestamp(report.latest_change, dt.timezone.utc).replace(tzinfo=None))
            notes = [str(r) for r in refusals]
            if when is not None:
                (staging / TIMESTAMP_FILE).write_text(format_time(when))
            else:
                notes.append("the submission's time could not be read in the exchange: it is not dated")
            record = {"source": rec["filename"], "student": student, "assignment": self.coursedir.assignment_id,
                      "timestamp": format_time(when) if when else None, "time_source": rec["time_source"],
                      "claimed_timestamp": rec["claimed"], "files": report.files, "bytes": report.bytes,
                      "refusals": notes}
            (staging / COLLECT_FILE).write_text(json.dumps(record, indent=1, ensure_ascii=False))
            os.chmod(staging, 0o755)
            self._swap(staging, dest)
            staging = None
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        self.collected[student] = refusals
        self.log.info("Collected submission: %s %s (%d files%s)", student, self.coursedir.assignment_id,
                      report.files, f"; {len(refusals)} refused" if refusals else "")
        for r in refusals:
            self.log.warning("%s: %s", student, r)

    @staticmethod
    def _swap(staging: Path, dest: Path) -> None:
        """Replace ``dest`` by ``staging`` in one rename (a killed collect leaves the old or the new one)."""
        if dest.is_symlink() or dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            if old.exists():
                shutil.rmtree(old, ignore_errors=True)
            os.rename(dest, old)
            os.rename(staging, dest)
            if old.is_symlink() or not old.is_dir():
                old.unlink()
            else:
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, dest)


def read_small_json(path: Path) -> dict[str, Any]:
    """A grader-side JSON object (the simulation's table); ``{}`` if the file does not exist."""
    if not path.exists():
        return {}
    try:
        data = json.loads(read_regular(path, 16 << 20))
    except (UnsafeFile, ValueError) as exc:
        raise ValueError(f"{path} is not a readable JSON table ({exc}): remove it or write it again") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object {{folder name: time}}")
    return data


class SafeSubmit(ExchangeSubmit):
    """nbgrader's submit, copying the student's folder with :func:`copy_tree`: her links, FIFOs and
    hard links stay behind (she is told which), so a link in her folder never brings a file she can
    read, or root can, into the exchange."""

    def do_copy(self, src: str, dest: str, log: Any = None) -> None:
        import fnmatch

        patterns = list(self.coursedir.ignore)
        refused = copy_tree(Path(src), Path(dest), limits=_limits(self.coursedir), verb="submitted",
                            ignore=lambda rel: rel in GRADER_WRITTEN or
                            any(fnmatch.fnmatch(rel.rsplit("/", 1)[-1], p) for p in patterns))
        for r in refused:
            self.log.warning("%s", r)
        self.refused = refused


class SafeFetchFeedback(ExchangeFetchFeedback):
    """nbgrader's fetch_feedback, reading each page without following links and writing it into the
    student's folder without following a link planted there (a planted ``feedback/<time>`` link to
    another folder, or a page that is a link to another file, is replaced, never written through)."""

    def do_copy(self, src: str, dest: str) -> None:
        # never resolve() the destination: that would follow a link she planted on the way to it
        base, where = Path(os.path.abspath(self.assignment_dir)), Path(os.path.abspath(dest))
        if not where.is_relative_to(base):  # nbgrader's own destination always is
            self.fail(f"the feedback folder {where} is outside the assignment folder {base}: not fetched")
        rel_dest = where.relative_to(base)
        for notebook_id, timestamp, feedbackpath in self.feedback_files:
            try:
                page = read_regular(Path(feedbackpath), 64 << 20, verb="fetched")
            except UnsafeFile as exc:
                self.log.warning("%s", exc.refusal)
                continue
            rel = rel_dest / timestamp / f"{notebook_id}.html"
            problem = write_under(base, rel, page)
            if problem:
                self.log.warning("%s", problem)
            else:
                self.log.info("Fetched feedback: %s", base / rel)


def write_under(base: Path, rel: Path, data: bytes) -> Refusal | None:
    """Write ``data`` to ``base/rel`` creating folders, never through a link: each component is
    opened relative to its parent with ``O_NOFOLLOW``; a link or other non-folder in the way is
    removed (it is the student's own folder) and replaced by a real folder or file."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(base, flags)
    try:
        for part in rel.parts[:-1]:
            nfd = -1
            for _ in range(3):  # open it; or create it; or remove what is in the way, then create it
                try:
                    nfd = os.open(part, flags, dir_fd=fd)
                    break
                except FileNotFoundError:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except OSError:
                    os.unlink(part, dir_fd=fd)  # a link or a file where a folder goes: the student's own
            if nfd < 0:
                return Refusal(str(rel), "could not be written (something is in the way)", "fetched")
            os.close(fd)
            fd = nfd
        name = rel.parts[-1]
        try:
            os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError:
            return Refusal(str(rel), "has the name of a folder already there", "fetched")
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view):]
        finally:
            os.close(out)
    finally:
        os.close(fd)
    return None
