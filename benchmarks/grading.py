"""Grading speed and memory: edsgrade (1 and 2 workers) against `nbgrader autograde` and an `otter run` loop.

Builds a cohort of N submissions (correct, partial, failing, slow) for a trivial assignment and
for lab1, grades the *same* collected submissions with each tool in its own copy of the course,
checks the scores agree where the tools can agree, and prints wall time, per-submission overhead
(wall time per submission minus the notebook's own cell time) and peak memory (all processes of
the tool together). Run from the repository root:

    .venv/bin/python benchmarks/grading.py            # N=40, both assignments, every tool
    .venv/bin/python benchmarks/grading.py --n 10 --only trivial --skip otter

Targets (2 cores): median overhead <= 0.3 s; >= 10x nbgrader and >= 20x the otter loop on the
trivial assignment; >= 3x nbgrader on lab1; 2 workers >= 1.7x faster than 1.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edsgrade import exchange  # noqa: E402
from edsgrade.build.release import build  # noqa: E402
from edsgrade.simulate.cohort import answer, write_submission  # noqa: E402
from edsgrade.course import Course  # noqa: E402
from edsgrade.authoring.master import load_master  # noqa: E402

SLOW = "import time\ntime.sleep(1)"


def meta(grade_id: str, grade: bool, solution: bool, points: float | None = None) -> dict:
    m = {"grade": grade, "solution": solution, "locked": not solution, "grade_id": grade_id, "schema_version": 3}
    if points is not None:
        m["points"] = points
    return {"nbgrader": m}


def trivial_master() -> nbformat.NotebookNode:
    """Two questions, one case each, so that nbgrader's all-or-nothing test cells score like Otter's cases."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}

    def code(src: str, m: dict | None = None) -> nbformat.NotebookNode:
        c = nbformat.v4.new_code_cell(src)
        c.metadata.update(m or {})
        return c

    nb.cells = [
        code("values = [1.0, 2.0, 4.0, 9.0]"),
        code("### BEGIN SOLUTION\nmean_value = sum(values) / len(values)\n### END SOLUTION", meta("a1", False, True)),
        code("from edsgrade.authoring import test_case\n\n@test_case(points=2)\ndef mean_right(mean_value):\n"
             "    assert abs(mean_value - 4.0) < 1e-9", meta("q1", True, False, 2)),
        code("### BEGIN SOLUTION\nsquares = [v * v for v in values]\n### END SOLUTION", meta("a2", False, True)),
        code("from edsgrade.authoring import test_case\n\n@test_case(points=1)\ndef squares_right(squares):\n"
             "    assert list(squares) == [1.0, 4.0, 16.0, 81.0]", meta("q2", True, False, 1)),
    ]
    return nb


def make_course(folder: Path, assignment: str, n: int) -> Path:
    """A built, released course with ``n`` collected submissions of ``assignment``."""
    root = folder / "course"
    root.mkdir(parents=True)
    shutil.copy(REPO / "nbgrader_config.py", root)
    src = root / "source" / assignment
    src.mkdir(parents=True)
    if assignment == "trivial":
        nbformat.write(trivial_master(), src / "trivial.ipynb")
    else:
        shutil.copy(REPO / "source" / assignment / f"{assignment}.ipynb", src)
    course = Course(root)
    build(course, assignment, echo=lambda *_: None)
    exchange.release(course, assignment)
    master = load_master(course.master_path(assignment))
    kinds = ("full", "partial", "raises", "slow")
    for i in range(n):
        student = f"s{i:03d}"
        kind = kinds[i % len(kinds)]
        folder_nb = exchange.fetch(course, assignment, student, replace=True) / f"{assignment}.ipynb"
        if kind == "slow":
            nb = answer(nbformat.read(folder_nb, as_version=4), master)
            nb.cells.insert(2, nbformat.v4.new_code_cell(SLOW))
            nbformat.write(nb, folder_nb)
        else:
            write_submission(kind, folder_nb, master, folder_nb)
        exchange.submit(course, assignment, student)
    exchange.collect(course, assignment)
    return root


