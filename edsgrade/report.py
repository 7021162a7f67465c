"""Grade reports: the score table, the final grades and the CSV exports (read from nbgrader's gradebook)."""
from __future__ import annotations

import csv
from pathlib import Path

from edsgrade.course import Course
from edsgrade.gradebook.store import StudentGrades, read_grades
from edsgrade.grades.final import CourseGrades, FinalGrade, final_grades

GRADE_COLUMNS = ["auto", "auto_max", "bonus", "bonus_max", "manual", "manual_max", "late_minutes", "penalty", "grade", "out_of", "status"]


def columns(course: Course, assignment: str) -> list[str]:
    """The graded cells of ``assignment`` in notebook order (autograded and manual)."""
    master = course.assignment(assignment).master
    cells = sorted([(q.cell_index, q.grade_id) for q in master.questions] +
                   [(m.cell_index, m.grade_id) for m in master.manual])
    return [gid for _, gid in cells]


def _num(value: float | None) -> str:
    return "" if value is None else f"{round(value, 4):g}"


def grade_fields(f: FinalGrade) -> list[str]:
    """The CSV fields of :data:`GRADE_COLUMNS` for one final grade (blank where not known yet)."""
    final = f.status == "final"
    return [_num(f.auto), _num(f.auto_max), _num(f.bonus), _num(f.bonus_max), _num(f.manual), _num(f.manual_max),
            _num(f.seconds_late / 60) if f.late else "0", _num(f.penalty) if final else "",
            _num(f.grade), f"{f.scale:g}", f.status_text()]


def write_csv(course: Course, assignment: str, path: Path, scale: float | None = None) -> list[StudentGrades]:
    """Write one row per student: a column per question, the gradebook's total and maximum, then
    the final grade and how it was made (:data:`GRADE_COLUMNS`)."""
    cols = columns(course, assignment)
    rows = read_grades(course, assignment)
    finals = {f.student: f for f in final_grades(course, assignment, scale)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *cols, "total", "max_score", *GRADE_COLUMNS])
        seen = set()
        for r in rows:
            seen.add(r.student)
            extra = grade_fields(finals[r.student]) if r.student in finals else [""] * len(GRADE_COLUMNS)
            writer.writerow([r.student, *(f"{r.scores.get(c, 0.0):g}" for c in cols), f"{r.total:g}",
                             f"{r.max_total:g}", *extra])
        for student, final in finals.items():
            if student not in seen:  # collected, not graded yet
                writer.writerow([student, *([""] * len(cols)), "", "", *grade_fields(final)])
    return rows


def score_table(course: Course, assignment: str, statuses: dict[str, str] | None = None):
    """A ``rich`` table of the gradebook's scores, optionally with a status column per student."""
    from rich.table import Table

    cols = columns(course, assignment)
    table = Table(title=f"{assignment}: scores in the gradebook")
    table.add_column("student")
    for c in cols:
        table.add_column(c, justify="right")
    table.add_column("total", justify="right", style="bold")
    table.add_column("by hand")
    if statuses is not None:
        table.add_column("status")
    for r in read_grades(course, assignment):
        cells = [f"{r.scores.get(c, 0.0):g}" for c in cols]
        extra = [statuses.get(r.student, "")] if statuses is not None else []
        by_hand = "to grade" if r.needs_manual_grade else "done"
        table.add_row(r.student, *cells, f"{r.total:g} / {r.max_total:g}", by_hand, *extra)
    return table


def grade_table(course: Course, assignment: str, scale: float | None = None):
    """A ``rich`` table of the final grades of ``assignment``: both parts, lateness, grade, status."""
    from rich.table import Table

    finals = final_grades(course, assignment, scale)
    policy = finals[0].policy_text if finals else ""
    table = Table(title=f"{assignment}: final grades ({policy})" if policy else f"{assignment}: final grades")
    for name in ("student", "automatic", "rubric / by hand", "late", "grade", "status"):
        table.add_column(name, justify="right" if name in ("automatic", "rubric / by hand", "grade") else "left")
    for f in finals:
        auto = f"{f.auto:g} / {f.auto_max:g}" if f.status != "not graded" else "-"
        if f.bonus_max and f.status != "not graded":
            auto += f" + bonus {f.bonus:g} / {f.bonus_max:g}"
        manual = (f"{f.manual:g} / {f.manual_max:g}" if f.manual_max else "-") if f.status != "not graded" else "-"
        grade = f"{f.grade:.2f} / {f.scale:g}" if f.grade is not None else "pending"
        table.add_row(f.student, auto, manual, f.late_text() or "on time", grade, f.status_text())
    return table


def course_table(summary: CourseGrades):
    """A ``rich`` table of the course total: each assignment's grade (with its weight) and the total."""
    from rich.table import Table

    table = Table(title=f"course total out of {summary.scale:g} (weighted mean; weight 0: shown, not counted)")
    table.add_column("student")
    for p in summary.policies:
        table.add_column(f"{p.assignment} (w {p.weight:g})", justify="right")
    table.add_column("total", justify="right", style="bold")
    table.add_column("status")
    for row in summary.rows:
        cells = []
        for p in summary.policies:
            g = row.grades[p.assignment]
            cells.append("-" if g is None else (f"{g.grade:.2f}" if g.grade is not None else "pending"))
        table.add_row(row.student, *cells, "pending" if row.total is None else f"{row.total:.2f}", row.status_text())
    return table


def write_course_csv(summary: CourseGrades, path: Path) -> None:
    """One row per student: each assignment's grade, the weighted total and its status."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *(p.assignment for p in summary.policies), "total", "out_of", "status"])
        for row in summary.rows:
            cells = [_num(g.grade) if g is not None else "" for g in (row.grades[p.assignment]
                                                                      for p in summary.policies)]
            writer.writerow([row.student, *cells, _num(row.total), f"{summary.scale:g}", row.status_text()])


def rubric_table(course: Course, assignment: str, student: str | None = None):
    """A ``rich`` table of the rubric: one student's criteria (points, comments), or every student's points."""
    from rich.table import Table

    from edsgrade.grades.rubric import criteria, rubric_overview, rubric_state

    if student:
        table = Table(title=f"{assignment}: rubric of {student}")
        for name in ("criterion", "points", "comment"):
            table.add_column(name, justify="right" if name == "points" else "left")
        for e in rubric_state(course, assignment, student):
            pts = f"not marked / {e.max_points:g}" if e.points is None else f"{e.points:g} / {e.max_points:g}"
            table.add_row(e.criterion, pts, e.comment)
        return table
    names = [c.name for c in criteria(course.assignment(assignment).master)]
    table = Table(title=f"{assignment}: rubric points (- : not marked yet)")
    table.add_column("student")
    for n in names:
        table.add_column(n, justify="right")
    table.add_column("to mark", justify="right")
    for name, entries in rubric_overview(course, assignment).items():
        table.add_row(name, *("-" if e.points is None else f"{e.points:g}" for e in entries),
                      str(sum(e.points is None for e in entries)))
    return table


def rubric_schemes(course: Course, assignment: str) -> str:
    """The criteria of ``assignment`` with their points and mark schemes, as text for graders."""
    from edsgrade.grades.rubric import criteria

    items = criteria(course.assignment(assignment).master)
    if not items:
        return f"{assignment} has no criterion graded by hand."
    return "\n\n".join(f"{c.name} (0-{c.max_points:g} pt)\n{c.scheme}" for c in items)
