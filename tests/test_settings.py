"""The one settings schema (edsgrade.config): every place, unknown keys, wrong types, defaults in one place.

What an instructor relies on: a typo or a wrong type in ``nbgrader_config.py`` or a master's metadata is
refused with a message naming the key, the expected type and the place (never silently dropped, never an
"internal grading error" for every submission later), and every setting has one default, documented.
"""
from __future__ import annotations

import dataclasses
import re

import nbformat
import pytest

from conftest import REPO, cli, new_course, toy_master
from edsgrade.config import DEFAULTS, SCHEMA, SettingsError, check_master, section, settings_table
from edsgrade.course import Course, Grader
from edsgrade.exam import Exam, exam_settings
from edsgrade.grading.engine import GradingOptions
from edsgrade.grades.final import Grades, policy
from edsgrade.authoring.master import load_master


def course_with(tmp_path, config: str = "", metadata: dict | None = None, name: str = "lab1"):
    """A course whose master ``name`` has ``metadata`` as its edsgrade settings, with ``config`` appended."""
    root = new_course(tmp_path / "course")
    (root / "nbgrader_config.py").write_text((root / "nbgrader_config.py").read_text() + "\n" + config + "\n")
    nb = toy_master()
    if metadata is not None:
        nb.metadata["edsgrade"] = metadata
    (root / "source" / name).mkdir(parents=True)
    nbformat.write(nb, root / "source" / name / f"{name}.ipynb")
    return root


# ---- every existing master and the course's config pass unchanged -----------------------------

@pytest.mark.parametrize("assignment", Course(REPO).assignments())
def test_every_master_and_the_course_config_are_accepted(assignment):
    course = Course(REPO)
    master = load_master(course.master_path(assignment))
    settings = course.settings(master)
    raw = master.notebook.metadata.get("edsgrade", {})
    for key, value in raw.items():  # what the master says is what is used
        if key == "exam":
            assert settings.is_exam and all(settings[k] == v for k, v in value.items())
        else:
            assert settings[key] == value, key
    assert settings["memory"] == 4096 and settings["scale"] == 20  # nbgrader_config.py's values


# ---- defaults in one place --------------------------------------------------------------------

def test_defaults_live_in_the_schema_only(tmp_path):
    options = GradingOptions()
    for f in dataclasses.fields(GradingOptions):
        assert getattr(options, f.name) == DEFAULTS[f.name], f.name
    assert {f.name for f in dataclasses.fields(GradingOptions)} == {s.name for s in section("Grader")} - {"workers"}
    for cls, name in ((Grader, "Grader"), (Grades, "Grades"), (Exam, "Exam")):
        traits = cls.class_traits(config=True)
        course_level = [s for s in section(name) if "course" in s.places]
        assert set(traits) == {s.name for s in course_level} | {"assignments"}
        for s in course_level:
            assert cls().trait_defaults(s.name) == s.default, (name, s.name)
            assert traits[s.name].help == s.help
    # a course that sets nothing gets the schema's defaults everywhere
    root = new_course(tmp_path / "course")
    (root / "nbgrader_config.py").write_text("c = get_config()\n")
    (root / "source" / "lab").mkdir(parents=True)
    nbformat.write(toy_master(), root / "source" / "lab" / "lab.ipynb")
    course = Course(root)
    master = load_master(course.master_path("lab"))
    assert GradingOptions.resolve(course, master) == GradingOptions()
    assert exam_settings(course, master) == type(exam_settings(course, master))(False, DEFAULTS["auto_share"],
                                                                                 DEFAULTS["duration_minutes"])
    pol = policy(course, master)
    assert (pol.weight, pol.scale) == (DEFAULTS["weight"], DEFAULTS["scale"])


