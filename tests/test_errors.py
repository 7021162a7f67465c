"""One error root: every edsgrade exception is an EdsgradeError, and the CLI reports user errors without a
traceback (a clear message on standard error, exit status 1; ``--debug`` adds the traceback)."""
from __future__ import annotations

import datetime as dt
import importlib
import inspect
import os
import pkgutil
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

import edsgrade
from conftest import cli, new_course, toy_master
from edsgrade.errors import EdsgradeError

#: modules that are not importable as modules: a traitlets config file, and the CLI's entry point
NOT_MODULES = {"edsgrade.hub.jupyterhub_config", "edsgrade.__main__"}


def edsgrade_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(edsgrade.__path__, "edsgrade.") if m.name not in NOT_MODULES]


def test_every_edsgrade_exception_class_has_the_root():
    classes = {}
    for name in edsgrade_modules():
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__.startswith("edsgrade"):
                classes[f"{obj.__module__}.{obj.__qualname__}"] = obj
    assert len(classes) >= 20, sorted(classes)  # the package's own: CourseError, SandboxError, ProtocolError...
    without = sorted(n for n, c in classes.items() if not issubclass(c, EdsgradeError))
    assert not without, f"exception classes outside EdsgradeError: {without}"
    # callers that catch the standard bases keep working
    from edsgrade.grading.sandbox.protocol import ChannelTimeout, ProtocolError
    from edsgrade.authoring.master import AuthoringError
    from edsgrade.exchange.safecopy import UnsafeFile

    assert issubclass(AuthoringError, ValueError) and issubclass(ProtocolError, ValueError)
    assert issubclass(UnsafeFile, OSError) and issubclass(ChannelTimeout, TimeoutError)


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    """One course for every CLI case: lab1 (toy master), a corrupt master, an exam whose deadline is ahead."""
    root = new_course(tmp_path_factory.mktemp("errors") / "course")
    for name in ("lab1", "exam"):
        (root / "source" / name).mkdir(parents=True)
        nbformat.write(toy_master(), root / "source" / name / f"{name}.ipynb")
    (root / "source" / "broken").mkdir()
    (root / "source" / "broken" / "broken.ipynb").write_text('{"cells": [')
    from edsgrade.course import Course

    with Course(root).gradebook() as gb:
        gb.add_assignment("exam", duedate=dt.datetime.utcnow() + dt.timedelta(hours=2))
    return root


def assert_user_error(out: subprocess.CompletedProcess, *expected: str) -> None:
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    for text in expected:
        assert text in out.stderr, (text, out.stderr)


def test_unknown_assignment_message_is_plain_text(course):
    out = cli(course, "grade", "lab[/b]9")  # brackets: would be rich markup (and a MarkupError) if read as such
    assert_user_error(out, "error: no assignment 'lab[/b]9'", "assignments: broken, exam, lab1")


def test_corrupt_master(course):
    assert_user_error(cli(course, "build", "broken"), "broken.ipynb: not a readable notebook")


def test_exam_close_before_the_deadline(course):
    assert_user_error(cli(course, "exam", "close", "exam"), "students may still be working",
                      "use --force to collect now")


def test_bad_setting_in_the_config(course, tmp_path):
    other = tmp_path / "course"
    shutil.copytree(course, other)
    with open(other / "nbgrader_config.py", "a") as f:
        f.write("\nc.Grader.assignments = {'lab1': {'timeout': '600'}}\n")
    assert_user_error(cli(other, "grades", "lab1"), "nbgrader_config.py: c.Grader.assignments['lab1']['timeout']: "
                      "expected a number of seconds (> 0), got the string '600'")


def test_debug_shows_the_traceback(course):
    out = subprocess.run([sys.executable, "-m", "edsgrade", "--course-dir", str(course), "--debug", "grade", "nope"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "CourseError" in out.stderr
    assert "error: no assignment 'nope'" in out.stderr.splitlines()[-1]


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to run as another user")
def test_sandbox_required_without_root_is_a_clear_error():
    """Really unprivileged (the user nobody): ``c.Grader.sandbox = "on"`` refuses to build, with what to do, and
    starts no process."""
    base = Path(tempfile.mkdtemp(prefix="edsgrade-errors-", dir="/tmp"))
    try:
        root = new_course(base / "course")
        (root / "source" / "lab1").mkdir(parents=True)
        nbformat.write(toy_master(), root / "source" / "lab1" / "lab1.ipynb")
        with open(root / "nbgrader_config.py", "a") as f:
            f.write('\nc.Grader.sandbox = "on"\n')
        os.chmod(base, 0o755)
        for path in (base, *base.rglob("*")):
            os.chown(path, 65534, 65534)
        package = str(Path(edsgrade.__file__).resolve().parents[1])
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(base), "PYTHONPATH": package}
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                              "edsgrade", "--course-dir", str(root), "-q", "build", "lab1"],
                             capture_output=True, text=True, timeout=300, env=env, cwd=str(base))
        assert_user_error(out, "Grader.sandbox is 'on' but this process cannot build sandboxes", "run the grader as root")
        assert not (root / "release" / "lab1").exists()
        left = subprocess.run(["pgrep", "-u", "65534", "-f", str(root)], capture_output=True, text=True)
        assert left.stdout == "", f"processes left behind: {left.stdout}"
    finally:
        shutil.rmtree(base, ignore_errors=True)
