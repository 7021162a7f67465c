"""The local exchange: nbgrader's filesystem exchange, instructor and student sides.

``release`` and ``collect`` are the instructor's; ``fetch`` and ``submit`` are a student's (here
with an explicit student id, for the demo, the tests, or a student working on the same machine).
The exchange root comes from ``nbgrader_config.py`` (``c.Exchange.root``).

Submit and collect are built through nbgrader's ``ExchangeFactory``, configured in
``nbgrader_config.py`` (``c.ExchangeFactory.collect``...), so that they are the same classes as the
formgrader's Collect button: by default edsgrade's safe ones (:mod:`edsgrade.exchange.safe`), which
copy regular files only, never follow a student's link, and date submissions from the exchange
itself, not from what the student wrote.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from nbgrader.auth import Authenticator

from edsgrade.course import Course, CourseError
from edsgrade.errors import EdsgradeError

log = logging.getLogger("edsgrade")


class ExchangeError(EdsgradeError, RuntimeError):
    """An exchange step failed; the message says why and what to do."""


#: the safe classes used when ``nbgrader_config.py`` does not name others
SAFE_STEPS = {"collect": "edsgrade.exchange.safe.SafeCollect", "submit": "edsgrade.exchange.safe.SafeSubmit",
              "fetch_feedback": "edsgrade.exchange.safe.SafeFetchFeedback"}


def factory(course: Course):
    """nbgrader's ``ExchangeFactory`` for ``course``: its configuration, with edsgrade's safe collect,
    submit and fetch_feedback where ``nbgrader_config.py`` sets none."""
    from nbgrader.exchange import ExchangeFactory
    from traitlets.config import Config

    config = Config()
    config.merge(course.config)
    for step, name in SAFE_STEPS.items():
        if step not in config.ExchangeFactory:
            config.ExchangeFactory[step] = name
    return ExchangeFactory(config=config), config


def _run(step: object, what: str) -> None:
    from nbgrader.exchange import ExchangeError as NbExchangeError

    try:
        step.start()
    except NbExchangeError as exc:
        raise ExchangeError(f"{what} failed: {exc}") from exc


def _student_id(student: str) -> str:
    if not student or any(ch in student for ch in "*+/ \\") or student.startswith("."):
        raise ExchangeError(f"invalid student id {student!r}: use letters, digits, '-', '_' or '.'")
    return student


def release(course: Course, assignment: str, *, force: bool = True) -> Path:
    """Copy ``release/A`` to the exchange's outbound folder so students can fetch it."""
    from nbgrader.exchange.default import ExchangeReleaseAssignment

    if not course.release_dir(assignment).is_dir():
        raise CourseError(f"{course.release_dir(assignment)} does not exist: run `edsgrade build {assignment}` first.")
    course.ensure_exchange()
    step = ExchangeReleaseAssignment(coursedir=course.coursedir(assignment), authenticator=Authenticator(config=course.config),
                                     config=course.config)
    step.force = force
    _run(step, f"releasing {assignment}")
    return course.exchange_root / course.course_id / "outbound" / assignment


def fetch(course: Course, assignment: str, student: str, dest: Path | None = None, *, replace: bool = False) -> Path:
    """Copy a released assignment into a student's folder (default ``students/S``); return its path."""
    from nbgrader.exchange.default import ExchangeFetchAssignment

    outbound = course.exchange_root / course.course_id / "outbound" / assignment
    if not outbound.is_dir():
        raise ExchangeError(f"{assignment} is not released (no {outbound}): the instructor releases it with "
                            f"`edsgrade release {assignment}`.")
    home = Path(dest) if dest else course.student_home(_student_id(student))
    home.mkdir(parents=True, exist_ok=True)
    target = home / assignment
    if target.exists():
        if not replace:
            raise ExchangeError(f"{target} already exists: the assignment was fetched already "
                                "(use --replace to start again from the release; your changes would be lost).")
        shutil.rmtree(target)
    step = ExchangeFetchAssignment(coursedir=course.coursedir(assignment, _student_id(student)),
                                   authenticator=Authenticator(config=course.config), config=course.config)
    step.assignment_dir = str(home)
    _run(step, f"fetching {assignment} for {student}")
    return target


def submit(course: Course, assignment: str, student: str, src: Path | None = None) -> str:
    """Submit a student's folder ``src/A`` (default ``students/S/A``); return the submission timestamp."""
    home = Path(src) if src else course.student_home(_student_id(student))
    if not (course.exchange_root / course.course_id / "inbound").is_dir():
        raise ExchangeError(f"the exchange {course.exchange_root} has no inbound folder for {course.course_id}: "
                            f"{assignment} has not been released.")
    if not (home / assignment).is_dir():
        raise ExchangeError(f"{home / assignment} does not exist: fetch the assignment first "
                            f"(edsgrade fetch {assignment} --student {student}).")
    make, config = factory(course)
    step = make.Submit(coursedir=course.coursedir(assignment, _student_id(student)),
                       authenticator=Authenticator(config=config), config=config)
    step.assignment_dir = str(home)
    _run(step, f"submitting {assignment} for {student}")
    return step.timestamp


def collect(course: Course, assignment: str) -> list[str]:
    """Copy the latest submission of every student into ``submitted/S/A``; return the students.

    A newer submission replaces an older collected one. With the safe collect (the default), the
    grader writes ``submitted/S/A/timestamp.txt`` with the exchange's own time of the submission and
    ``collect.json`` with what was refused (links, pipes, hard links...); see
    :mod:`edsgrade.exchange.safe`.
    """
    inbound = course.exchange_root / course.course_id / "inbound"
    if not inbound.is_dir():
        raise ExchangeError(f"nothing to collect: {inbound} does not exist. Release {assignment} first "
                            f"(`edsgrade release {assignment}`), then students submit.")
    make, config = factory(course)
    step = make.Collect(coursedir=course.coursedir(assignment), authenticator=Authenticator(config=config),
                        config=config)
    step.update = True
    _run(step, f"collecting {assignment}")
    return course.submitted_students(assignment)