def test_one_rule_course_then_table_then_master_then_command_line(tmp_path):
    root = course_with(tmp_path, "c.Grader.timeout = 700\nc.Grader.cell_timeout = 50\nc.Grader.memory = 1000\n"
                                 "c.Grader.assignments = {'lab1': {'timeout': 600, 'cell_timeout': 40}}\n"
                                 "c.Grades.assignments = {'lab1': {'weight': 3}}\n"
                                 "c.Exam.assignments = {'lab1': {'duration_minutes': 90}}\n",
                       {"cell_timeout": 30, "weight": 2, "exam": {"auto_share": 0.5}})
    course = Course(root)
    master = load_master(course.master_path("lab1"))
    s = course.settings(master, cell_timeout=20, timeout=None)
    assert (s["memory"], s["timeout"], s["cell_timeout"], s["weight"]) == (1000, 600, 20, 2)
    assert s.sources["memory"] == "c.Grader.memory"
    assert s.sources["timeout"] == "c.Grader.assignments['lab1']"
    assert s.sources["weight"] == "source/lab1/lab1.ipynb metadata edsgrade"
    assert s.sources["cell_timeout"] == "the command line (--cell-timeout)"
    assert s.is_exam and (s["auto_share"], s["duration_minutes"]) == (0.5, 90)
    options = GradingOptions.resolve(course, master, cell_timeout=None)
    assert (options.cell_timeout, options.timeout, options.memory) == (30, 600, 1000)
    assert exam_settings(course, master).duration_minutes == 90 and policy(course, master).weight == 2


# ---- refused, per place -----------------------------------------------------------------------

MASTER_MISTAKES = [
    ({"cell_timout": 5, "timeout": 600},
     "source/lab1/lab1.ipynb metadata edsgrade: unknown setting 'cell_timout' (did you mean 'cell_timeout'?)"),
    ({"timeout": "600"},
     "source/lab1/lab1.ipynb metadata edsgrade.timeout: expected a number of seconds (> 0), got the string '600'"),
    ({"memory": 1.5}, "edsgrade.memory: expected a whole number of MiB (> 0), got the number 1.5"),
    ({"sandbox": "yes"}, "edsgrade.sandbox: expected one of 'auto', 'on', 'off', got the string 'yes'"),
    ({"weight": True}, "edsgrade.weight: expected a number (>= 0; 0: shown, not counted), got the boolean True"),
    ({"variants": [7, "11"]}, "edsgrade.variants: expected a list of whole numbers (seeds), got the list [7, '11']"),
    ({"bonus": "q2"}, "edsgrade.bonus: expected a list of question grade ids (strings), got the string 'q2'"),
    ({"seed": None}, "edsgrade.seed: expected a whole number, got null"),
    ({"exam": {"auto_shar": 0.4}}, "metadata edsgrade.exam: unknown setting 'auto_shar' (did you mean 'auto_share'?)"),
    ({"exam": {"auto_share": 1.5}}, "edsgrade.exam.auto_share: expected a number between 0 and 1, got the number 1.5"),
    ({"exam": 240}, "metadata edsgrade.exam: expected a dict of settings"),
    ({"auto_share": 0.4}, "unknown setting 'auto_share' (it belongs in c.Exam.auto_share or c.Exam.assignments[A] "
                          "or the master's metadata edsgrade.exam)"),
    ({"workers": 2}, "unknown setting 'workers' (it belongs in c.Grader.workers)"),
    (["timeout", 600], "source/lab1/lab1.ipynb metadata edsgrade: expected a dict of settings"),
]


@pytest.mark.parametrize("metadata,message", MASTER_MISTAKES)
def test_a_master_with_a_mistake_is_refused_naming_key_type_and_place(tmp_path, metadata, message):
    root = course_with(tmp_path, metadata=metadata)
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_master(root / "source" / "lab1" / "lab1.ipynb")
    # a mistake made after loading (code editing master.settings) is refused when the settings are resolved
    ok = course_with(tmp_path / "ok")
    course = Course(ok)
    loaded = load_master(course.master_path("lab1"))
    loaded.settings.clear()
    if isinstance(metadata, dict):
        loaded.settings.update(metadata)
        with pytest.raises(SettingsError, match=re.escape(message.split(": ", 1)[-1])):
            GradingOptions.resolve(course, loaded)


