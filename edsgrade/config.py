"""One settings schema: every setting of the course, its type, default, allowed values, help and places.

A setting can be given in up to four places, read in this order, each overriding the one before
(the one rule of :func:`resolve`)::

    course          nbgrader_config.py     c.Grader.timeout = 900
    assignment      nbgrader_config.py     c.Grader.assignments = {"lab1-calibration": {"timeout": 600}}
    master          source/A/A.ipynb       metadata "edsgrade": {"timeout": 600}   (exam ones under "exam")
    command line    edsgrade grade A --timeout 600

The sections are nbgrader-style traitlets ``Configurable`` classes (``c.Grader``, ``c.Grades``,
``c.Exam``): :func:`configurable` generates their traits from :data:`SCHEMA`, so the defaults live
here and nowhere else (``GradingOptions``, ``ExamSettings`` and the Configurables read them from
here). A master's metadata has, besides the sections' settings, settings of its own (``dataset``,
``seed``, ``variants``, ``bonus``).

Why not traitlets alone: traitlets only warns about an unknown ``c.Grader.cell_timout`` and knows
nothing of the per-assignment tables or of a notebook's metadata; and why not a schema library
(jsonschema, pydantic): the messages must name the place as the instructor wrote it
(``c.Grader.assignments['lab1']['timeout']``, ``source/lab1/lab1.ipynb metadata edsgrade``) and
suggest the key meant, and the table is small. Every mistake is refused with a
:class:`SettingsError`: an unknown key (with a did-you-mean), a wrong type (the expected type and
what was given), a key in the wrong place (where it belongs).

This module imports nothing else of the package (only traitlets), so that every layer can use it.
"""
from __future__ import annotations

import difflib
import math
import reprlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from traitlets import Dict, Enum, Float, Integer, List, TraitType, Unicode
from traitlets.config import Config, Configurable
from traitlets.config.loader import LazyConfigValue

from edsgrade.errors import EdsgradeError

#: the places a setting can be given (see the module docstring)
COURSE, ASSIGNMENT, MASTER, COMMAND_LINE = "course", "assignment", "master", "command line"
SECTIONS = ("Grader", "Grades", "Exam")
#: master-only settings have this section
MASTER_SECTION = "master"
#: the key of a master's metadata that holds the Exam section's settings
EXAM_KEY = "exam"
TABLE = "assignments"


class SettingsError(EdsgradeError, ValueError):
    """A setting is unknown, of the wrong type or in the wrong place; the message names the key, the
    expected type and the place, and suggests the key meant."""


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class Kind:
    """A type of setting value: what it is called in messages, how to check it, its traitlets trait."""

    expected: str  # "a number of seconds (> 0)"
    check: Callable[[Any], bool]
    trait: Callable[..., TraitType]


SECONDS = Kind("a number of seconds (> 0)", lambda v: _number(v) and v > 0, Float)
MINUTES = Kind("a number of minutes (> 0)", lambda v: _number(v) and v > 0, Float)
MIB = Kind("a whole number of MiB (> 0)", lambda v: _integer(v) and v > 0, Integer)
POSITIVE_INT = Kind("a whole number (> 0)", lambda v: _integer(v) and v > 0, Integer)
COUNT = Kind("a whole number (>= 0)", lambda v: _integer(v) and v >= 0, Integer)
INTEGER = Kind("a whole number", _integer, Integer)
FRACTION = Kind("a number between 0 and 1", lambda v: _number(v) and 0 <= v <= 1, Float)
POSITIVE = Kind("a number (> 0)", lambda v: _number(v) and v > 0, Float)
WEIGHT = Kind("a number (>= 0; 0: shown, not counted)", lambda v: _number(v) and v >= 0, Float)
NAME = Kind("a name (a non-empty string)", lambda v: isinstance(v, str) and bool(v.strip()), Unicode)
SEEDS = Kind("a list of whole numbers (seeds)", lambda v: isinstance(v, list) and all(_integer(s) for s in v), List)
GRADE_IDS = Kind("a list of question grade ids (strings)",
                 lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v), List)


