"""Shared fixtures: throw-away course directories (never the repository's own), the session's lab builds,
and the markers every test gets from what it uses (``pytest -m unit``, ``make test-fast``).
"""
from __future__ import annotations

import functools
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]


def new_course(root: Path, assignments: tuple[str, ...] = ()) -> Path:
    """A course directory in ``root`` with the repository's config and the masters of ``assignments``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "nbgrader_config.py", root / "nbgrader_config.py")
    for name in assignments:
        src = REPO / "source" / name
        dest = root / "source" / name
        dest.mkdir(parents=True)
        for item in src.iterdir():
            if item.is_file():
                shutil.copy(item, dest / item.name)
    return root


def slot_user_pids() -> list[int]:
    """Pids of the live processes of the grading slots' system users (``edsgrade-sbx*``), whoever's grading
    started them: each test filters them down to its own run."""
    import pwd

    from edsgrade.grading.sandbox import confinement

    return [pid for user in pwd.getpwall() if user.pw_name.startswith(confinement.USER_PREFIX)
            for pid in confinement.processes_of(user.pw_uid)]


def cli(root: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``edsgrade --course-dir root ARGS`` as a user would, and return the finished process."""
    return subprocess.run([sys.executable, "-m", "edsgrade", "--course-dir", str(root), "-q", *args],
                          capture_output=True, text=True, timeout=timeout)


