"""The package's layout: dependencies point one way, and the dotted names configs use still resolve.

The contracts are import-linter's (``[tool.importlinter]`` in ``pyproject.toml``): a ``layers`` contract
from the edge (``cli``) to the leaf (``errors``), and a ``forbidden`` one that keeps
``edsgrade.grading.sandbox`` from importing anything of edsgrade above it. The second test breaks each
contract in a copy of the package, so that the first cannot pass for lack of checking.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from traitlets.utils.importstring import import_item

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
LAYERS = "Layers: from the edge to the leaf"
LEAF = "The sandbox is a leaf: it imports nothing of edsgrade but the error root"


def lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the package under ``root``, with ``root``'s ``pyproject.toml``."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache", "--config", str(root / "pyproject.toml")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    done = lint(REPO)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"{LAYERS} KEPT" in done.stdout and f"{LEAF} KEPT" in done.stdout
    assert "2 kept, 0 broken" in done.stdout


def test_an_import_against_the_layout_breaks_a_contract(tmp_path):
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / "edsgrade", tmp_path / "edsgrade", ignore=shutil.ignore_patterns("__pycache__"))
    # the leaf reaching up (a lazy import counts as much as one at the top)
    with open(tmp_path / "edsgrade/grading/sandbox/plaindata.py", "a") as f:
        f.write("\n\ndef _reach_up():\n    from edsgrade.course import Course\n    return Course\n")
    # a product stage reaching for the simulated class
    with open(tmp_path / "edsgrade/grading/engine.py", "a") as f:
        f.write("\n\ndef _reach_out():\n    from edsgrade.simulate import cohort\n    return cohort\n")
    done = lint(tmp_path)
    assert done.returncode != 0
    assert f"{LAYERS} BROKEN" in done.stdout and f"{LEAF} BROKEN" in done.stdout
    assert "edsgrade.grading.sandbox.plaindata -> edsgrade.course" in done.stdout
    assert "edsgrade.grading.engine -> edsgrade.simulate" in done.stdout


def _config_names() -> set[str]:
    """Every ``"edsgrade.x.Y"`` class name the course's and the hub's nbgrader configurations hand to nbgrader."""
    from edsgrade.hub import system

    texts = [(REPO / "nbgrader_config.py").read_text(), (REPO / "docker/singleuser/nbgrader_config.py").read_text(),
             Path(system.__file__).read_text()]
    names = set()
    for text in texts:
        names |= set(re.findall(r"c\.\w+\.\w+ = \"(edsgrade\.[\w.]+)\"", text))
    return names


def test_the_dotted_names_configs_give_nbgrader_resolve():
    names = _config_names()
    assert {"edsgrade.exam.LatePenalty", "edsgrade.hub.exchange.HubCollect"} <= names
    for name in names:
        assert isinstance(import_item(name), type), name


@pytest.mark.parametrize("old, new", [
    ("edsgrade.exam.LatePenalty", "edsgrade.gradebook.late.LatePenalty"),
    ("edsgrade.safeexchange.SafeCollect", "edsgrade.exchange.safe.SafeCollect"),
    ("edsgrade.safeexchange.SafeSubmit", "edsgrade.exchange.safe.SafeSubmit"),
    ("edsgrade.safeexchange.SafeFetchFeedback", "edsgrade.exchange.safe.SafeFetchFeedback"),
    ("edsgrade.authoring.test_case", "edsgrade.authoring.test_case"),
])
def test_names_written_before_the_move_still_resolve(old, new):
    """Course configurations and master notebooks written before the layout moved keep working."""
    assert import_item(old) is import_item(new)