@dataclass(frozen=True)
class Setting:
    """One setting: its section, type, default, allowed values, help and the places it may be given."""

    name: str
    section: str  # "Grader", "Grades", "Exam" or MASTER_SECTION
    kind: Kind
    default: Any
    help: str
    places: frozenset[str] = frozenset({COURSE, ASSIGNMENT, MASTER})
    choices: tuple[str, ...] = ()

    @property
    def expected(self) -> str:
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        return self.kind.expected

    def accepts(self, value: Any) -> bool:
        return value in self.choices if self.choices else self.kind.check(value)

    def trait(self) -> TraitType:
        """The traitlets trait of this setting (for the ``c.Section`` Configurable)."""
        if self.choices:
            return Enum(self.choices, default_value=self.default, help=self.help).tag(config=True)
        return self.kind.trait(self.default, help=self.help).tag(config=True)


_ALL = frozenset({COURSE, ASSIGNMENT, MASTER})
_ONLY_MASTER = frozenset({MASTER})

#: every setting of the course, once
SCHEMA: tuple[Setting, ...] = (
    # ---- c.Grader: how submissions are run --------------------------------------------------
    Setting("cell_timeout", "Grader", SECONDS, 120, "Wall-clock limit for one cell, in seconds."),
    Setting("timeout", "Grader", SECONDS, 900, "Wall-clock limit for all the cells of a submission, in seconds."),
    Setting("memory", "Grader", MIB, 4096, "Memory of a submission, in MiB: of all its processes together where "
            "the sandbox has a cgroup, else of each process's address space."),
    Setting("cpu_time", "Grader", POSITIVE_INT, 1800, "CPU time of a submission's process, in seconds."),
    Setting("processes", "Grader", POSITIVE_INT, 64, "Processes and threads a submission may run at once."),
    Setting("file_size", "Grader", MIB, 256, "Largest file a submission may write, in MiB."),
    Setting("open_files", "Grader", POSITIVE_INT, 256, "Files a submission's process may hold open."),
    Setting("disk", "Grader", MIB, 1024, "What a submission may write in its working copy, in MiB (files past it "
            "fail with 'No space left on device')."),
    Setting("output_limit", "Grader", POSITIVE_INT, 20_000, "Characters of output kept per cell in autograded "
            "notebooks."),
    Setting("notebook_output_limit", "Grader", POSITIVE_INT, 20_000_000, "Bytes (as JSON) of outputs kept for a "
            "whole autograded notebook; past it, later cells' outputs are replaced by a note."),
    Setting("value_limit", "Grader", MIB, 256, "Largest value the judge receives from a submission (a captured "
            "variable or what a function returns through the proxy), in MiB: a larger one is not judged, and its "
            "case says so with its size."),
    Setting("threads", "Grader", POSITIVE_INT, 1, "Numerical-library threads (and CPU share) per submission."),
    Setting("sandbox", "Grader", NAME, "auto", "'auto' (full sandbox when run as root), 'on' (required) or 'off' "
            "(trusted notebooks only: resource limits, no isolation).", choices=("auto", "on", "off")),
    Setting("workers", "Grader", COUNT, 0, "Submissions graded at once (0: one per CPU core).",
            places=frozenset({COURSE})),
    # ---- c.Grades: how grades are reported and counted ---------------------------------------
    Setting("scale", "Grades", POSITIVE, 20.0, "Grades are reported out of this (20 in French universities).",
            places=frozenset({COURSE})),
    Setting("weight", "Grades", WEIGHT, 1.0, "Weight of an assignment in the course total (0: shown, not counted).",
            places=frozenset({ASSIGNMENT, MASTER})),
    # ---- c.Exam: exams (an assignment is one if c.Exam.assignments or its master's "exam" names it)
    Setting("auto_share", "Exam", FRACTION, 0.4, "Share of the automatic part in an exam's final grade (0 to 1); "
            "the rubric (manual part) gets the rest."),
    Setting("duration_minutes", "Exam", MINUTES, 240.0, "Length of an exam in minutes: deadline = start + duration."),
    # ---- the master's own settings (metadata "edsgrade") -------------------------------------
    Setting("dataset", MASTER_SECTION, NAME, None, "The dataset generator of edsgrade.datasets the build runs "
            "into source/A/data (e.g. 'river').", places=_ONLY_MASTER),
    Setting("seed", MASTER_SECTION, INTEGER, 0, "Seed of the students' draw of the dataset.", places=_ONLY_MASTER),
    Setting("variants", MASTER_SECTION, SEEDS, [], "Seeds of hidden draws of the dataset: each submission is also "
            "graded on one of them (needs dataset).", places=_ONLY_MASTER),
    Setting("bonus", MASTER_SECTION, GRADE_IDS, [], "Grade ids of bonus questions: not in the possible points, what "
            "they earn is added (grade capped at the scale).", places=_ONLY_MASTER),
)
SETTINGS: dict[str, Setting] = {s.name: s for s in SCHEMA}
#: every default, by setting name
DEFAULTS: dict[str, Any] = {s.name: s.default for s in SCHEMA}
_TABLE_HELP = {
    "Grader": "Per-assignment overrides of the settings above, by assignment name, e.g. "
              "{'lab1-calibration': {'timeout': 600}}.",
    "Grades": "Per-assignment settings, e.g. {'lab0-python': {'weight': 0}} (weight in the course total, default 1).",
    "Exam": "Per-assignment overrides, e.g. {'exam-hackathon': {'duration_minutes': 180}}; an assignment listed "
            "here is an exam.",
}


