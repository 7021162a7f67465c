"""Every copy of student files is safe: links, hard links, FIFOs, odd names, deep trees and forged times,
through the real local exchange (release, fetch, submit, collect), graded among honest submissions.

One course and one grading run are shared by the checks (module-scoped fixture). Each hostile student
hands in the wrong answers (``total = 0.0``: 1 pt of public check, no ``double``) and then, in her
inbound folder on the exchange (hers on a hub) or, for the engine's own checks, in the collected
folder, plants what the issue lists. None may read a secret (no line of the master, of
``build/arena/reference.json``, of the gradebook or of ``/etc/shadow`` in submitted/, autograded/ or
feedback/), score more than her own work, change another grade or a course file, hang the run or leave
a process behind; each result says what was refused.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from pathlib import Path

import pytest

import arena
from edsgrade import exchange
from edsgrade.course import Course
from edsgrade.exam import close_exam, submission_time
from edsgrade.feedback import write_feedback
from edsgrade.gradebook.store import read_grades
from conftest import slot_user_pids
from edsgrade.grading.sandbox import confinement as sandbox
from edsgrade.grading.autograde import grade_run
from edsgrade.exchange.safe import COLLECT_FILE, read_time

pytestmark = pytest.mark.skipif(not sandbox.can_confine(), reason="the sandbox needs root (CI runs as root)")

WRONG = {"a1": "total = 0.0", "a2": "pass"}
HONEST = {"a1": arena.HONEST_TOTAL, "a2": arena.HONEST_DOUBLE}
MASTER_LINE = "double([1.5, -2.25, 1e6])"  # a hidden test's line, only in the master and the build
STAMP = "%Y-%m-%d %H:%M:%S.%f UTC"


def inbound_of(root: Path, student: str) -> Path:
    [folder] = sorted((root / "exchange" / "eds" / "inbound").glob(f"{student}+arena+*"))
    return folder


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()


def secrets(root: Path) -> list[bytes]:
    """Byte strings that must appear in no student's collected, autograded or feedback file."""
    found = [MASTER_LINE.encode(), b"BEGIN HIDDEN TESTS", b"SQLite format 3"]
    ref = (root / "build" / "arena" / "reference.json").read_bytes()
    found.append(ref[:60])
    try:
        shadow = Path("/etc/shadow").read_bytes().splitlines()
        found += [line for line in shadow if len(line) > 8][:5]
    except OSError:
        pass
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The course, every hand-in planted, one collect, one grading run, feedback: what the checks read."""
    root = arena.course(tmp_path_factory.mktemp("copies") / "course")
    course = Course(root)
    master = root / "source" / "arena" / "arena.ipynb"
    reference = root / "build" / "arena" / "reference.json"
    gradebook = root / "gradebook.db"
    for student in ("honest", "honest2"):
        arena.submission(root, student, HONEST)
    for student in ("wrong", "linker", "nblink", "copier", "stamplink", "hardlink", "fifo", "deep", "forged",
                    "oddsub", "undated"):
        arena.submission(root, student, WRONG)
    exchange.collect(course, "arena")  # honest's notebook is in submitted/ now: a target for the copier
    honest_nb = root / "submitted" / "honest" / "arena" / "arena.ipynb"

    # links in her inbound folder, to everything a grader can read
    linker = inbound_of(root, "linker")
    (linker / "notes").mkdir()
    (linker / "master.ipynb").symlink_to(master)
    (linker / "notes" / "reference.json").symlink_to(reference)
    (linker / "gradebook.db").symlink_to(gradebook)
    (linker / "notes" / "shadow.txt").symlink_to("/etc/shadow")
    (linker / "theirs.ipynb").symlink_to(honest_nb)
    (linker / "build").symlink_to(root / "build", target_is_directory=True)
    # the notebook itself a link: to the master, and to another student's collected notebook
    for student, target in (("nblink", master), ("copier", honest_nb)):
        folder = inbound_of(root, student)
        (folder / "arena.ipynb").unlink()
        (folder / "arena.ipynb").symlink_to(target)
    # timestamp.txt a link to the master
    stamp = inbound_of(root, "stamplink") / "timestamp.txt"
    stamp.unlink()
    stamp.symlink_to(master)
    # hard links: the notebook to the master, and the gradebook (the exchange is on the course's file system)
    folder = inbound_of(root, "hardlink")
    (folder / "arena.ipynb").unlink()
    os.link(master, folder / "arena.ipynb")
    os.link(gradebook, folder / "grades.db")
    # named pipes, in place of a data file and beside the notebook
    folder = inbound_of(root, "fifo")
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "values.txt").unlink(missing_ok=True)
    os.mkfifo(folder / "data" / "values.txt")
    os.mkfifo(folder / "pipe")
    # a deep tree and many files
    folder = inbound_of(root, "deep")
    deep = folder / "deep"
    for _ in range(60):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (folder / "many").mkdir()
    for i in range(11_000):
        (folder / "many" / f"{i}.txt").write_bytes(b"x")

    # lateness: the deadline falls after everybody above; then "forged" hands in late and lies about it
    time.sleep(0.05)
    due = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with course.gradebook() as gb:
        gb.update_or_create_assignment("arena", duedate=due)
    time.sleep(1.0)
    arena.submission(root, "forged", WRONG)  # a second, late submission (the first was on time)
    late = max((root / "exchange" / "eds" / "inbound").glob("forged+arena+*"), key=lambda p: p.lstat().st_ctime)
    early = (due - dt.timedelta(hours=1)).strftime(STAMP)
    (late / "timestamp.txt").write_text(early)
    parts = late.name.split("+")
    late.rename(late.with_name("+".join([parts[0], parts[1], early, parts[3]])))

    close = close_exam(course, "arena", force=True)  # collects (update) and dates every submission

    # in submitted/ itself (a folder collected some other way): what the working copy must refuse too
    odd = root / "submitted" / "oddsub" / "arena"
    os.mkfifo(odd / "pipe")
    (odd / "line\nbreak.txt").write_text("x")
    (odd / "shadow").symlink_to("/etc/shadow")
    deep = odd / "deep"
    for _ in range(40):
        deep = deep / "d"
    deep.mkdir(parents=True)
    (root / "submitted" / "undated" / "arena" / "timestamp.txt").write_text("whenever")

    before = {name: tree_digest(root / name) for name in ("source", "release")}
    before_honest = tree_digest(root / "submitted" / "honest")
    before_build = reference.read_bytes()
    start, wall = time.monotonic(), time.time()
    run = grade_run(course, "arena", progress=False, cell_timeout=10, timeout=60, memory=1024, workers=2)
    seconds = time.monotonic() - start
    write_feedback(course, "arena", [r.student for r in run.results])
    return {"root": root, "course": course, "run": run, "results": {r.student: r for r in run.results},
            "close": close, "due": due, "before": before, "before_honest": before_honest,
            "before_build": before_build, "seconds": seconds, "window": (wall, time.time())}


def said(result) -> str:
    return " ".join([result.message, *result.notes])


def test_the_run_finishes_and_honest_grades_are_untouched(graded):
    results = graded["results"]
    assert results["honest"].score == 6 and results["honest2"].score == 6 and results["wrong"].score == 1
    grades = {g.student: g.total for g in read_grades(graded["course"], "arena")}
    assert grades["honest"] == 6 and grades["honest2"] == 6 and grades["wrong"] == 1
    for student, r in results.items():
        assert "internal grading error" not in r.message, (student, r.message)
        if student not in ("honest", "honest2"):
            assert r.score <= 1, (student, r.to_dict())
    assert graded["seconds"] < 600


def test_no_secret_reaches_any_students_files(graded):
    root = graded["root"]
    bad = secrets(root)
    for area in ("submitted", "autograded", "feedback"):
        for path in (root / area).rglob("*"):
            if path.is_symlink():
                assert area == "submitted" and "oddsub" in path.parts, path  # planted by the test itself
                continue
            if not path.is_file():
                continue
            data = path.read_bytes()
            for secret in bad:
                assert secret not in data, (path, secret[:40])


def test_links_are_refused_at_collect_and_said(graded):
    root, r = graded["root"], graded["results"]["linker"]
    collected = root / "submitted" / "linker" / "arena"
    assert not any(p.is_symlink() for p in collected.rglob("*"))
    released = {p.name for p in (root / "release" / "arena").iterdir()}
    assert {p.name for p in collected.iterdir()} == released | {"notes", "submission_secret.txt", "timestamp.txt",
                                                                COLLECT_FILE}
    for name in ("master.ipynb", "notes/reference.json", "gradebook.db", "notes/shadow.txt", "theirs.ipynb", "build"):
        assert f"`{name}` is a link: not collected" in r.notes, (name, r.notes)
    record = json.loads((collected / COLLECT_FILE).read_text())
    assert "`gradebook.db` is a link: not collected" in record["refusals"]
    assert r.score == 1  # her own wrong answers, graded as such


@pytest.mark.parametrize("student", ["nblink", "copier", "hardlink"])
def test_a_notebook_that_is_a_link_is_never_graded_as_hers(graded, student):
    r = graded["results"][student]
    assert r.score == 0 and r.status == "missing", r.to_dict()
    kind = "is a hard link" if student == "hardlink" else "is a link"
    assert f"`arena.ipynb` {kind}" in said(r), said(r)
    assert not (graded["root"] / "submitted" / student / "arena" / "arena.ipynb").exists()


def test_hard_links_and_fifos_are_refused(graded):
    hard, fifo = graded["results"]["hardlink"], graded["results"]["fifo"]
    assert "`grades.db` is a hard link (it has other names): not collected" in hard.notes
    assert "`data/values.txt` is a named pipe: not collected" in fifo.notes
    assert "`pipe` is a named pipe: not collected" in fifo.notes
    assert fifo.status == "graded" and fifo.score == 1


def test_a_timestamp_that_is_a_link_gives_the_exchange_time(graded):
    root = graded["root"]
    r = graded["results"]["stamplink"]
    text = (root / "submitted" / "stamplink" / "arena" / "timestamp.txt").read_text()
    assert read_time(text) is not None and read_time(text) <= graded["due"]
    assert r.timestamp == text and r.score == 1
    assert not (root / "submitted" / "stamplink" / "arena" / "timestamp.txt").is_symlink()


def test_deep_trees_and_many_files_are_bounded_and_said(graded):
    root, r = graded["root"], graded["results"]["deep"]
    assert r.status == "graded" and r.score == 1
    text = said(r)
    assert "nested more than 32 folders deep: not collected" in text
    assert "past the limit of 10000 files and folders" in text
    assert len(list((root / "submitted" / "deep" / "arena").rglob("*"))) <= 10_000 + 5
    assert len(r.notes) <= 110  # the refusals are summarised, not listed by the thousand


def test_a_rewritten_time_and_renamed_folder_stay_late(graded):
    close, course = graded["close"], graded["course"]
    arrivals = {a.student: a for a in close.arrivals}
    forged = arrivals["forged"]
    assert forged.late and forged.seconds_late >= 0.5, forged
    assert submission_time(course, "forged", "arena") > graded["due"]
    record = json.loads((graded["root"] / "submitted" / "forged" / "arena" / COLLECT_FILE).read_text())
    assert record["time_source"] == "exchange inode change time"
    assert read_time(record["claimed_timestamp"]) < graded["due"]  # kept for information only
    on_time = [s for s in ("honest", "wrong", "linker", "stamplink", "fifo") if s in arrivals]
    assert on_time and not any(arrivals[s].late for s in on_time)
    # the gradebook's lateness comes from the same trusted time
    with course.gradebook() as gb:
        assert gb.find_submission("arena", "forged").total_seconds_late > 0
        assert gb.find_submission("arena", "honest").total_seconds_late == 0


def test_odd_files_in_the_collected_folder_give_a_clear_result(graded):
    r = graded["results"]["oddsub"]
    assert r.status == "graded" and r.score == 1, r.to_dict()
    text = said(r)
    assert "`pipe` is a named pipe: not copied for grading" in text
    assert "`shadow` is a link: not copied for grading" in text
    assert "has a name with control characters" in text
    assert "nested more than 32 folders deep" in text


def test_an_unreadable_time_is_that_submissions_result_not_the_classs(graded):
    course, r = graded["course"], graded["results"]["undated"]
    assert r.status == "graded" and r.score == 1 and r.timestamp == ""
    assert "holds no readable time" in said(r)
    again = close_exam(course, "arena", force=True)  # closing again still works for everybody
    arrivals = {a.student: a for a in again.arrivals}
    assert {"honest", "forged", "undated"} <= set(arrivals)


def orphans_of_the_run(start: float, end: float) -> list[tuple[int, str]]:
    """Processes of the sandbox users, started during this run and orphaned (other engineers' or CI's
    graders may use the same slots at the same time: their live processes have a parent)."""
    ticks = os.sysconf("SC_CLK_TCK")
    boot = time.time() - float(Path("/proc/uptime").read_text().split()[0])
    found = []
    for pid in slot_user_pids():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ppid, started = int(fields[1]), boot + int(fields[19]) / ticks
        if ppid == 1 and start - 1 <= started <= end + 1:
            found.append((pid, Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")))
    return found


def test_course_files_are_untouched_and_nothing_outlives_the_run(graded):
    root = graded["root"]
    assert {name: tree_digest(root / name) for name in ("source", "release")} == graded["before"]
    assert tree_digest(root / "submitted" / "honest") == graded["before_honest"]
    assert (root / "build" / "arena" / "reference.json").read_bytes() == graded["before_build"]
    assert orphans_of_the_run(*graded["window"]) == []


def test_submit_leaves_the_students_links_behind(graded, tmp_path):
    """A link in her own folder at submit time never brings its target into the exchange."""
    root, course = graded["root"], graded["course"]
    folder = exchange.fetch(course, "arena", "submitter", replace=True)
    (folder / "shadow.txt").symlink_to("/etc/shadow")
    (folder / "master.ipynb").symlink_to(root / "source" / "arena" / "arena.ipynb")
    os.mkfifo(folder / "pipe")
    exchange.submit(course, "arena", "submitter")
    sent = inbound_of(root, "submitter")
    released = {p.name for p in (root / "release" / "arena").iterdir()}
    assert {p.name for p in sent.iterdir()} == released | {"submission_secret.txt", "timestamp.txt"}
    assert not any(p.is_symlink() for p in sent.rglob("*"))


def test_fetch_feedback_never_writes_through_a_planted_link(graded, tmp_path):
    """A student plants links where her fetched feedback goes: the page replaces them, no target is written."""
    from nbgrader.auth import Authenticator

    from edsgrade.exchange.safe import SafeFetchFeedback, write_under

    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    home = tmp_path / "home"
    (home / "arena" / "feedback").mkdir(parents=True)
    (home / "arena" / "feedback" / "2024").symlink_to(tmp_path, target_is_directory=True)
    assert write_under(home, Path("arena/feedback/2024/victim.txt"), b"<html>page</html>") is None
    assert victim.read_text() == "untouched"
    assert (home / "arena" / "feedback" / "2024" / "victim.txt").read_bytes() == b"<html>page</html>"
    assert not (home / "arena" / "feedback" / "2024").is_symlink()
    (home / "arena" / "feedback" / "2024" / "page.html").symlink_to(victim)
    assert write_under(home, Path("arena/feedback/2024/page.html"), b"new") is None
    assert victim.read_text() == "untouched"
    # and the class is nbgrader's step, so the factory gives it to `nbgrader fetch_feedback`
    course = graded["course"]
    step = exchange.factory(course)[0].FetchFeedback(coursedir=course.coursedir("arena", "honest"),
                                                     authenticator=Authenticator(config=course.config))
    assert isinstance(step, SafeFetchFeedback)