def grade_meta(grade_id: str, *, grade: bool, solution: bool, points: float | None = None) -> dict:
    meta = {"grade": grade, "solution": solution, "locked": not solution, "grade_id": grade_id, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    return {"nbgrader": meta}


def toy_master() -> nbformat.NotebookNode:
    """A small master notebook: two autograded questions (public + hidden cases) and one manual answer."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}

    def cell(source, meta=None, kind="code"):
        c = nbformat.v4.new_code_cell(source) if kind == "code" else nbformat.v4.new_markdown_cell(source)
        if meta:
            c.metadata.update(meta)
        return c

    nb.cells = [
        cell("import numpy as np\nfrom edsgrade.authoring import test_case"),
        cell("Compute the mean of `values` into `mean_value` and the squares into `squares`.", kind="markdown"),
        cell("values = [1.0, 2.0, 4.0, 9.0]\n### BEGIN SOLUTION\nmean_value = float(np.mean(values))\n"
             "secret_helper_line = 42\n### END SOLUTION", grade_meta("a1", grade=False, solution=True)),
        cell("import numpy as np\n\n@test_case(points=1)\ndef mean_is_a_number(mean_value):\n    assert np.ndim(mean_value) == 0, 'one number'\n"
             "### BEGIN HIDDEN TESTS\n@test_case(points=2, hidden=True)\ndef mean_matches_reference(mean_value, ref):\n"
             "    assert np.isclose(mean_value, ref.mean_value), 'hidden mean check failed'\n### END HIDDEN TESTS",
             grade_meta("q1", grade=True, solution=False, points=3)),
        cell("### BEGIN SOLUTION\nsquares = np.asarray(values) ** 2\n### END SOLUTION",
             grade_meta("a2", grade=False, solution=True)),
        cell("import numpy as np\n\n@test_case(points=1)\ndef squares_has_four_items(squares):\n    assert len(squares) == 4, 'four squares expected'\n"
             "### BEGIN HIDDEN TESTS\n@test_case(points=1, hidden=True)\ndef squares_match(squares, ref):\n"
             "    assert np.allclose(squares, ref.squares)\n### END HIDDEN TESTS",
             grade_meta("q2", grade=True, solution=False, points=2)),
        cell("The mean is pulled up by the largest value.", grade_meta("why", grade=True, solution=True, points=1),
             kind="markdown"),
    ]
    return nb


@pytest.fixture
def toy_course(tmp_path: Path) -> Path:
    root = new_course(tmp_path / "course")
    (root / "source" / "toy").mkdir(parents=True)
    nbformat.write(toy_master(), root / "source" / "toy" / "toy.ipynb")
    return root


# --- the session's lab builds, shared by the lab tests, the common lab test and the demo test ------------

@pytest.fixture(scope="session")
def lab_builds(tmp_path_factory):
    """Every lab built at most once per session (see ``labkit.LabBuilds``); tests get copies."""
    from labkit import LabBuilds

    return LabBuilds(tmp_path_factory.mktemp("built-labs"))


@pytest.fixture(scope="session")
def demo_run(lab_builds, tmp_path_factory):
    """``edsgrade demo --reuse-build`` once per session on a course whose labs the session built already."""
    from labkit import run_demo_cli

    return run_demo_cli(lab_builds, tmp_path_factory.mktemp("demo") / "course")


# --- markers --------------------------------------------------------------------------------------------
# Registered in pyproject.toml; given here from what a test uses, so that new test files get them without
# naming them: root (the grading sandbox or system users: needs root), hub (a JupyterHub), browser
# (Chromium through Playwright), slow (builds or grades whole labs, the demo, the exam, the hub), and
# unit for every test that is none of those (``make test-fast``).

TESTS = Path(__file__).resolve().parent
HEAVY_MARKERS = ("slow", "root", "hub", "browser")
# what puts a module's tests in the sandbox: the build (the master's reference run), grading, the demos,
# the hostile-submission arena and the lab kit
_SANDBOX_IMPORT = re.compile(r"^[ \t]*(?:from|import)\s+(?:edsgrade\.(?:build|simulate\.(?:demo|examdemo)|hub\.grading|"
                             r"grading\.(?:autograde|engine|backends|variants|sandbox\.(?:executor|pool|template|runner)))"
                             r"|arena|labkit|hubclient)\b", re.MULTILINE)
_HUB_IMPORT = re.compile(r"^\s*(?:from|import)\s+(?:edsgrade\.hub\.launcher|hubclient)\b", re.MULTILINE)
_BROWSER_IMPORT = re.compile(r"^\s*(?:from|import)\s+playwright\b", re.MULTILINE)
_SANDBOX_FIXTURES = {"toy_course", "lab_builds", "demo_run"}
_SLOW_FIXTURES = {"lab_builds", "demo_run"}
_SLOW_MODULE = re.compile(r"^test_(?:lab\d|labs_|demo|exam|hub|grading_runs)")


@functools.lru_cache(maxsize=None)
def _source(obj) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


def markers_for(item: pytest.Item) -> set[str]:
    """The heavy markers ``item`` gets from its folder, its module's imports and the fixtures it uses."""
    path = Path(str(item.fspath)).resolve()
    module = _source(item.module) if getattr(item, "module", None) else ""
    fixtures = set(getattr(item, "fixturenames", ()))
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
    used = [_source(getattr(item, "function", None))] + [_source(d.func) for ds in defs.values() for d in ds]
    marks: set[str] = set()
    top_level = "\n".join(line for line in module.splitlines() if not line[:1].isspace())
    sandbox = [top_level] + used  # a module's own imports, or those inside the test and its fixtures
    if TESTS / "security" in path.parents or any(_SANDBOX_IMPORT.search(t) for t in sandbox) \
            or fixtures & _SANDBOX_FIXTURES:
        marks.add("root")
    if _HUB_IMPORT.search(module) or "hub" in fixtures:
        marks |= {"hub", "root", "slow"}
    if any(_BROWSER_IMPORT.search(text) for text in used):
        marks |= {"browser", "slow"}
    if _SLOW_MODULE.match(path.name) or fixtures & _SLOW_FIXTURES:
        marks.add("slow")
    return marks


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        own = {m.name for m in item.iter_markers()}
        marks = markers_for(item) | (own & set(HEAVY_MARKERS))
        for name in sorted(marks - own):
            item.add_marker(name)
        if not marks and "unit" not in own:
            item.add_marker("unit")
