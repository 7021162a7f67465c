"""The build half of variant data: each hidden draw generated, and the master run on it once.

What a draw is and how a student's submission is given one: :mod:`edsgrade.grading.variants` (the read
side, which the grading uses); this module writes ``build/A/variants/SEED/`` for it.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from edsgrade.authoring.master import Master, master_digest
from edsgrade.build.reference import generate_data, generate_hidden_data, reference_values
from edsgrade.course import HIDDEN_DIR, REF_FILE, VARIANTS_DIR, Course
from edsgrade.grading.variants import variant_seeds


def build_variants(course: Course, master: Master, echo: Callable[[str], Any]) -> list[int]:
    """Generate each hidden draw and run the master on it (the build calls this)."""
    seeds = variant_seeds(master)
    root = course.build_dir(master.assignment) / VARIANTS_DIR
    if root.exists():
        shutil.rmtree(root)
    for seed in seeds:
        echo(f"[{master.assignment}] hidden draw {seed}: generating the data and running the master on it")
        folder = root / str(seed)
        folder.mkdir(parents=True)
        with tempfile.TemporaryDirectory(prefix=f"edsgrade-variant-{master.assignment}-") as tmp:
            work = Path(tmp) / master.assignment
            shutil.copytree(course.source_dir(master.assignment), work,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "data"))
            generate_data(master, work, seed=seed)
            shutil.copytree(work / "data", folder / "data")
            hidden = generate_hidden_data(master, folder / HIDDEN_DIR, seed=seed)
            refs, _ = reference_values(course, master, work, hidden)
        (folder / REF_FILE).write_text(json.dumps({"assignment": master.assignment, "master": master_digest(master),
                                                   "seed": seed, "values": refs}))
    return seeds
