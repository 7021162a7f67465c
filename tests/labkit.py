"""The lab fixture of the test suite, written once: builds shared by a session, one graded cohort per lab.

Building a lab (dataset generation, the master's reference run, nbgrader's ``generate_assignment``,
the Otter export) is the slow part of every lab test, and the demo test used to repeat it for every
lab. :class:`LabBuilds` builds each lab at most once per pytest session, into one shared course
directory, and hands each test a *copy* of that course holding only the labs it asked for (their
source, release and build products, and a gradebook that knows only those labs): a test never sees
what another test did to its course.

:func:`run_lab` is the pipeline every lab test runs on such a copy: release, each student fetches,
answers (a profile of :mod:`edsgrade.simulate.cohort`, or the full solution with some answer cells replaced
through :func:`edsgrade.simulate.cohort.with_answers`) and submits, collect, grade in one call, feedback.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterable, Mapping

import nbformat

from conftest import REPO, new_course
from edsgrade import exchange
from edsgrade.build.release import BuildReport, build
from edsgrade.simulate.cohort import answer, with_answers, write_submission
from edsgrade.course import Course
from edsgrade.feedback import write_feedback
from edsgrade.grading.autograde import grade_run
from edsgrade.authoring.master import Master, load_master

#: student -> {answer cell grade id -> code}, or a function of the built course and the master giving it
Answers = Mapping[str, Mapping[str, str]] | Callable[[Course, Master], Mapping[str, Mapping[str, str]]]


class LabBuilds:
    """Each lab built at most once per session, in one shared course directory; copies handed out per test."""

    def __init__(self, root: Path) -> None:
        self.root = new_course(root)
        self.course = Course(self.root)
        self.reports: dict[str, BuildReport] = {}
        self.failures: dict[str, BaseException] = {}

    def ensure(self, assignments: Iterable[str]) -> None:
        """Build those of ``assignments`` not built yet in this session (masters copied from the repository).

        A build that failed is not tried again in the session: every later test that needs it gets
        a ``RuntimeError`` chained to the first failure (one slow failing build, not one per test).
        """
        for name in assignments:
            if name in self.reports:
                continue
            if name in self.failures:
                raise RuntimeError(f"{name} failed to build earlier in this session") from self.failures[name]
            dest = self.root / "source" / name
            shutil.rmtree(dest, ignore_errors=True)  # a build that failed earlier in the session starts afresh
            dest.mkdir(parents=True)
            for item in (REPO / "source" / name).iterdir():
                if item.is_file():
                    shutil.copy(item, dest / item.name)
            try:
                self.reports[name] = build(self.course, name)
            except Exception as exc:
                self.failures[name] = exc
                raise

    def course_copy(self, dest: Path, assignments: Iterable[str]) -> Course:
        """A new course directory at ``dest`` holding the built ``assignments`` only (built first if needed)."""
        wanted = tuple(assignments)
        self.ensure(wanted)
        root = new_course(dest)
        shutil.copy(self.root / "gradebook.db", root / "gradebook.db")
        for name in wanted:
            for folder in ("source", "release", "build"):
                if (self.root / folder / name).is_dir():
                    shutil.copytree(self.root / folder / name, root / folder / name, symlinks=True)
        course = Course(root)
        with course.gradebook() as gb:  # the copy's gradebook knows only the labs copied
            for other in [a.name for a in gb.assignments if a.name not in wanted]:
                gb.remove_assignment(other)
        return course


def run_lab(builds: LabBuilds, dest: Path, assignment: str, *, profiles: Mapping[str, str] = {},
            answers: Answers = {}, **grade_options) -> SimpleNamespace:
    """The pipeline of a lab test on a fresh copy of the session's build of ``assignment``.

    Parameters
    ----------
    profiles:
        student -> profile of :data:`edsgrade.simulate.cohort.PROFILES` (``"full"``, ``"blank"``, ``"partial"``...).
    answers:
        student -> {answer cell -> code}: the full solution with those cells' solution regions replaced
        (:func:`edsgrade.simulate.cohort.with_answers`); or a function ``(course, master) -> that mapping``, for
        answers made from the master's own (a typical mistake) or from the build (values read off the data).
    grade_options:
        passed to :func:`edsgrade.grading.autograde.grade_run` (``cell_timeout=...``).

    Returns a namespace with ``root``, ``course``, ``master``, ``report`` (the session's build report)
    and ``results`` (student -> :class:`~edsgrade.grading.autograde.SubmissionResult`).
    """
    course = builds.course_copy(dest, (assignment,))
    exchange.release(course, assignment)
    master = load_master(course.master_path(assignment))
    release_nb = course.release_dir(assignment) / master.path.name
    for student, profile in profiles.items():
        folder = exchange.fetch(course, assignment, student)
        write_submission(profile, release_nb, master, folder / master.path.name)
        exchange.submit(course, assignment, student)
    own = answers(course, master) if callable(answers) else answers
    clash = set(own) & set(profiles)
    if clash:
        raise ValueError(f"students given both a profile and answers: {', '.join(sorted(clash))}")
    for student, code in own.items():
        folder = exchange.fetch(course, assignment, student)
        nb = with_answers(answer(nbformat.read(release_nb, as_version=4), master), master, code)
        nbformat.write(nb, folder / master.path.name)
        exchange.submit(course, assignment, student)
    exchange.collect(course, assignment)
    results = {r.student: r for r in grade_run(course, assignment, progress=False, **grade_options).results}
    write_feedback(course, assignment)
    return SimpleNamespace(root=course.root, course=course, master=master, report=builds.reports[assignment],
                           results=results)


def replaced(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` replaced by ``new``: a typical mistake made from a master's answer.

    Fails, naming the snippet, when the master no longer holds it (the test's mistake needs updating).
    """
    assert old in text, f"the master's answer changed: update this test's mistake ({old!r} not found)"
    return text.replace(old, new)


def scores(result) -> dict[str, float]:
    """Points per question of a graded submission."""
    return {q.grade_id: q.points for q in result.questions}


def lost(result) -> dict[str, list[str]]:
    """For each question not given full marks, its failed cases and their messages (for assertion messages)."""
    return {q.grade_id: [f"{c.name}: {c.message}" for c in q.cases if not c.passed] for q in result.questions
            if q.points < q.max_points}


def failed_cases(result) -> dict[str, set[str]]:
    """For each question with a failed case, the names of its failed cases."""
    return {q.grade_id: {c.name for c in q.cases if not c.passed} for q in result.questions
            if any(not c.passed for c in q.cases)}


def run_demo_cli(builds: LabBuilds, dest: Path) -> SimpleNamespace:
    """``edsgrade demo --reuse-build`` (every lab of the demo) on a copy of the session's builds.

    Returns a namespace with ``root``, ``course`` and ``proc`` (the finished command). The demo's own
    build step is tested by running it without ``--reuse-build`` (``tests/test_demo.py``).
    """
    from conftest import cli
    from edsgrade.simulate.demo import DEMO_ASSIGNMENTS

    course = builds.course_copy(dest, DEMO_ASSIGNMENTS)
    proc = cli(course.root, "demo", "--reuse-build", timeout=2400)
    return SimpleNamespace(root=course.root, course=course, proc=proc)
