"""Exam day on a toy exam: open, submit on time and late, close, grade, rubric, final grades, feedback.

Submission times are set deterministically: the exam is opened with a start in the past, and each
submission's simulated arrival time is recorded in the grader's table of simulated arrivals (in the
course's ``build/``, never in the exchange: the collect dates real submissions from the exchange
itself, never from what a student writes), as if it had been handed in at that time.
"""
from __future__ import annotations

import csv
import datetime as dt
import math
import re
import warnings
from pathlib import Path

import nbformat
import pytest

from conftest import cli, grade_meta, new_course, toy_master
from edsgrade.simulate.cohort import answer
from edsgrade.course import Course
from edsgrade.config import SettingsError
from edsgrade.exam import (ExamError, LatePenalty, close_exam, deadline, exam_settings, extend, open_exam,
                           parse_time)
from edsgrade.feedback import write_feedback
from edsgrade.grading.autograde import grade_run
from edsgrade.report import rubric_schemes, write_csv
from edsgrade.simulate.examcohort import redate_submission, simulated_arrivals_path
from edsgrade.exchange import fetch, submit
from edsgrade.grades.final import combine, course_grades, policy
from edsgrade.authoring.master import load_master
from edsgrade.grades.rubric import RubricError, rubric_overview, rubric_state, set_criterion

STAMP = "%Y-%m-%d %H:%M:%S.%f UTC"
REASONING = """The mean is pulled up by the largest value.

=== BEGIN MARK SCHEME ===
4 pt: says the mean is sensitive to the largest value AND compares with the median.
2 pt: one of the two. 0 pt: neither.
=== END MARK SCHEME ===
"""
CLARITY = "Squares grow fast, so the last one dominates.\n\n=== BEGIN MARK SCHEME ===\n2 pt: a clear sentence.\n=== END MARK SCHEME ==="


def exam_master(weight: float = 2) -> nbformat.NotebookNode:
    """The toy master turned into an exam: the hand-graded cell becomes two rubric criteria."""
    nb = toy_master()
    md = nbformat.v4.new_markdown_cell
    reasoning, clarity = md(REASONING), md(CLARITY)
    reasoning.metadata.update(grade_meta("reasoning", grade=True, solution=True, points=4))
    clarity.metadata.update(grade_meta("clarity", grade=True, solution=True, points=2))
    nb.cells = nb.cells[:-1] + [reasoning, clarity]
    nb.metadata["edsgrade"] = {"exam": {"auto_share": 0.4, "duration_minutes": 60}, "weight": weight}
    return nb


