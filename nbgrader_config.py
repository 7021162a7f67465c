"""nbgrader (and edsgrade) configuration of the course "Earth data science" (course id ``eds``).

Every ``edsgrade`` command and every ``nbgrader`` command run from this directory read this file.
Environment variables override the defaults so that tests and a JupyterHub deployment can move
the exchange and the gradebook without editing it.
"""
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
c = get_config()  # noqa: F821 - provided by traitlets when the file is loaded

c.CourseDirectory.course_id = "eds"
c.CourseDirectory.root = str(HERE)
# Gradebook: SQLite by default; any SQLAlchemy URL works (e.g. postgresql://...).
c.CourseDirectory.db_url = os.environ.get("EDSGRADE_DB_URL", f"sqlite:///{HERE / 'gradebook.db'}")
# Local filesystem exchange (nbgrader's); /srv/nbgrader/exchange on a JupyterHub.
c.Exchange.root = os.environ.get("EDSGRADE_EXCHANGE", str(HERE / "exchange"))
c.Exchange.path_includes_course = False  # students/S/A, not students/S/eds/A
# Copies of students' files (collect, also the formgrader's Collect button; submit; fetch_feedback) take
# regular files only, never follow a link, and date each submission from the exchange, not from what the
# student wrote (edsgrade/safeexchange.py; docs/exam.md "What a student can and cannot forge").
c.ExchangeFactory.collect = "edsgrade.exchange.safe.SafeCollect"
c.ExchangeFactory.submit = "edsgrade.exchange.safe.SafeSubmit"
c.ExchangeFactory.fetch_feedback = "edsgrade.exchange.safe.SafeFetchFeedback"

# Student release: keep the data and the public checks, never the instructor's files.
# predictions.csv: what the exam's master writes when run in Jupyter (the solution's predictions of the
# test set, close to its hidden labels) must not follow source/exam-hackathon into the release.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".OTTER_LOG", "predictions.csv"]

# Grading (edsgrade): per-cell and per-submission wall-clock limits, in seconds, and the sandbox's
# resource limits. Per assignment: c.Grader.assignments = {"lab1-calibration": {"timeout": 600}};
# a master notebook can override them in its metadata ("edsgrade": {"cell_timeout": ..., "timeout": ...}).
c.Grader.cell_timeout = 120
c.Grader.timeout = 900
c.Grader.memory = 4096  # MiB of address space per process of a submission
c.Grader.workers = 0  # submissions graded at once; 0 = one per CPU core
c.Grader.sandbox = "auto"  # full sandbox when run as root; "on" refuses to grade without it

# Grades (edsgrade grades, feedback): reported out of 20; each assignment counts in the course total
# with its weight (default 1; a master may set "edsgrade": {"weight": 0} to inform without counting).
c.Grades.scale = 20
# c.Grades.assignments = {"lab0-python": {"weight": 0}}

# Exams (edsgrade exam open/close, docs/exam.md): the automatic part's share of the final grade and
# the length of the exam; a master overrides them with "edsgrade": {"exam": {"auto_share": 0.4, ...}}.
c.Exam.auto_share = 0.4
c.Exam.duration_minutes = 240
# Late submissions: nbgrader's late-penalty setting, with edsgrade's plugin (grace, then a share of the
# grade per started period). Lateness = submission time - the due date stored by `edsgrade exam open`.
c.AssignLatePenalties.plugin_class = "edsgrade.exam.LatePenalty"
c.LatePenalty.penalty_method = "per_period"  # or "none" (flag only) or "zero"
c.LatePenalty.grace_minutes = 5
c.LatePenalty.period_minutes = 10
c.LatePenalty.fraction_per_period = 0.1
