"""The course directory: where things live, and the configuration read from ``nbgrader_config.py``.

Everything else asks a :class:`Course` for paths and settings instead of building them itself, and
no code here changes the process's working directory or ``sys.path``.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from edsgrade.config import Settings, check_config, configurable, master_place, resolve
from edsgrade.errors import EdsgradeError

if TYPE_CHECKING:
    from edsgrade.authoring.master import Master

CONFIG_FILE = "nbgrader_config.py"
log = logging.getLogger("edsgrade")


class CourseError(EdsgradeError, RuntimeError):
    """A problem with the course directory or an assignment in it; the message says what to do."""


Grader = configurable("Grader", __name__, """Grading settings (``c.Grader.*`` in ``nbgrader_config.py``).

    Per assignment, ``c.Grader.assignments = {"lab1-calibration": {"timeout": 600}}`` overrides
    them, and so does the master notebook's metadata (``"edsgrade": {"timeout": 600}``), in that
    order; the command line (``edsgrade grade --cell-timeout``) comes last. The traits, their
    defaults and help come from the one schema, :data:`edsgrade.config.SCHEMA`.
    """)


def find_course_root(start: Path | str | None = None) -> Path:
    """Return the course directory: ``start`` (or the working directory) or its nearest parent with
    an ``nbgrader_config.py``."""
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    raise CourseError(f"no {CONFIG_FILE} in {here} or its parents: run edsgrade from the course "
                      "repository, or pass --course-dir PATH.")


def _tools_on_path() -> None:
    """nbgrader runs ``alembic`` (installed beside this Python) as a command: make sure it is found
    even when edsgrade is run as ``.venv/bin/edsgrade`` without an activated environment."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


class Course:
    """A course directory in nbgrader's layout (source/, release/, submitted/, autograded/, feedback/).

    Parameters
    ----------
    root:
        The course directory, or any directory inside it; default: the working directory.
    overrides:
        Extra traitlets configuration applied on top of ``nbgrader_config.py`` (tests use it to
        point the exchange or the gradebook elsewhere).

    Example
    -------
    >>> course = Course("/path/to/course")            # doctest: +SKIP
    >>> course.master_path("lab1-calibration")        # doctest: +SKIP
    PosixPath('/path/to/course/source/lab1-calibration/lab1-calibration.ipynb')
    """

    def __init__(self, root: Path | str | None = None, overrides: Config | None = None) -> None:
        self.root = find_course_root(root)
        _tools_on_path()
        loader = PyFileConfigLoader(CONFIG_FILE, path=str(self.root))
        try:
            config = loader.load_config()
        except Exception as exc:
            raise CourseError(f"{self.root / CONFIG_FILE} could not be read: {exc}") from exc
        if overrides is not None:
            config.merge(overrides)
        config.CourseDirectory.root = str(self.root)
        check_config(config, CONFIG_FILE)  # SettingsError: an unknown key or a wrong type, named
        self.config: Config = config
        self.grader = Grader(config=config)

    def settings(self, master: Any, **overrides: Any) -> Settings:
        """Every setting of ``master``'s assignment, by the one rule: ``c.Grader``/``c.Grades``/``c.Exam``, then
        their ``assignments[A]`` tables, then the master's metadata ``edsgrade``, then ``overrides`` (the command
        line; ``None``: not given). Raises :class:`~edsgrade.config.SettingsError` on any unknown key, wrong type
        or a table naming no assignment of ``source/``."""
        return resolve(self.config, master.assignment, master.settings, master_place(master.path), overrides,
                       self.assignments(), CONFIG_FILE)

    # ---- nbgrader objects -------------------------------------------------------------------
    @property
    def course_id(self) -> str:
        return str(self.config.CourseDirectory.get("course_id", "eds"))

    @property
    def db_url(self) -> str:
        default = f"sqlite:///{self.root / 'gradebook.db'}"
        return str(self.config.CourseDirectory.get("db_url", default))

    @property
    def exchange_root(self) -> Path:
        return Path(self.config.Exchange.get("root", self.root / "exchange"))

    def ensure_exchange(self) -> Path:
        """Create the exchange root if needed, writable by all with the sticky bit (as nbgrader asks)."""
        root = self.exchange_root
        if not root.exists():
            root.mkdir(parents=True)
            root.chmod(0o1777)
        return root

    def coursedir(self, assignment: str = "", student: str = "*"):
        """An nbgrader ``CourseDirectory`` bound to this course (and optionally one assignment)."""
        from nbgrader.coursedir import CourseDirectory

        cd = CourseDirectory(config=self.config)
        cd.root = str(self.root)
        if assignment:
            cd.assignment_id = assignment
        cd.student_id = student
        return cd

    @contextlib.contextmanager
    def gradebook(self) -> Iterator["object"]:
        """nbgrader's ``Gradebook`` for this course (a context manager that closes it)."""
        from nbgrader.api import Gradebook

        with Gradebook(self.db_url, course_id=self.course_id) as gb:
            yield gb

    # ---- paths -------------------------------------------------------------------------------
    def source_dir(self, assignment: str) -> Path:
        return self.root / "source" / assignment

    def release_dir(self, assignment: str) -> Path:
        return self.root / "release" / assignment

    def submitted_dir(self, student: str, assignment: str) -> Path:
        return self.root / "submitted" / student / assignment

    def autograded_dir(self, student: str, assignment: str) -> Path:
        return self.root / "autograded" / student / assignment

    def feedback_dir(self, student: str, assignment: str) -> Path:
        return self.root / "feedback" / student / assignment

    def build_dir(self, assignment: str) -> Path:
        """Instructor-only build products: full test files, reference values, the Otter zip."""
        return self.root / "build" / assignment

    def student_home(self, student: str) -> Path:
        """Where ``edsgrade fetch/submit --student S`` keep a simulated student's files by default."""
        return self.root / "students" / student

    def assignments(self) -> list[str]:
        """Assignment names: the folders of ``source/`` that hold a master notebook."""
        src = self.root / "source"
        if not src.is_dir():
            return []
        return sorted(p.name for p in src.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))

    def master_path(self, assignment: str) -> Path:
        """The master notebook of ``assignment``: ``source/A/A.ipynb`` (or the only notebook there)."""
        folder = self.source_dir(assignment)
        if not folder.is_dir():
            known = ", ".join(self.assignments()) or "none"
            raise CourseError(f"no assignment {assignment!r}: {folder} does not exist (assignments: {known}).")
        preferred = folder / f"{assignment}.ipynb"
        if preferred.is_file():
            return preferred
        notebooks = sorted(folder.glob("*.ipynb"))
        if len(notebooks) == 1:
            return notebooks[0]
        raise CourseError(f"{folder}: expected one master notebook named {assignment}.ipynb, found "
                          f"{[p.name for p in notebooks] or 'none'}.")

    def assignment(self, name: str) -> "Assignment":
        """The assignment ``name`` of this course (:class:`Assignment`); raises :class:`CourseError` if
        ``source/`` has no master notebook for it."""
        self.master_path(name)
        return Assignment(self, name)

    def submitted_students(self, assignment: str) -> list[str]:
        """Students with a collected submission of ``assignment``."""
        base = self.root / "submitted"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / assignment).is_dir())