def ok(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def hand_in(course: Course, student: str, master, questions, when: dt.datetime) -> None:
    """``student`` fetches, answers ``questions`` and submits; the submission is dated ``when`` (UTC)."""
    fetch(course, "exam", student)
    path = course.student_home(student) / "exam" / "exam.ipynb"
    nbformat.write(answer(nbformat.read(path, as_version=4), master, questions), path)
    submit(course, "exam", student)
    redate_submission(course, "exam", student, when)
    config = course.root / "nbgrader_config.py"  # so that `edsgrade exam close` (another process) uses the table
    line = f"c.SafeCollect.simulated_arrivals = {str(simulated_arrivals_path(course))!r}\n"
    if line not in config.read_text():
        with open(config, "a") as fh:
            fh.write(line)


def test_exam_day_end_to_end(toy_course):
    root = toy_course
    (root / "source" / "exam").mkdir()
    nbformat.write(exam_master(), root / "source" / "exam" / "exam.ipynb")
    course = Course(root)
    master = load_master(course.master_path("exam"))

    # closing an exam never opened says how to open it
    with pytest.raises(ExamError, match="edsgrade exam open exam"):
        close_exam(course, "exam")

    # open: builds (never built), stores start + duration as nbgrader's due date, releases
    start = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2)).replace(microsecond=0, tzinfo=None)
    out = ok(cli(root, "exam", "open", "exam", "--start", start.isoformat() + "+00:00", "--duration", "60"))
    assert "opened exam" in out and "duration 60 min" in out
    due = start + dt.timedelta(minutes=60)
    assert deadline(course, "exam") == due
    assert (course.exchange_root / "eds" / "outbound" / "exam" / "exam.ipynb").is_file()
    release = (root / "release" / "exam" / "exam.ipynb").read_text()
    assert "BEGIN MARK SCHEME" not in release and "compares with the median" not in release

    hand_in(course, "ana", master, None, due - dt.timedelta(minutes=30))      # everything, on time
    hand_in(course, "ben", master, ["q2"], due + dt.timedelta(minutes=25))    # q2 only, 25 min late
    hand_in(course, "cyd", master, None, due + dt.timedelta(minutes=3))       # late, but within the grace
    assert extend(course, "exam", "dee", 30) == due + dt.timedelta(minutes=30)  # a third more time, say
    hand_in(course, "dee", master, None, due + dt.timedelta(minutes=20))      # on time, with the extension

    out = ok(cli(root, "exam", "close", "exam"))
    assert "collected 4 submissions" in out and "5 min of grace" in out
    assert re.search(r"dee: .* on time \(extension 30 min\)", out)
    assert re.search(r"ana: .* on time", out) and re.search(r"ben: .* LATE by 25 min", out)
    assert re.search(r"cyd: .* LATE by 3 min", out)

    grade_run(course, "exam", progress=False)
    # not marked yet: no grade, the report says what is left (not a silent 0)
    write_csv(course, "exam", root / "before.csv")
    rows = {r["student"]: r for r in csv.DictReader(open(root / "before.csv"))}
    assert rows["ana"]["grade"] == "" and rows["ana"]["status"] == "rubric pending: reasoning, clarity to mark"

    # rubric through the CLI
    out = ok(cli(root, "rubric", "exam", "--student", "ana", "--criterion", "clarity", "--points", "1.5",
                 "--comment", "Say which value dominates."))
    assert "clarity: 1.5 / 2" in out
    set_criterion(course, "exam", "ana", "reasoning", points=4,
                  comment="Sensitivity to the largest value, and the median compared: complete.")
    out = ok(cli(root, "rubric", "exam", "--student", "ana"))
    assert "Say which value dominates." in out and "4 / 4" in out
    for student, r, c in (("ben", 2, 2), ("cyd", 3, None), ("dee", 4, 2)):
        set_criterion(course, "exam", student, "reasoning", points=r, comment=f"reasoning of {student}")
        if c is not None:
            set_criterion(course, "exam", student, "clarity", points=c)
    # what a grader enters is where nbgrader's formgrader reads it
    with course.gradebook() as gb:
        assert gb.find_grade("clarity", "exam", "exam", "ana").manual_score == 1.5
        assert gb.find_comment("clarity", "exam", "exam", "ana").manual_comment == "Say which value dominates."
        assert not gb.find_grade("clarity", "exam", "exam", "ana").needs_manual_grade
        # nbgrader's own late penalty (notebook points), as `nbgrader autograde` records it: 20 % of 2 + 4
        assert gb.find_submission("exam", "ben").late_submission_penalty == pytest.approx(0.2 * 6)
        assert gb.find_submission("exam", "ana").late_submission_penalty == 0
        assert gb.find_submission("exam", "cyd").late_submission_penalty == 0  # within the grace

    # graders read the mark schemes from the master (never released)
    schemes = rubric_schemes(course, "exam")
    assert "reasoning (0-4 pt)\n4 pt: says the mean is sensitive" in schemes and "clarity (0-2 pt)" in schemes
    assert [(s, [e.points for e in entries]) for s, entries in rubric_overview(course, "exam").items()] == [
        ("ana", [4, 1.5]), ("ben", [2, 2]), ("cyd", [3, None]), ("dee", [4, 2])]

    # errors name what is valid
    proc = cli(root, "rubric", "exam", "--student", "ana", "--criterion", "clarty", "--points", "1")
    assert proc.returncode == 1 and "no criterion 'clarty'" in proc.stderr
    assert "reasoning (0-4 pt), clarity (0-2 pt)" in proc.stderr
    with pytest.raises(RubricError, match=r"reasoning is marked from 0 to 4 points, not 5"):
        set_criterion(course, "exam", "ana", "reasoning", points=5)
    with pytest.raises(RubricError, match=r"from 0 to 4 points, not -1"):
        set_criterion(course, "exam", "ana", "reasoning", points=-1)
    with pytest.raises(RubricError, match=r"'q1' is graded automatically.*reasoning \(0-4 pt\)"):
        set_criterion(course, "exam", "ana", "q1", points=1)
    with pytest.raises(RubricError, match=r"no graded submission of exam by 'zed'; students: ana, ben, cyd, dee"):
        set_criterion(course, "exam", "zed", "reasoning", points=1)
    with pytest.raises(RubricError, match=r"give --points"):
        set_criterion(course, "exam", "ana", "reasoning")
    assert rubric_state(course, "exam", "ana")[0].points == 4  # refused entries changed nothing

    # final grades: 20 × (0.4 × auto/5 + 0.6 × manual/6), then the late penalty
    out = ok(cli(root, "grades", "exam", "--csv", str(root / "grades.csv")))
    assert "19.00 / 20" in out and "8.96 / 20" in out and re.search(r"cyd .* pending .* rubric pending", out)
    rows = {r["student"]: r for r in csv.DictReader(open(root / "grades.csv"))}
    assert (rows["ana"]["auto"], rows["ana"]["manual"], rows["ana"]["status"]) == ("5", "5.5", "final")
    assert float(rows["ana"]["grade"]) == pytest.approx(20 * (0.4 * 5 / 5 + 0.6 * 5.5 / 6))  # 19
    assert rows["ana"]["late_minutes"] == "0" and rows["ana"]["penalty"] == "0"
    ben_raw = 20 * (0.4 * 2 / 5 + 0.6 * 4 / 6)  # 11.2
    # 25 min late, 5 min of grace: 2 started periods of 10 min, 10 % each
    assert float(rows["ben"]["penalty"]) == pytest.approx(0.2 * ben_raw)
    assert float(rows["ben"]["grade"]) == pytest.approx(0.8 * ben_raw)
    assert float(rows["ben"]["late_minutes"]) == pytest.approx(25)
    assert rows["cyd"]["grade"] == "" and "clarity to mark" in rows["cyd"]["status"]
    assert (rows["dee"]["grade"], rows["dee"]["late_minutes"], rows["dee"]["penalty"]) == ("20", "0", "0")

    write_feedback(course, "exam")
    html = (root / "feedback" / "ana" / "exam" / "exam.html").read_text()
    assert "Final grade: 19.00 / 20" in html and "5 / 5" in html and "40 %" in html and "60 %" in html
    assert "Sensitivity to the largest value, and the median compared: complete." in html
    assert "Say which value dominates." in html and "1.5 / 2" in html and "Late submission" not in html
    assert "compares with the median" not in html  # the mark scheme stays on the instructor's side
    html = (root / "feedback" / "ben" / "exam" / "exam.html").read_text()
    assert f"Final grade: {0.8 * ben_raw:.2f} / 20" in html
    assert f"late by 25 min, penalty {0.2 * ben_raw:.4g} / 20" in html
    assert f"grade before the late penalty</td><td>{ben_raw:.2f} / 20" in html
    html = (root / "feedback" / "cyd" / "exam" / "exam.html").read_text()
    assert "Final grade: not available yet" in html and "still to mark: clarity" in html
    assert "late by 3 min" in html and "reasoning of cyd" in html

    # the last criterion marked: within the grace, no penalty
    set_criterion(course, "exam", "cyd", "clarity", points=0, comment="No sentence.")
    summary = course_grades(course)
    [cyd] = [r for r in summary.rows if r.student == "cyd"]
    assert cyd.grades["exam"].penalty == 0 and cyd.grades["exam"].grade == pytest.approx(20 * (0.4 + 0.6 * 3 / 6))
    assert cyd.grades["exam"].late_text() == "late by 3 min, no penalty"