class PeakMemory:
    """Peak of the summed resident memory of a process and all its descendants (polled)."""

    def __init__(self, pid: int) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._proc = psutil.Process(pid)
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            total = 0
            try:
                for p in [self._proc, *self._proc.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                pass
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(proc.pid)
    out, err = proc.communicate()
    wall = time.monotonic() - start
    return wall, memory.stop(), subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def edsgrade_scores(root: Path, assignment: str) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Scores, the notebooks' own cell time, and the engine's per-submission overhead, per student."""
    scores, cells, overhead = {}, {}, {}
    for path in sorted((root / "autograded").glob(f"*/{assignment}/result.json")):
        data = json.loads(path.read_text())
        scores[data["student"]] = data["score"]
        execution = data["execution"]
        # the notebook's own cells (captures and the judge's calls through proxies are the grader's work)
        cells[data["student"]] = execution.get("cell_seconds", execution.get("seconds", 0.0))
        overhead[data["student"]] = data["seconds"] - cells[data["student"]]
    return scores, cells, overhead


def run_edsgrade(base: Path, assignment: str, workers: int) -> dict:
    root = Path(shutil.copytree(base, base.parent / f"edsgrade-{workers}"))
    wall, mem, proc = timed([sys.executable, "-m", "edsgrade", "--course-dir", str(root), "-q", "grade",
                             assignment, "--workers", str(workers)], root)
    if proc.returncode:
        raise SystemExit(f"edsgrade failed: {proc.stderr[-2000:]}")
    scores, cells, overhead = edsgrade_scores(root, assignment)
    return {"tool": f"edsgrade ({workers} worker{'s' if workers > 1 else ''})", "wall": wall, "memory": mem,
            "scores": scores, "cells": cells, "overhead": statistics.median(overhead.values())}


def run_nbgrader(base: Path, assignment: str) -> dict:
    root = Path(shutil.copytree(base, base.parent / "nbgrader"))
    wall, mem, proc = timed([sys.executable, "-m", "nbgrader", "autograde", assignment, "--force",
                             "--ExecutePreprocessor.timeout=120"], root)
    if proc.returncode:
        raise SystemExit(f"nbgrader autograde failed: {proc.stderr[-2000:]}")
    sys.path.insert(0, str(REPO))
    scores = {}
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
        for sub in gb.assignment_submissions(assignment):
            scores[sub.student_id] = sub.score
    return {"tool": "nbgrader autograde", "wall": wall, "memory": mem, "scores": scores}


def run_otter(base: Path, assignment: str) -> dict:
    root = base
    zip_path = root / "build" / assignment / "autograder.zip"
    out_root = base.parent / "otter"
    scores, wall, peak = {}, 0.0, 0.0
    for folder in sorted((root / "submitted").iterdir()):
        out = out_root / folder.name
        out.mkdir(parents=True)
        w, mem, proc = timed([sys.executable, "-m", "otter", "run", "-a", str(zip_path), "-o", str(out),
                              str(folder / assignment / f"{assignment}.ipynb")], root)
        wall += w
        peak = max(peak, mem)
        results = out / "results.json"
        if results.is_file():
            data = json.loads(results.read_text())
            scores[folder.name] = sum(t.get("score") or 0 for t in data.get("tests", []) if "score" in t)
        else:
            scores[folder.name] = float("nan")
    return {"tool": "otter run (loop)", "wall": wall, "memory": peak, "scores": scores}


def report(assignment: str, n: int, runs: list[dict]) -> list[str]:
    """A markdown table; overhead = the engine's own median for edsgrade, wall/n minus median cell time otherwise."""
    ours = runs[0]
    median_cells = statistics.median(ours["cells"].values())
    lines = [f"\n### {assignment}: {n} submissions (median cell time {median_cells:.2f} s)", "",
             "| tool | wall (s) | wall per submission (s) | median overhead per submission (s) | peak memory (MiB) "
             "| time / edsgrade 1 worker | scores agree with edsgrade |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        per = run["wall"] / n
        overhead = run.get("overhead", per - median_cells)
        agree = [s for s in ours["scores"] if abs(run["scores"].get(s, -1) - ours["scores"][s]) < 1e-6]
        lines.append(f"| {run['tool']} | {run['wall']:.1f} | {per:.2f} | {overhead:.2f} | {run['memory']:.0f} | "
                     f"{run['wall'] / ours['wall']:.2f}x | {len(agree)}/{len(ours['scores'])} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="submissions per assignment (default 40)")
    parser.add_argument("--only", choices=("trivial", "lab1-calibration"), help="one assignment only")
    parser.add_argument("--skip", action="append", default=[], choices=("nbgrader", "otter"), help="skip a tool")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    assignments = [args.only] if args.only else ["trivial", "lab1-calibration"]
    lines, figures = [], {}
    for assignment in assignments:
        with tempfile.TemporaryDirectory(prefix=f"edsgrade-bench-{assignment}-") as tmp:
            print(f"[{assignment}] building the course and {args.n} submissions...", flush=True)
            base = make_course(Path(tmp) / "base", assignment, args.n)
            runs = []
            for workers in (1, 2):
                print(f"[{assignment}] edsgrade, {workers} worker(s)...", flush=True)
                runs.append(run_edsgrade(base, assignment, workers))
            if "nbgrader" not in args.skip:
                print(f"[{assignment}] nbgrader autograde...", flush=True)
                runs.append(run_nbgrader(base, assignment))
            if "otter" not in args.skip and assignment == "trivial":
                print(f"[{assignment}] otter run, one submission at a time...", flush=True)
                runs.append(run_otter(base, assignment))
            lines += report(assignment, args.n, runs)
            figures[assignment] = [{k: v for k, v in r.items() if k != "cells"} for r in runs]
    text = "\n".join(lines)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
