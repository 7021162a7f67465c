"""Grade reports: the score table and the CSV export (read from nbgrader's gradebook)."""
from __future__ import annotations

import csv
from pathlib import Path

from .course import Course
from .gradebook import StudentGrades, read_grades
from .master import load_master


def columns(course: Course, assignment: str) -> list[str]:
    """The graded cells of ``assignment`` in notebook order (autograded and manual)."""
    master = load_master(course.master_path(assignment))
    cells = sorted([(q.cell_index, q.grade_id) for q in master.questions] +
                   [(m.cell_index, m.grade_id) for m in master.manual])
    return [gid for _, gid in cells]


def write_csv(course: Course, assignment: str, path: Path) -> list[StudentGrades]:
    """Write one row per student: a column per question, the total and the maximum."""
    cols = columns(course, assignment)
    rows = read_grades(course, assignment)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", *cols, "total", "max_score"])
        for r in rows:
            writer.writerow([r.student, *(f"{r.scores.get(c, 0.0):g}" for c in cols), f"{r.total:g}", f"{r.max_total:g}"])
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
