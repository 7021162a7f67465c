"""`edsgrade demo`, the README's main job: the whole pipeline on every lab with a simulated cohort, then again.

The session's demo run (``demo_run`` in conftest) starts from the labs the session built already
(``--reuse-build``), so the labs are not built twice in one ``make test``; the second run here is the
plain ``edsgrade demo lab1-calibration``, which builds, as ``make demo`` does. The order of the demo
cohort on every lab is checked in ``test_labs_common.py``.
"""
import csv

from conftest import cli
from edsgrade.simulate.demo import COHORT, DEMO_ASSIGNMENTS


def totals(root, tmp_path, assignment):
    proc = cli(root, "grades", assignment, "--csv", str(tmp_path / f"{assignment}.csv"))
    assert proc.returncode == 0, proc.stderr
    return {r["student"]: float(r["total"]) for r in csv.DictReader(open(tmp_path / f"{assignment}.csv"))}


def test_demo_runs_every_lab_and_runs_again(demo_run, tmp_path):
    root = demo_run.root
    first = demo_run.proc
    assert first.returncode == 0, f"run 1:\n{first.stdout[-3000:]}\n{first.stderr[-3000:]}"
    for assignment in DEMO_ASSIGNMENTS:
        assert f"{assignment} is built from its current master: reusing that build" in first.stdout
    second = cli(root, "demo", "lab1-calibration", timeout=1500)  # as `make demo` again: builds, lab1 only (CI time)
    assert second.returncode == 0, f"run 2:\n{second.stdout[-3000:]}\n{second.stderr[-3000:]}"
    assert "built lab1-calibration:" in second.stdout and "reusing" not in second.stdout
    for run, proc, labs in ((1, first, DEMO_ASSIGNMENTS), (2, second, ("lab1-calibration",))):
        assert "feedback for each student" in proc.stdout, run
        for assignment in labs:
            assert f"{assignment}: scores in the gradebook" in proc.stdout, (run, assignment)
            for student in COHORT:
                assert (root / "feedback" / student / assignment / f"{assignment}.html").is_file()
    for assignment in DEMO_ASSIGNMENTS:
        rows = totals(root, tmp_path, assignment)
        assert set(rows) == set(COHORT)
        full = rows["ada"]
        assert full > 0 and rows["chloe"] == 0 and rows["hugo"] == 0, (assignment, rows)
        assert 0 < rows["ben"] < full and rows["gaia"] == full, (assignment, rows)
    lab1 = totals(root, tmp_path, "lab1-calibration")
    assert lab1["ada"] == 23 and lab1["farid"] == lab1["ben"]
