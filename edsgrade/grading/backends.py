"""Where submissions are graded: local worker threads (default), or a Dask distributed cluster.

Both backends run the same :meth:`Engine.grade` and hand each finished
:class:`~edsgrade.grading.engine.SubmissionResult` to ``on_done`` in the caller's thread, which
records it (gradebook, journal) as it arrives.

- ``local``: one warm pool, ``workers`` threads, each driving one sandboxed submission at a time
  (the work happens in the sandboxed processes, so threads are enough).
- ``dask``: each submission is a task on an existing cluster (``--scheduler tcp://HOST:PORT``);
  each Dask worker process keeps its own warm pool for the run. Workers must see the course
  directory at the same path (a shared filesystem) and have edsgrade installed, and they must run
  as root for the full sandbox. Clusters come from dask-jobqueue (HPC: SLURM, PBS...) or
  dask-kubernetes; see README.
"""
from __future__ import annotations

import atexit
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Iterable

from edsgrade.course import Course
from edsgrade.grading.engine import Engine, GradingOptions, Status, SubmissionResult

OnDone = Callable[[SubmissionResult], None]


def default_workers(configured: int = 0) -> int:
    """``configured`` if set, else one worker per CPU core available to this process."""
    if configured and configured > 0:
        return configured
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def run_local(course: Course, assignment: str, students: Iterable[str], options: GradingOptions,
              workers: int, on_done: OnDone) -> None:
    """Grade ``students`` with ``workers`` threads sharing one warm pool."""
    students = list(students)
    if not students:
        return
    engine = Engine(course, assignment, options)
    pool = ThreadPoolExecutor(max_workers=max(1, min(workers, len(students))), thread_name_prefix="edsgrade")
    try:
        futures = [pool.submit(engine.grade, s) for s in students]
        for future in as_completed(futures):
            on_done(future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        engine.close()


# --- Dask --------------------------------------------------------------------------------------

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _close_engines() -> None:
    for engine in _ENGINES.values():
        engine.close()
    _ENGINES.clear()


def grade_task(course_root: str, assignment: str, student: str, options: dict, run_id: str) -> dict:
    """A Dask task: grade one submission on this worker (warm pool kept per worker process and run)."""
    key = json.dumps([course_root, assignment, options, run_id])
    with _ENGINES_LOCK:
        if key not in _ENGINES:
            if not _ENGINES:
                atexit.register(_close_engines)
            for old in [k for k in _ENGINES if json.loads(k)[:2] == [course_root, assignment]]:
                _ENGINES.pop(old).close()  # an earlier run of the same assignment
            _ENGINES[key] = Engine(Course(course_root), assignment, GradingOptions(**options))
        engine = _ENGINES[key]
    return engine.grade(student).to_dict()


def run_dask(course: Course, assignment: str, students: Iterable[str], options: GradingOptions,
             scheduler: str, on_done: OnDone) -> None:
    """Grade ``students`` as tasks on the Dask cluster whose scheduler is at ``scheduler``."""
    import uuid

    try:
        from distributed import Client, as_completed as dask_completed
    except ImportError:  # pragma: no cover - distributed is a dependency
        raise RuntimeError("the Dask backend needs the 'distributed' package: pip install distributed") from None
    students = list(students)
    if not students:
        return
    run_id = uuid.uuid4().hex
    with Client(scheduler, timeout=30) as client:
        futures = {client.submit(grade_task, str(course.root), assignment, s, options.to_dict(), run_id,
                                 key=f"edsgrade-{assignment}-{s}-{run_id}", pure=False, retries=0): s
                   for s in students}
        for future in dask_completed(futures):
            student = futures[future]
            try:
                result = SubmissionResult.from_dict(future.result())
            except Exception as exc:  # the worker died or could not run the task: record it
                from edsgrade.grading.engine import zero

                result = SubmissionResult(student, assignment, Status.ERROR,
                                          questions=zero(course.assignment(assignment).master),
                                          message=f"the Dask worker failed ({type(exc).__name__}: {exc}); "
                                                  "grade this student again")
            on_done(result)
