"""`edsgrade demo`, the README's main job: the whole pipeline on every lab with a simulated cohort, then again."""
import csv

from conftest import cli, new_course
from edsgrade.demo import COHORT, DEMO_ASSIGNMENTS


def totals(root, tmp_path, assignment):
    proc = cli(root, "grades", assignment, "--csv", str(tmp_path / f"{assignment}.csv"))
    assert proc.returncode == 0, proc.stderr
    return {r["student"]: float(r["total"]) for r in csv.DictReader(open(tmp_path / f"{assignment}.csv"))}


def test_demo_runs_every_lab_and_runs_again(tmp_path):
    root = new_course(tmp_path / "course", DEMO_ASSIGNMENTS)
    for run, args in ((1, ()), (2, ("lab1-calibration",))):  # the second run: lab1 only, to keep CI short
        proc = cli(root, "demo", *args, timeout=1500)
        assert proc.returncode == 0, f"run {run}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert "feedback for each student" in proc.stdout
        for assignment in args or DEMO_ASSIGNMENTS:
            assert f"{assignment}: scores in the gradebook" in proc.stdout
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
