"""``Course.assignment(name)``: one object for an assignment's paths, its master (parsed once), settings, build."""
from __future__ import annotations

import json

import nbformat
import pytest

from conftest import new_course, toy_master
from edsgrade.authoring.master import AuthoringError, master_digest
from edsgrade.course import REF_FILE, Assignment, Course, CourseError


@pytest.fixture
def course(tmp_path) -> Course:
    root = new_course(tmp_path / "course")
    (root / "source" / "toy").mkdir(parents=True)
    nbformat.write(toy_master(), root / "source" / "toy" / "toy.ipynb")
    return Course(root)


def test_paths_and_master_are_the_courses(course):
    toy = course.assignment("toy")
    assert isinstance(toy, Assignment) and toy.name == "toy"
    assert toy.master_path == course.master_path("toy") and toy.source_dir == course.source_dir("toy")
    assert toy.release_dir == course.release_dir("toy") and toy.build_dir == course.build_dir("toy")
    assert [q.grade_id for q in toy.master.questions] == ["q1", "q2"]
    assert toy.master.max_auto == 5


def test_the_master_is_parsed_once(course):
    toy = course.assignment("toy")
    first = toy.master
    toy.master_path.write_text("not a notebook")  # a second parse would fail
    assert toy.master is first
    with pytest.raises(AuthoringError, match="not a readable notebook"):
        course.assignment("toy").master  # a new object reads the file as it is now


def test_settings_resolve_by_the_one_rule(course):
    toy = course.assignment("toy")
    assert toy.settings()["cell_timeout"] == course.settings(toy.master)["cell_timeout"]
    assert toy.settings(cell_timeout=7)["cell_timeout"] == 7


def test_an_unknown_assignment_is_refused_with_the_known_ones(course):
    with pytest.raises(CourseError, match=r"no assignment 'lab9'.*assignments: toy"):
        course.assignment("lab9")


def test_reference_values_need_a_build_of_this_master(course):
    toy = course.assignment("toy")
    with pytest.raises(CourseError, match=r"reference.json is missing: run `edsgrade build toy` first"):
        toy.reference()
    toy.build_dir.mkdir(parents=True)
    values = {"q1": {"mean_value": 4.0}}
    (toy.build_dir / REF_FILE).write_text(json.dumps({"master": master_digest(toy.master), "values": values}))
    assert toy.reference_file == toy.build_dir / REF_FILE and toy.reference() == values
    # the master edited after its build: the values are refused, and the message says to build again
    nb = nbformat.read(toy.master_path, as_version=4)
    nb.cells[2].source = nb.cells[2].source.replace("np.mean(values)", "np.median(values)")
    nbformat.write(nb, toy.master_path)
    with pytest.raises(CourseError, match=r"changed since it was built: run `edsgrade build toy` again"):
        course.assignment("toy").reference()
