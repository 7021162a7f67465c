"""``edsgrade``: the command line, a thin layer over the Python API (one sub-command per stage)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.text import Text

from edsgrade.config import DEFAULTS
from edsgrade.course import Course, CourseError

#: Markup is off for the whole console: student names, notes, messages from a submission's process and
#: assignment names reach it, and any of them may hold text that looks like markup (``[/x]``, ``[bold]``).
#: Styles are given as :class:`rich.text.Text` spans instead (see :func:`done`), never parsed from text.
console = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 120)


def echo(message: str) -> None:
    """Print a progress line as it is (never read as rich markup)."""
    console.print(message, markup=False)


def done(verb: str, rest: str) -> None:
    """Print ``verb`` in green, then ``rest`` as plain text (never read as markup)."""
    console.print(Text.assemble((verb, "green"), " ", rest))


def _course(args: argparse.Namespace) -> Course:
    return Course(args.course_dir)


def cmd_build(args: argparse.Namespace) -> None:
    from edsgrade.build.release import build

    course = _course(args)
    names = course.assignments() if args.all else [args.assignment]
    if not names or names == [None]:
        raise SystemExit("error: name an assignment, or use --all")
    for name in names:
        report = build(course, name, echo=echo)
        done("built", f"{name} in {report.seconds:.1f} s (master ran in {report.master_seconds:.1f} s): "
                      f"release {report.release}, "
                      f"{report.questions} autograded questions ({report.auto_points:g} pt) + "
                      f"{report.manual_points:g} pt by hand; Otter autograder {report.autograder_zip}")


def cmd_release(args: argparse.Namespace) -> None:
    from edsgrade.exchange import release

    path = release(_course(args), args.assignment)
    done("released", f"{args.assignment} to {path}")


def cmd_fetch(args: argparse.Namespace) -> None:
    from edsgrade.exchange import fetch

    path = fetch(_course(args), args.assignment, args.student, args.dest, replace=args.replace)
    done("fetched", f"{args.assignment} for {args.student} into {path}")


def cmd_submit(args: argparse.Namespace) -> None:
    from edsgrade.exchange import submit

    stamp = submit(_course(args), args.assignment, args.student, args.src)
    done("submitted", f"{args.assignment} for {args.student} at {stamp}")


def cmd_collect(args: argparse.Namespace) -> None:
    from edsgrade.exchange import collect

    students = collect(_course(args), args.assignment)
    done("collected", f"{len(students)} submissions of {args.assignment}: {', '.join(students)}")


def _label(result) -> str:
    """A one-word status for the score table."""
    from edsgrade.grading.engine import Status

    kinds = {p["kind"] for p in result.execution.get("problems", [])}
    if result.status is not Status.GRADED:
        return result.status.value
    if "timeout" in kinds or "died" in kinds:  # the executor's problem kinds (CellProblem.kind)
        return "stopped"
    return "errors" if kinds else ("repaired" if result.notes else "ok")


def _print_results(course: Course, assignment: str, results) -> None:
    from edsgrade.report import score_table

    console.print(score_table(course, assignment, {r.student: _label(r) for r in results}))
    for r in results:
        details = [r.message] if r.message else []
        details += r.notes
        if details:
            console.print(f"  {r.student}: " + "; ".join(details), overflow="fold")


def cmd_grade(args: argparse.Namespace) -> None:
    from edsgrade.grading.autograde import grade_run

    course = _course(args)
    run = grade_run(course, args.assignment, args.student or None, cell_timeout=args.cell_timeout,
                    timeout=args.timeout, memory=args.memory, sandbox=args.sandbox, progress=not args.quiet,
                    force=args.force, workers=args.workers, backend=args.backend, scheduler=args.scheduler)
    _print_results(course, args.assignment, run.results)
    console.print(run.summary())


def cmd_feedback(args: argparse.Namespace) -> None:
    from edsgrade.feedback import write_feedback

    paths = write_feedback(_course(args), args.assignment, args.student or None)
    if not paths:
        raise CourseError(f"no graded submission of {args.assignment}: run `edsgrade grade {args.assignment}` first.")
    for p in paths:
        console.print(f"feedback: {p}")


def cmd_grades(args: argparse.Namespace) -> None:
    from edsgrade.report import course_table, grade_table, score_table, write_course_csv, write_csv

    course = _course(args)
    if args.course or not args.assignment:
        from edsgrade.grades.final import course_grades

        summary = course_grades(course, args.scale)
        console.print(course_table(summary))
        if args.csv:
            write_course_csv(summary, Path(args.csv))
            console.print(f"wrote {len(summary.rows)} rows to {args.csv}")
        return
    console.print(score_table(course, args.assignment))
    console.print(grade_table(course, args.assignment, args.scale))
    if args.csv:
        rows = write_csv(course, args.assignment, Path(args.csv), args.scale)
        console.print(f"wrote {len(rows)} rows to {args.csv}")


def cmd_rubric(args: argparse.Namespace) -> None:
    from edsgrade.report import rubric_schemes, rubric_table
    from edsgrade.grades.rubric import RubricError, set_criterion

    course = _course(args)
    if args.scheme:
        console.print(rubric_schemes(course, args.assignment), markup=False)
        return
    if args.criterion or args.points is not None or args.comment is not None:
        if not args.student or not args.criterion:
            raise RubricError("to mark a criterion, give --student S --criterion C and --points P and/or --comment TEXT")
        entry = set_criterion(course, args.assignment, args.student, args.criterion, points=args.points,
                              comment=args.comment)
        points = "not marked" if entry.points is None else f"{entry.points:g} / {entry.max_points:g}"
        console.print(f"{args.assignment} / {args.student} / {entry.criterion}: {points}"
                      + (f" — {entry.comment}" if entry.comment else ""), markup=False)
        return
    console.print(rubric_table(course, args.assignment, args.student))


def cmd_exam(args: argparse.Namespace) -> None:
    from edsgrade.exam import ExamError, close_exam, deadline, extend, minutes_text, open_exam, show_time, utcnow

    course = _course(args)
    if args.action == "open":
        session = open_exam(course, args.assignment, start=args.start, duration_minutes=args.duration, echo=echo)
        done("opened", f"{args.assignment}: released to {session.release}")
        console.print(f"start {show_time(course, session.start)}, duration {session.duration_minutes:g} min, "
                      f"deadline {show_time(course, session.deadline)} (stored in the gradebook)", markup=False)
        return
    if args.action == "close":
        report = close_exam(course, args.assignment, force=args.force)
        done("collected", f"{len(report.arrivals)} submissions of {args.assignment} "
                      f"(deadline {show_time(course, report.deadline)}; late policy: {report.policy})")
        for a in report.arrivals:
            when = show_time(course, a.timestamp) if a.timestamp else f"undated ({a.problem or 'no timestamp'})"
            flag = f"LATE by {minutes_text(a.seconds_late)}" if a.late else "on time"
            if a.extension:
                flag += f" (extension {minutes_text(a.extension.total_seconds())})"
            console.print(f"  {a.student}: {when}, {flag}", markup=False)
        if report.missing:
            console.print(f"no submission from: {', '.join(report.missing)}", markup=False)
        console.print(f"next: edsgrade grade {args.assignment}; edsgrade rubric {args.assignment} ...; "
                      f"edsgrade feedback {args.assignment}", markup=False)
        return
    if args.action == "extend":
        if not args.student or args.minutes is None:
            raise ExamError("give --student S and --minutes M (extra minutes; 0 removes the extension)")
        own = extend(course, args.assignment, args.student, args.minutes)
        console.print(f"{args.student}: {args.minutes:g} extra minutes, own deadline {show_time(course, own)}",
                      markup=False)
        return
    due = deadline(course, args.assignment)
    if due is None:
        console.print(f"{args.assignment} has no deadline: not opened as an exam", markup=False)
        return
    left = (due - utcnow()).total_seconds()
    state = f"{minutes_text(left)} left" if left > 0 else f"closed {minutes_text(-left)} ago"
    console.print(f"{args.assignment}: deadline {show_time(course, due)} ({state})", markup=False)


def cmd_demo(args: argparse.Namespace) -> None:
    from edsgrade.simulate.demo import DEMO_ASSIGNMENTS, run_demo

    course = _course(args)
    total = 0.0
    for assignment in args.assignments or DEMO_ASSIGNMENTS:
        report = run_demo(course, assignment, cell_timeout=args.cell_timeout, echo=echo,
                          progress=not args.quiet, rebuild=not args.reuse_build)
        _print_results(course, report.assignment, report.results)
        console.print(f"feedback for each student: {course.root / 'feedback'}/<student>/{report.assignment}/")
        for p in report.feedback[:3]:
            console.print(f"  e.g. {p}")
        total += report.seconds
    console.print(f"demo finished in {total:.0f} s")


def cmd_exam_demo(args: argparse.Namespace) -> None:
    from edsgrade.simulate.examdemo import run_exam_demo
    from edsgrade.report import grade_table

    course = _course(args)
    report = run_exam_demo(course, cell_timeout=args.cell_timeout, echo=echo, progress=not args.quiet)
    _print_results(course, report.assignment, report.results)
    console.print(grade_table(course, report.assignment))
    console.print(f"feedback for each student: {course.root / 'feedback'}/<student>/{report.assignment}/")
    console.print(f"exam demo finished in {report.seconds:.0f} s")


def cmd_hub(args: argparse.Namespace) -> None:
    from edsgrade.course import find_course_root
    from edsgrade.hub.launcher import run_hub
    from edsgrade.hub.password import hub_password
    from edsgrade.hub.settings import HubSettings
    from edsgrade.hub.system import default_singleuser_python

    password = hub_password(args.password_file, refused_argv=args.password)
    settings = HubSettings(state_dir=args.state_dir, course_dir=args.hub_course_dir or f"{args.state_dir}/eds",
                           exchange_root=args.exchange, instructors=args.instructor or ["instructor"],
                           password=password.value, ip=args.ip, port=args.port,
                           python=args.python or default_singleuser_python(),
                           extra_config=args.config)
    where = f"http://{'localhost' if args.ip in ('127.0.0.1', '0.0.0.0') else args.ip}:{args.port}"
    shown = password.value if password.source == "random" else f"the one from {password.source}"
    console.print(f"log in at {where} with any user name (instructors: {', '.join(settings.instructors)}) "
                  f"and the password: {shown}", markup=False)
    raise SystemExit(run_hub(settings, find_course_root(args.course_dir)))


def cmd_hub_grade(args: argparse.Namespace) -> None:
    from edsgrade.hub.grading import grade_on_hub
    from edsgrade.hub.settings import HubSettings

    settings = HubSettings.load(Path(args.state_dir) / "hub" / "settings.json")
    report = grade_on_hub(settings, args.assignment, args.student or None)
    _print_results(Course(settings.course_dir), args.assignment, report.results)
    console.print(f"{len(report.feedback)} feedback pages written: release them in the formgrader "
                  f"(or `nbgrader release_feedback {args.assignment}` as {settings.grader_user}).", markup=False)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edsgrade", description="Autograded assignments for Earth data science.")
    p.add_argument("--course-dir", default=None, help="course directory (default: the one containing the working directory)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("-v", "--verbose", action="store_true", help="show nbgrader's and the executor's logs")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error, not only its message")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func, help: str, assignment: bool = True) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        if assignment:
            sp.add_argument("assignment", help="assignment name (a folder of source/)")
        sp.set_defaults(func=func)
        return sp

    b = command("build", cmd_build, "generate the student release, data, checks and Otter export", assignment=False)
    b.add_argument("assignment", nargs="?", help="assignment name")
    b.add_argument("--all", action="store_true", help="build every assignment of source/")
    command("release", cmd_release, "release a built assignment to the exchange")
    for name, func, verb in (("fetch", cmd_fetch, "fetch"), ("submit", cmd_submit, "submit")):
        sp = command(name, func, f"(student side) {verb} an assignment through the local exchange")
        sp.add_argument("--student", required=True, help="student id")
        if name == "fetch":
            sp.add_argument("--dest", type=Path, help="folder to fetch into (default: students/STUDENT)")
            sp.add_argument("--replace", action="store_true", help="replace an earlier fetched copy")
        else:
            sp.add_argument("--src", type=Path, help="folder holding the assignment (default: students/STUDENT)")
    command("collect", cmd_collect, "collect the latest submissions into submitted/")
    g = command("grade", cmd_grade, "autograde collected submissions and record the scores")
    g.add_argument("--student", action="append", help="grade only this student (repeatable)")
    g.add_argument("--cell-timeout", type=int, help="seconds allowed per cell (default from nbgrader_config.py)")
    g.add_argument("--memory", type=int, help=f"memory limit of a submission in MiB (default c.Grader.memory, {DEFAULTS['memory']})")
    g.add_argument("--workers", type=int, help="submissions graded at once (default: one per CPU core)")
    g.add_argument("--force", action="store_true", help="regrade submissions already graded and unchanged")
    g.add_argument("--backend", choices=("local", "dask"), default="local",
                   help="local worker threads (default) or a Dask distributed cluster")
    g.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (with --backend dask)")
    g.add_argument("--sandbox", choices=("auto", "on", "off"),
                   help="auto (default: full sandbox when root), on (required), off (trusted notebooks only)")
    g.add_argument("--timeout", type=int, help="seconds allowed per submission")
    f = command("feedback", cmd_feedback, "write HTML feedback for graded submissions into feedback/")
    f.add_argument("--student", action="append", help="only this student (repeatable)")
    gr = command("grades", cmd_grades, "final grades of an assignment, or the course total (weighted by "
                                       "assignment); optionally as CSV", assignment=False)
    gr.add_argument("assignment", nargs="?", help="assignment name (none: the course total)")
    gr.add_argument("--course", action="store_true", help="the course total: every assignment, weighted")
    gr.add_argument("--csv", help="also write the grades to this CSV file")
    gr.add_argument("--scale", type=float, help=f"grades out of this (default c.Grades.scale, {DEFAULTS['scale']:g})")
    ru = command("rubric", cmd_rubric, "rubric grading: mark a criterion (points, comment) or show the rubric")
    ru.add_argument("--student", help="student id (alone: show this student's rubric)")
    ru.add_argument("--criterion", help="criterion to mark (the grade_id of a manually graded cell)")
    ru.add_argument("--points", type=float, help="points for the criterion (0 to its maximum)")
    ru.add_argument("--comment", help="comment for the student on this criterion")
    ru.add_argument("--scheme", action="store_true", help="show the criteria and their mark schemes")
    ex = command("exam", cmd_exam, "exam day: open (build, set the deadline, release), close (collect, flag "
                                   "late submissions), status, extend (extra time)", assignment=False)
    ex.add_argument("action", choices=("open", "close", "status", "extend"),
                    help="open, close, status, or extend (extra time for one student)")
    ex.add_argument("assignment", help="assignment name")
    ex.add_argument("--start", help="(open) start time, e.g. '2026-06-12 09:00' (default: now; a time without "
                                    "a zone is in c.Exchange.timezone)")
    ex.add_argument("--duration", type=float, help="(open) minutes (default: c.Exam.duration_minutes or the "
                                                   "master's edsgrade.exam.duration_minutes)")
    ex.add_argument("--force", action="store_true", help="(close) collect even before the deadline")
    ex.add_argument("--student", help="(extend) student id")
    ex.add_argument("--minutes", type=float, help="(extend) extra minutes for this student (0: none)")
    d = command("demo", cmd_demo, "run the whole pipeline on the labs with a simulated cohort", assignment=False)
    d.add_argument("assignments", nargs="*", metavar="assignment", help="labs to run (default: every lab of the demo)")
    d.add_argument("--cell-timeout", type=int, default=20, help="seconds per cell for the demo (default 20)")
    d.add_argument("--reuse-build", action="store_true",
                   help="do not build again a lab already built from its current master (default: build every lab)")
    ed = command("exam-demo", cmd_exam_demo, "a whole exam day on exam-hackathon with a simulated class of 11 "
                 "(open, hand in, close, grade, rubric, feedback, final grades)", assignment=False)
    ed.add_argument("--cell-timeout", type=int, default=60, help="seconds per cell for the demo (default 60)")
    h = command("hub", cmd_hub, "start the course JupyterHub (as root; see README: the course hub)", assignment=False)
    h.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    h.add_argument("--port", type=int, default=8000, help="public port (default 8000)")
    h.add_argument("--password-file", metavar="PATH",
                   help="file holding the shared password, mode 0600 (default: $EDSGRADE_HUB_PASSWORD, "
                        "or a new random one)")
    h.add_argument("--password", help=argparse.SUPPRESS)  # refused: see edsgrade.hub.password
    h.add_argument("--instructor", action="append", help="instructor's user name (repeatable; default: instructor)")
    h.add_argument("--state-dir", default="/srv/edsgrade", help="hub state and course folder (default /srv/edsgrade)")
    h.add_argument("--hub-course-dir", help="the hub's course directory (default STATE_DIR/eds)")
    h.add_argument("--exchange", default="/srv/nbgrader/exchange", help="nbgrader exchange root")
    h.add_argument("--python", help="Python of the single-user environment (default: this one if the students' "
                                    "users can run it, else /opt/edsgrade/venv built by `make hub-env`)")
    h.add_argument("--config", help="extra JupyterHub configuration file loaded last (e.g. single sign-on)")
    hg = command("hub-grade", cmd_hub_grade, "grade collected submissions on the course hub and write feedback (as root)")
    hg.add_argument("--state-dir", default="/srv/edsgrade", help="the hub's state folder (default /srv/edsgrade)")
    hg.add_argument("--student", action="append", help="only this student (repeatable)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one ``edsgrade`` command; return the exit status.

    Every user error is an :class:`~edsgrade.errors.EdsgradeError`: its message is printed as plain
    text (never read as rich markup: it may quote a student's or an instructor's text) on standard
    error, without a traceback, and the status is 1. ``--debug`` shows the traceback too.
    """
    from edsgrade.errors import EdsgradeError

    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.verbose:  # nbgrader, nbclient and jupyter_client log a lot at INFO/WARNING: keep errors only
        def quiet(record: logging.LogRecord) -> bool:
            ours = record.name == "edsgrade"
            return record.levelno >= (logging.WARNING if ours else logging.ERROR) and record.name != "edsgrade.kernel"

        for handler in logging.getLogger().handlers:
            handler.addFilter(quiet)
    try:
        args.func(args)
    except EdsgradeError as exc:
        if args.debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
