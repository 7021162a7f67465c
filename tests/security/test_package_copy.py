"""A course folder that holds its own copy of the package: the sandbox still imports the grader's own.

The warm template runs as ``python -P -m edsgrade.grading.sandbox.template`` with the grader's package on
``PYTHONPATH``: the working directory (here a course folder with a broken ``edsgrade/`` of its own,
as a course kept in a clone of this repository would have) is never on ``sys.path``.
"""
import nbformat
import pytest

from conftest import toy_master, new_course
from edsgrade.build.release import build
from edsgrade.course import Course
from edsgrade.grading.sandbox import confinement as sandbox

pytestmark = pytest.mark.skipif(not sandbox.can_confine(), reason="the sandbox needs root (CI runs as root)")

BROKEN = "raise ImportError('this is the course folder\\'s copy of edsgrade, not the grader\\'s')\n"


def test_build_uses_the_graders_package_not_the_course_folders(tmp_path, monkeypatch):
    root = new_course(tmp_path / "course")
    (root / "source" / "toy").mkdir(parents=True)
    nbformat.write(toy_master(), root / "source" / "toy" / "toy.ipynb")
    copy = root / "edsgrade"
    (copy / "grading").mkdir(parents=True)
    (copy / "__init__.py").write_text(BROKEN)
    (copy / "grading" / "__init__.py").write_text(BROKEN)
    (copy / "grading" / "context.py").write_text(BROKEN)
    monkeypatch.chdir(root)
    build(Course(root), "toy", echo=lambda *_: None)  # runs the master in the sandbox: it must import edsgrade
    assert (root / "release" / "toy" / "toy.ipynb").is_file()
    assert (root / "build" / "toy" / "reference.json").is_file()