CONFIG_MISTAKES = [
    ("c.Grader.cell_timout = 5",
     "nbgrader_config.py: c.Grader: unknown setting 'cell_timout' (did you mean 'cell_timeout'?)"),
    ("c.Grader.timeout = '600'", "nbgrader_config.py: c.Grader.timeout: expected a number of seconds (> 0), "
                                 "got the string '600'"),
    ("c.Grader.workers = -1", "c.Grader.workers: expected a whole number (>= 0), got the number -1"),
    ("c.Grades.scale = 0", "c.Grades.scale: expected a number (> 0), got the number 0"),
    ("c.Grades.weight = 2", "c.Grades: unknown setting 'weight' (it belongs in c.Grades.assignments[A] or the "
                            "master's metadata edsgrade)"),
    ("c.Exam.duration = 240", "c.Exam: unknown setting 'duration'"),
    ("c.Grader.assignments = {'lab1': {'timeout': '600'}}",
     "c.Grader.assignments['lab1']['timeout']: expected a number of seconds (> 0), got the string '600'"),
    ("c.Grader.assignments = {'lab1': {'time_out': 600}}",
     "c.Grader.assignments['lab1']: unknown setting 'time_out' (did you mean 'timeout'?)"),
    ("c.Grader.assignments = {'lab1': {'weight': 0}}",
     "c.Grader.assignments['lab1']: unknown setting 'weight' (it belongs in c.Grades.assignments[A]"),
    ("c.Grader.assignments = {'lab1': {'workers': 2}}",
     "c.Grader.assignments['lab1']: unknown setting 'workers' (it belongs in c.Grader.workers)"),
    ("c.Grades.assignments = {'lab1': {'weight': '2'}}",
     "c.Grades.assignments['lab1']['weight']: expected a number (>= 0; 0: shown, not counted), got the string '2'"),
    ("c.Exam.assignments = {'lab1': 180}", "c.Exam.assignments['lab1']: expected a dict of settings"),
    ("c.Grader.assignments = ['lab1']", "c.Grader.assignments: expected a dict of assignment name -> settings"),
]


@pytest.mark.parametrize("config,message", CONFIG_MISTAKES)
def test_a_config_with_a_mistake_is_refused_naming_key_type_and_place(tmp_path, config, message):
    root = course_with(tmp_path, config)
    with pytest.raises(SettingsError, match=re.escape(message)):
        Course(root)


def test_a_table_naming_no_assignment_is_refused_when_settings_are_resolved(tmp_path):
    root = course_with(tmp_path, "c.Grades.assignments = {'lab-1': {'weight': 0}}")
    course = Course(root)
    master = load_master(course.master_path("lab1"))
    for resolve in (lambda: GradingOptions.resolve(course, master), lambda: policy(course, master),
                    lambda: exam_settings(course, master)):
        with pytest.raises(SettingsError, match=re.escape("c.Grades.assignments['lab-1']: no assignment 'lab-1' "
                                                          "in source/ (did you mean 'lab1'?)")):
            resolve()


def test_a_command_line_value_of_the_wrong_type_is_refused(tmp_path):
    course = Course(course_with(tmp_path))
    master = load_master(course.master_path("lab1"))
    with pytest.raises(SettingsError, match=re.escape("the command line (--timeout): expected a number of seconds")):
        GradingOptions.resolve(course, master, timeout=0)
    with pytest.raises(SettingsError, match="the command line: unknown setting 'cell_timout'"):
        GradingOptions.resolve(course, master, cell_timout=3)


def test_the_build_and_the_cli_refuse_a_bad_master_before_running_anything(tmp_path):
    """The issue's example: it used to keep the default cell timeout and grade every submission as an
    "internal grading error"; now ``edsgrade build`` refuses it, and nothing is built."""
    root = course_with(tmp_path, metadata={"cell_timout": 5, "timeout": "600"})
    out = cli(root, "build", "lab1")
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr
    assert ("error: source/lab1/lab1.ipynb metadata edsgrade: unknown setting 'cell_timout' "
            "(did you mean 'cell_timeout'?)") in out.stderr
    assert not (root / "release" / "lab1").exists() and not (root / "build" / "lab1").exists()


def test_check_master_returns_a_copy():
    raw = {"variants": [1, 2], "exam": {"auto_share": 0.5}}
    checked = check_master(raw, "m")
    checked["variants"].append(3)
    checked["exam"]["auto_share"] = 1
    assert raw == {"variants": [1, 2], "exam": {"auto_share": 0.5}}


# ---- documented -------------------------------------------------------------------------------

def test_every_setting_is_documented_in_the_authoring_guide_with_its_default():
    doc = (REPO / "docs" / "authoring.md").read_text()
    assert settings_table() in doc, "docs/authoring.md's settings table is not the schema's: paste settings_table()"
    table = doc[doc.index("<!-- settings table"):doc.index("<!-- end of settings table -->")]
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)` \|.*$", table, re.M)}
    assert set(rows) == {s.name for s in SCHEMA}
    for s in SCHEMA:
        assert s.help in rows[s.name] and s.expected in rows[s.name], s.name
