"""The test markers (unit, slow, root, hub, browser): registered, and given from what each test uses.

``make test-fast`` runs ``pytest -m unit``: it must select no test that builds or grades a lab, starts
the sandbox, a hub or a browser, and every test must be either unit or heavy. A real collection of the
whole suite (``pytest --collect-only``, in a subprocess) is checked, so files added later get checked too
(``-m NAME`` selects exactly the tests that carry marker NAME).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

MARKERS = ("unit", "slow", "root", "hub", "browser")


# one collection of the whole suite, in a subprocess; prints each test's markers
_DUMP = """
import json, sys, pytest

class Dump:
    def pytest_collection_finish(self, session):
        print("MARKERS " + json.dumps({i.nodeid: sorted({m.name for m in i.iter_markers()}) for i in session.items}))

sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider"], plugins=[Dump()]))
"""


@pytest.fixture(scope="module")
def selection() -> dict[str, set[str]]:
    """Marker -> node ids that ``pytest -m MARKER`` selects, and ``"all"`` -> every node id."""
    done = subprocess.run([sys.executable, "-c", _DUMP], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    line = next(l for l in done.stdout.splitlines() if l.startswith("MARKERS "))
    marks = json.loads(line[len("MARKERS "):])
    return {name: {node for node, names in marks.items() if name in names} for name in MARKERS} | {"all": set(marks)}


def test_the_markers_are_registered():
    done = subprocess.run([sys.executable, "-m", "pytest", "--markers", "-p", "no:cacheprovider"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    for name in MARKERS:
        assert f"@pytest.mark.{name}:" in done.stdout, name


def test_unit_selects_no_heavy_test_and_every_test_is_one_or_the_other(selection):
    unit = selection["unit"]
    heavy = set().union(*(selection[m] for m in MARKERS if m != "unit"))
    assert unit and heavy
    assert not unit & heavy
    assert unit | heavy == selection["all"]
    files = {node.split("::")[0] for node in unit}
    for prefix in ("tests/test_lab", "tests/test_demo", "tests/test_exam", "tests/test_hub", "tests/security/",
                   "tests/test_hostile", "tests/test_executor", "tests/test_pipeline_toy"):
        assert not [f for f in files if f.startswith(prefix)], prefix
    assert {"tests/test_plaindata.py", "tests/test_master.py"} <= files


def test_heavy_markers_follow_what_tests_use(selection):
    def files(marker: str) -> set[str]:
        return {node.split("::")[0] for node in selection[marker]}

    assert {f"tests/test_lab{i}.py" for i in range(6)} | {"tests/test_demo.py", "tests/test_labs_common.py"} \
        <= files("slow") & files("root")
    assert {"tests/test_executor.py", "tests/test_hostile.py", "tests/test_pipeline_toy.py"} <= files("root")
    assert files("hub") == {"tests/test_hub.py", "tests/security/test_hub_trust.py"}
    browser = {node for node in selection["browser"]}
    # the hub's browser round and the XSS checks (feedback, formgrader view, nbconvert page in Chromium)
    assert browser and all(node.startswith(("tests/test_hub.py::test_browser_", "tests/security/test_xss.py::"))
                           for node in browser), browser
    assert any(node.startswith("tests/security/test_xss.py::") for node in browser)
    assert {f for f in files("all") if f.startswith("tests/security/")} <= files("root")