def test_course_total_weights_assignments_and_weight_zero_informs(tmp_path):
    """Course total = Σ w·grade / Σ w over positive weights; weight 0 is shown, not counted."""
    root = new_course(tmp_path / "course")
    course = Course(root)
    notebooks = {"exam": exam_master(weight=2), "lab1": exam_master(weight=1), "lab0": exam_master(weight=0)}
    for name, nb in notebooks.items():
        if name != "exam":
            del nb.metadata["edsgrade"]["exam"]  # plain labs: graded by points
        (root / "source" / name).mkdir(parents=True)
        nbformat.write(nb, root / "source" / name / f"{name}.ipynb")
    # the gradebook as build and grading leave it (nbgrader's API), without running notebooks
    with course.gradebook() as gb:
        for name in notebooks:
            m = load_master(course.master_path(name))
            gb.add_assignment(name)
            gb.add_notebook(name, name)
            for q in m.questions:
                gb.add_grade_cell(q.grade_id, name, name, max_score=q.points, cell_type="code")
            for c in m.manual:
                gb.add_grade_cell(c.grade_id, name, name, max_score=c.points, cell_type="markdown")
                gb.add_solution_cell(c.grade_id, name, name)
        for student in ("ana", "ben", "eve"):
            gb.add_student(student)
        for name, student, auto, manual in (("exam", "ana", (3, 2), (4, 2)), ("lab1", "ana", (3, 0), (2, 2)),
                                            ("lab0", "ana", (0, 0), (0, 0)), ("exam", "ben", (3, 2), (4, None)),
                                            ("lab1", "ben", (3, 2), (4, 2))):
            with warnings.catch_warnings():  # nbgrader's add_submission trips a harmless SQLAlchemy warning
                warnings.simplefilter("ignore")
                gb.add_submission(name, student)
            for gid, pts in zip(("q1", "q2"), auto):
                gb.find_grade(gid, name, name, student).auto_score = pts
            for gid, pts in zip(("reasoning", "clarity"), manual):
                gb.find_grade(gid, name, name, student).manual_score = pts
        gb.db.commit()

    pol = policy(course, load_master(course.master_path("lab0")))
    assert (pol.weight, pol.exam, pol.auto_share) == (0, False, None)
    assert exam_settings(course, load_master(course.master_path("exam"))).duration_minutes == 60
    summary = course_grades(course)
    rows = {r.student: r for r in summary.rows}
    exam_ana = 20 * combine(5, 5, 6, 6, 0.4)
    lab1_ana = 20 * (3 + 4) / 11
    assert rows["ana"].grades["lab0"].grade == 0  # shown...
    assert rows["ana"].total == pytest.approx((2 * exam_ana + lab1_ana) / 3)  # ...not counted
    assert rows["ben"].total is None and rows["ben"].pending == ["exam"]
    assert rows["eve"].missing == ["exam", "lab1"] and rows["eve"].total == 0
    assert "no submission of exam, lab1 (counted 0)" in rows["eve"].status_text()

    out = ok(cli(root, "grades", "--course", "--csv", str(root / "course.csv")))
    assert "lab0 (w 0)" in out and "exam (w 2)" in out
    table = {r["student"]: r for r in csv.DictReader(open(root / "course.csv"))}
    assert float(table["ana"]["total"]) == pytest.approx((2 * exam_ana + lab1_ana) / 3, abs=1e-4)
    assert table["ben"]["total"] == "" and table["ben"]["status"] == "waiting for exam"