#: the build's products in ``build/A`` (and ``build/A/variants/SEED``) that grading reads back
REF_FILE = "reference.json"  # the reference values, with the digest of the master they were built from
HIDDEN_DIR = "hidden"  # instructor-only dataset files
VARIANTS_DIR = "variants"  # one folder per hidden draw


class Assignment:
    """One assignment of a course: its paths, its master notebook parsed once, its settings, its build products.

    Made by :meth:`Course.assignment`. The master is parsed on first use with the course's region markers
    (nbgrader's ``ClearSolutions``/``ClearHiddenTests``/``ClearMarkScheme`` delimiters, as the build reads
    it), then kept: one object per command, handed to what needs the master, instead of each step
    parsing the file again.

    Example
    -------
    >>> lab = Course("/path/to/course").assignment("lab1-calibration")  # doctest: +SKIP
    >>> lab.master.max_auto, lab.settings()["cell_timeout"]             # doctest: +SKIP
    """

    def __init__(self, course: Course, name: str, master: "Master | None" = None) -> None:
        self.course, self.name = course, name
        if master is not None:
            self.__dict__["master"] = master

    def __repr__(self) -> str:
        return f"Assignment({self.name!r}, course={str(self.course.root)!r})"

    @property
    def master_path(self) -> Path:
        return self.course.master_path(self.name)

    @property
    def source_dir(self) -> Path:
        return self.course.source_dir(self.name)

    @property
    def release_dir(self) -> Path:
        return self.course.release_dir(self.name)

    @property
    def build_dir(self) -> Path:
        return self.course.build_dir(self.name)

    @functools.cached_property
    def master(self) -> "Master":
        """The parsed master notebook (:class:`~edsgrade.authoring.master.Master`), read once."""
        from edsgrade.authoring.master import Delimiters, load_master

        return load_master(self.master_path, Delimiters.from_config(self.course.config))

    def settings(self, **overrides: Any) -> Settings:
        """Every setting of this assignment, resolved by the one rule (:meth:`Course.settings`)."""
        return self.course.settings(self.master, **overrides)

    @property
    def reference_file(self) -> Path:
        """``build/A/reference.json``: the reference values of the last build."""
        return self.build_dir / REF_FILE

    def reference(self) -> dict[str, dict[str, Any]]:
        """The reference values written by the last build (encoded plain data, per question); raises
        :class:`CourseError` if there is no build or the master changed since."""
        from edsgrade.authoring.master import master_digest

        path = self.reference_file
        if not path.is_file():
            raise CourseError(f"{path} is missing: run `edsgrade build {self.name}` first.")
        data = json.loads(path.read_text())
        if data.get("master") != master_digest(self.master):
            raise CourseError(f"{self.master.path} changed since it was built: run `edsgrade build {self.name}` "
                              "again (and release it if students must see the change).")
        return data["values"]