def section(name: str) -> list[Setting]:
    """The settings of one section (``"Grader"``, ``"Grades"``, ``"Exam"`` or ``"master"``)."""
    return [s for s in SCHEMA if s.section == name]


def default(name: str) -> Any:
    """The default of setting ``name`` (a fresh copy for lists)."""
    value = SETTINGS[name].default
    return list(value) if isinstance(value, list) else value


def configurable(name: str, module: str, doc: str) -> type[Configurable]:
    """The traitlets ``Configurable`` of section ``name`` (``c.Grader``...), its traits generated from
    :data:`SCHEMA` (the course-level settings, plus the per-assignment table ``assignments``)."""
    traits: dict[str, Any] = {s.name: s.trait() for s in section(name) if COURSE in s.places}
    traits[TABLE] = Dict(help=_TABLE_HELP[name]).tag(config=True)
    return type(name, (Configurable,), {"__doc__": doc, "__module__": module, **traits})


def settings_table() -> str:
    """The schema as the Markdown table of ``docs/authoring.md`` (a test checks that the guide has it)."""
    def where(s: Setting) -> str:
        if s.section == MASTER_SECTION:
            return "master only"
        places = [f"`c.{s.section}.{s.name}`" if COURSE in s.places else "",
                  f"`c.{s.section}.assignments[A]`" if ASSIGNMENT in s.places else "",
                  ("master `exam`" if s.section == "Exam" else "master") if MASTER in s.places else ""]
        return ", ".join(p for p in places if p)

    lines = ["<!-- settings table: generated by edsgrade.config.settings_table() -->",
             "| setting | type | default | where | what |", "| --- | --- | --- | --- | --- |"]
    for s in SCHEMA:
        shown = "none" if s.default is None else repr(s.default)
        lines.append(f"| `{s.name}` | {s.expected} | `{shown}` | {where(s)} | {s.help} |")
    return "\n".join(lines) + "\n"


# ---- checking ---------------------------------------------------------------------------------

def describe(value: Any) -> str:
    """``value`` as a message names it: "the string '600'", "the boolean True", "null"..."""
    if value is None:
        return "null (None)"
    if isinstance(value, bool):
        return f"the boolean {value}"
    if isinstance(value, str):
        return f"the string {reprlib.repr(value)}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return f"the {type(value).__name__} {reprlib.repr(value)}"