def test_late_policy_and_formula_edge_cases():
    plugin = LatePenalty(penalty_method="per_period", grace_minutes=5, period_minutes=10, fraction_per_period=0.25)
    assert plugin.late_submission_penalty("s", 16, 5 * 60) is None  # within the grace
    assert plugin.late_submission_penalty("s", 16, 5 * 60 + 1) == 4  # one started period
    assert plugin.late_submission_penalty("s", 16, 15 * 60) == 4
    assert plugin.late_submission_penalty("s", 16, 95 * 60) == 16  # never more than the grade
    assert LatePenalty(penalty_method="zero").late_submission_penalty("s", 12.5, 1) == 12.5
    assert LatePenalty(penalty_method="none").late_submission_penalty("s", 12.5, 3600) is None
    assert combine(2, 4, 3, 6, 0.4) == pytest.approx(0.5)
    assert combine(2, 4, 0, 0, 0.4) == pytest.approx(0.5)  # no rubric: the automatic part is the grade
    assert combine(2, 4, 3, 6, None) == pytest.approx(0.5)
    assert math.isclose(combine(4, 4, 0, 6, 1.0), 1.0)


def test_exam_close_refuses_before_the_deadline_and_bad_settings(toy_course):
    root = toy_course
    (root / "source" / "exam").mkdir()
    nb = exam_master()
    nbformat.write(nb, root / "source" / "exam" / "exam.ipynb")
    course = Course(root)
    with course.gradebook() as gb:
        gb.add_assignment("exam", duedate=dt.datetime.utcnow() + dt.timedelta(minutes=30))
    with pytest.raises(ExamError, match=r"in (29|30) min: students may still be working.*--force"):
        close_exam(course, "exam")
    nb.metadata["edsgrade"]["exam"]["auto_share"] = 1.5
    nbformat.write(nb, root / "source" / "exam" / "exam.ipynb")
    with pytest.raises(SettingsError, match=r"source/exam/exam.ipynb metadata edsgrade.exam.auto_share: "
                                            r"expected a number between 0 and 1, got the number 1.5"):
        open_exam(course, "exam", duration_minutes=10)
    nb.metadata["edsgrade"]["exam"] = {"auto_share": 0.5, "length": 10}
    nbformat.write(nb, root / "source" / "exam" / "exam.ipynb")
    with pytest.raises(SettingsError, match="unknown setting 'length'; known: auto_share, duration_minutes"):
        open_exam(course, "exam")
    with pytest.raises(ExamError, match="cannot read the time 'tomorrow-ish'"):
        parse_time(course, "tomorrow-ish")
    assert not Path(root / "release" / "exam").exists()  # nothing was built or released
    # a time without a zone is in the course's time zone (c.Exchange.timezone, UTC here)
    assert parse_time(course, "2026-06-12 09:00") == dt.datetime(2026, 6, 12, 9, 0)
    assert parse_time(course, "2026-06-12T09:00+02:00") == dt.datetime(2026, 6, 12, 7, 0)


