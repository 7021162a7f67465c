"""`edsgrade demo`, the README's main job: the whole pipeline on lab1 with a simulated cohort, twice."""
import csv

from conftest import cli, new_course
from edsgrade.demo import COHORT


def test_demo_runs_and_runs_again(tmp_path):
    root = new_course(tmp_path / "course", ("lab1-calibration",))
    for run in (1, 2):
        proc = cli(root, "demo", "lab1-calibration", timeout=900)
        assert proc.returncode == 0, f"run {run}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        assert "lab1-calibration: scores in the gradebook" in proc.stdout
        assert "feedback for each student" in proc.stdout
        for student in COHORT:
            assert (root / "feedback" / student / "lab1-calibration" / "lab1-calibration.html").is_file()
    proc = cli(root, "grades", "lab1-calibration", "--csv", str(tmp_path / "g.csv"))
    assert proc.returncode == 0, proc.stderr
    rows = {r["student"]: float(r["total"]) for r in csv.DictReader(open(tmp_path / "g.csv"))}
    assert set(rows) == set(COHORT)
    assert rows["ada"] == 23 and rows["chloe"] == 0 and rows["hugo"] == 0
    assert 0 < rows["ben"] < 23 and rows["farid"] == rows["ben"] and rows["gaia"] == 23