def _suggest(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _elsewhere(name: str) -> str:
    """Where a key given in the wrong place belongs, if it is a setting at all."""
    s = SETTINGS.get(name)
    if s is None:
        return ""
    wheres = []
    if s.section == MASTER_SECTION:
        wheres.append("the master's metadata edsgrade")
    else:
        if COURSE in s.places:
            wheres.append(f"c.{s.section}.{s.name}")
        if ASSIGNMENT in s.places:
            wheres.append(f"c.{s.section}.assignments[A]")
        if MASTER in s.places:
            wheres.append("the master's metadata edsgrade" + (f".{EXAM_KEY}" if s.section == "Exam" else ""))
    return f" (it belongs in {' or '.join(wheres)})"


def _check_value(s: Setting, value: Any, where: str) -> Any:
    if not s.accepts(value):
        raise SettingsError(f"{where}: expected {s.expected}, got {describe(value)}")
    return list(value) if isinstance(value, list) else value


def check_layer(layer: Any, allowed: Mapping[str, Setting], where: str, place: str,
                nested: Mapping[str, Callable[[Any, str], Any]] | None = None) -> dict[str, Any]:
    """Check one layer of settings (a dict) against ``allowed``; return it checked (a copy).

    ``where`` names the layer as the instructor wrote it (``c.Grader.assignments['lab1']``, ``source/A/A.ipynb
    metadata edsgrade``); ``nested`` maps keys that hold a sub-layer to their checker.
    """
    nested = nested or {}
    known = [*allowed, *nested]
    if not isinstance(layer, Mapping):
        raise SettingsError(f"{where}: expected a dict of settings such as "
                            f"{{{', '.join(repr(k) + ': ...' for k in known[:2])}}}, got {describe(layer)}")
    out: dict[str, Any] = {}
    for key, value in layer.items():
        item = f"{where}.{key}" if place == MASTER else f"{where}[{key!r}]"
        if key in nested:
            out[key] = nested[key](value, item)
        elif key in allowed:
            out[key] = _check_value(allowed[key], value, item)
        else:
            hint = _suggest(key, known) or _elsewhere(key)
            raise SettingsError(f"{where}: unknown setting {key!r}{hint}; known: {', '.join(known)}")
    return out


def _allowed(sec: str, place: str) -> dict[str, Setting]:
    return {s.name: s for s in section(sec) if place in s.places}


def _plain(value: Any, empty: Any) -> Any:
    """A traitlets config value as written (``c.Grader.assignments["x"] = ...`` on a fresh config is lazy)."""
    if isinstance(value, LazyConfigValue):
        return value.get_value(empty)
    return value


def check_config(config: Config, where: str = "nbgrader_config.py") -> None:
    """Refuse unknown keys and wrong types in the course's ``c.Grader``, ``c.Grades`` and ``c.Exam`` and in
    their per-assignment tables. Raises :class:`SettingsError`."""
    for sec in SECTIONS:
        if sec not in config:
            continue
        course_level = _allowed(sec, COURSE)
        known = [*course_level, TABLE]
        for key, value in config[sec].items():
            name = f"{where}: c.{sec}.{key}"
            if key == TABLE:
                check_table(sec, _plain(value, {}), where)
                continue
            if key not in course_level:
                hint = _suggest(key, known) or _elsewhere(key)
                raise SettingsError(f"{where}: c.{sec}: unknown setting {key!r}{hint}; known: {', '.join(known)}")
            _check_value(course_level[key], _plain(value, None), name)


def check_table(sec: str, table: Any, where: str = "nbgrader_config.py") -> dict[str, dict[str, Any]]:
    """Check ``c.<sec>.assignments`` (a dict of assignment name -> settings); return it checked."""
    name = f"{where}: c.{sec}.{TABLE}"
    if not isinstance(table, Mapping):
        raise SettingsError(f"{name}: expected a dict of assignment name -> settings, got {describe(table)}")
    allowed = _allowed(sec, ASSIGNMENT)
    return {str(a): check_layer(v, allowed, f"{name}[{a!r}]", ASSIGNMENT) for a, v in table.items()}


def check_master(metadata: Any, where: str) -> dict[str, Any]:
    """Check a master's metadata ``edsgrade`` (``where``: "source/A/A.ipynb metadata edsgrade"); return it
    checked (a copy). Raises :class:`SettingsError`."""
    if metadata is None:
        return {}
    flat = {s.name: s for s in SCHEMA if MASTER in s.places and s.section != "Exam"}
    exam = _allowed("Exam", MASTER)
    return check_layer(metadata, flat, where, MASTER,
                       nested={EXAM_KEY: lambda layer, item: check_layer(layer, exam, item, MASTER)})


def check_known_assignments(config: Config, known: Iterable[str], where: str = "nbgrader_config.py") -> None:
    """Refuse a per-assignment table entry naming no assignment of the course (a typo would be ignored)."""
    names = list(known)
    for sec in SECTIONS:
        table = _plain(config[sec].get(TABLE, {}), {}) if sec in config else {}
        for a in table if isinstance(table, Mapping) else ():
            if a not in names:
                raise SettingsError(f"{where}: c.{sec}.{TABLE}[{a!r}]: no assignment {a!r} in source/"
                                    f"{_suggest(a, names)}; assignments: {', '.join(names) or 'none'}")


def master_place(path: Any) -> str:
    """How messages name a master's settings: ``source/A/A.ipynb metadata edsgrade``."""
    from pathlib import Path

    path = Path(path)
    shown = f"source/{path.parent.name}/{path.name}" if path.parent.parent.name == "source" else path.name
    return f"{shown} metadata edsgrade"


# ---- resolving --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """Every setting of one assignment, resolved by the one rule (course, per-assignment table, master,
    command line); ``sources[name]`` says where each value came from."""

    assignment: str
    values: dict[str, Any]
    sources: dict[str, str]
    is_exam: bool = False

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def of(self, sec: str) -> dict[str, Any]:
        """The values of one section (``"Grader"``...)."""
        return {s.name: self.values[s.name] for s in section(sec)}


def resolve(config: Config, assignment: str, metadata: Any, master_where: str,
            overrides: Mapping[str, Any] | None = None, known_assignments: Iterable[str] | None = None,
            config_where: str = "nbgrader_config.py") -> Settings:
    """Resolve every setting of ``assignment``: the schema's default, then the course's ``c.Section.name``,
    then ``c.Section.assignments[assignment]``, then the master's metadata (``metadata``, named
    ``master_where`` in messages), then ``overrides`` (the command line: ``None`` means not given).

    Every layer is checked first: an unknown key, a wrong type or a key in the wrong place raises
    :class:`SettingsError` naming the key, the expected type and the place.
    """
    check_config(config, config_where)
    if known_assignments is not None:
        check_known_assignments(config, known_assignments, config_where)
    master = check_master(metadata, master_where)
    values = {s.name: default(s.name) for s in SCHEMA}
    sources = {s.name: "default" for s in SCHEMA}
    is_exam = EXAM_KEY in master
    for sec in SECTIONS:
        sub = config[sec] if sec in config else {}
        for s in section(sec):
            if COURSE in s.places and s.name in sub:
                values[s.name], sources[s.name] = _plain(sub[s.name], None), f"c.{sec}.{s.name}"
        table = check_table(sec, _plain(sub.get(TABLE, {}), {}), config_where)
        if assignment in table:
            is_exam = is_exam or sec == "Exam"
            for k, v in table[assignment].items():
                values[k], sources[k] = v, f"c.{sec}.{TABLE}[{assignment!r}]"
    for k, v in master.items():
        if k == EXAM_KEY:
            for ek, ev in v.items():
                values[ek], sources[ek] = ev, f"{master_where}.{EXAM_KEY}"
        else:
            values[k], sources[k] = v, master_where
    for k, v in (overrides or {}).items():
        if v is None:
            continue
        s = SETTINGS.get(k)
        flag = f"--{k.replace('_', '-')}"
        if s is None or s.section == MASTER_SECTION:
            raise SettingsError(f"the command line: unknown setting {k!r}{_suggest(k, SETTINGS)}")
        values[k], sources[k] = _check_value(s, v, f"the command line ({flag})"), f"the command line ({flag})"
    return Settings(assignment, values, sources, is_exam)