def test_bonus_questions_add_to_the_grade_and_it_is_capped(tmp_path):
    """A master's ``edsgrade.bonus`` questions (a lab's "go further" part) are not in the possible points."""
    from edsgrade.course import CourseError
    from edsgrade.grades.final import final_grades
    from edsgrade.report import grade_table

    root = new_course(tmp_path / "course")
    course = Course(root)
    nb = toy_master()  # q1 (3 points), q2 (2 points), "why" (1 point, by hand)
    nb.metadata["edsgrade"] = {"bonus": ["q2"]}
    (root / "source" / "lab").mkdir(parents=True)
    nbformat.write(nb, root / "source" / "lab" / "lab.ipynb")
    master = load_master(course.master_path("lab"))
    assert policy(course, master).bonus == {"q2"}
    with course.gradebook() as gb:  # the gradebook as build and grading leave it (nbgrader's API)
        gb.add_assignment("lab")
        gb.add_notebook("lab", "lab")
        for q in master.questions:
            gb.add_grade_cell(q.grade_id, "lab", "lab", max_score=q.points, cell_type="code")
        for c in master.manual:
            gb.add_grade_cell(c.grade_id, "lab", "lab", max_score=c.points, cell_type="markdown")
            gb.add_solution_cell(c.grade_id, "lab", "lab")
        for student, (q1, q2, why) in {"ana": (3, 2, 1), "ben": (0, 2, 1), "cy": (3, 0, 1), "dan": (1.5, 0, 0)}.items():
            gb.add_student(student)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                gb.add_submission("lab", student)
            gb.find_grade("q1", "lab", "lab", student).auto_score = q1
            gb.find_grade("q2", "lab", "lab", student).auto_score = q2
            gb.find_grade("why", "lab", "lab", student).manual_score = why
        gb.db.commit()
    grades = {f.student: f for f in final_grades(course, "lab")}
    assert (grades["ana"].auto, grades["ana"].auto_max, grades["ana"].bonus, grades["ana"].bonus_max) == (3, 3, 2, 2)
    assert grades["ana"].grade == 20  # 6 of 4 possible: capped
    assert grades["ben"].grade == pytest.approx(20 * 3 / 4)  # the bonus alone counts too
    assert grades["cy"].grade == 20  # full marks without the bonus
    assert grades["dan"].grade == pytest.approx(20 * 1.5 / 4)
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(grade_table(course, "lab"))
    assert "3 / 3 + bonus 2 / 2" in console.export_text()

    nb.metadata["edsgrade"] = {"bonus": ["q9"]}
    nbformat.write(nb, root / "source" / "lab" / "lab.ipynb")
    with pytest.raises(CourseError, match="q9, which are not autograded questions; known: q1, q2"):
        policy(course, load_master(course.master_path("lab")))
