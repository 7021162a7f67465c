"""Trust boundaries of the course hub, tried on the real hub as students (issue 12, part 1 and 4).

One hub for the module (system users prefixed ``edshx-``), one small assignment (the toy master of
``tests/conftest.py``). Three students hand it in: ada and bob honestly, eve hostile. Eve, as her own
system user (what her JupyterLab terminal can do), submits under bob's name by writing a folder into
the inbound folder, rewrites the time of her late submission (``timestamp.txt`` and the folder's
name), and plants links, a FIFO and a copy of a file she does not own in her own inbound folder
before the instructor collects. The instructor collects through the formgrader's API (nbgrader's
Collect button, run as the grader account) and the hub grades. The shared password is never on a
command line while the hub runs.
"""
from __future__ import annotations

import datetime
import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from conftest import REPO, cli, toy_master
from hubclient import Formgrader, HubClient, live_processes
from test_hub import free_ports
from edsgrade.course import Course
from edsgrade.hub import system
from edsgrade.hub.launcher import HubProcess
from edsgrade.hub.password import PasswordError, hub_password, read_password_file
from edsgrade.hub.settings import HubSettings

A = "toy"
PREFIX = "edshx-"
GRADER, INSTRUCTOR = f"{PREFIX}grader", f"{PREFIX}inst"
ADA, BOB, EVE = f"{PREFIX}ada", f"{PREFIX}bob", f"{PREFIX}eve"
STUDENTS = [ADA, BOB, EVE]
CAROL = f"{PREFIX}carol"  # a student who logs in and never submits
NOBODY = f"{PREFIX}nobody"  # a name that is no account
EARLY = "2001-01-01 00:00:00.000000 UTC"

pytestmark = pytest.mark.timeout(900)


def our_users() -> list[str]:
    return [p.pw_name for p in pwd.getpwall() if p.pw_name.startswith(PREFIX)]


def processes_of(users: list[str]) -> list[str]:
    """Command lines of the live (not zombie) processes of ``users``, system users of this module."""
    uids = {pwd.getpwnam(u).pw_uid for u in users if u in our_users()}
    assert uids, users
    return live_processes(uids)


def as_user(user: str, settings: HubSettings, *args: str, cwd: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run a command as ``user`` in their home, with the student servers' environment (the hub's
    ``JUPYTER_CONFIG_PATH`` for students, so nbgrader uses the same exchange classes as their server)."""
    home = pwd.getpwnam(user).pw_dir
    env = {"PATH": f"{Path(settings.python).parent}:/usr/bin:/bin", "HOME": home,
           "JUPYTER_CONFIG_PATH": str(settings.jupyter_config_dir("student")),
           "PYTHONPATH": str(REPO), "LANG": "C.UTF-8"}
    proc = subprocess.run([shutil.which("runuser") or "/usr/sbin/runuser", "-u", user, "--", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or home, timeout=300)
    if check:
        assert proc.returncode == 0, (args, proc.stdout[-3000:], proc.stderr[-3000:])
    return proc


def nbgrader_as(user: str, settings: HubSettings, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return as_user(user, settings, settings.python, "-m", "nbgrader", *args, check=check)


def answer(notebook: nbformat.NotebookNode, mean: bool, squares: bool) -> nbformat.NotebookNode:
    """The student's work: the released notebook with some answers filled in."""
    for cell in notebook.cells:
        if "raise NotImplementedError" not in cell.source:
            continue
        if "values = " in cell.source:
            if mean:
                cell.source = "values = [1.0, 2.0, 4.0, 9.0]\nmean_value = float(np.mean(values))"
        elif squares:
            cell.source = "squares = np.asarray(values) ** 2"
    return notebook


@pytest.fixture(scope="module")
def hub():
    if os.geteuid() != 0:
        pytest.fail("the hub tests run as root: they create system users and start servers as them")
    for name in our_users():
        system.remove_user(name)
    base = Path(tempfile.mkdtemp(prefix="edsgrade-hubtrust-", dir="/tmp"))
    base.chmod(0o755)
    port, hub_port, proxy_port, service_port = free_ports(4)
    settings = HubSettings(state_dir=str(base / "srv"), course_dir=str(base / "srv" / "eds"),
                           exchange_root=str(base / "exchange"), grader_user=GRADER, instructors=[INSTRUCTOR],
                           password="pw-" + secrets.token_hex(16), port=port, hub_port=hub_port,
                           proxy_api_port=proxy_port, service_port=service_port,
                           python=system.default_singleuser_python(), user_prefix=PREFIX,
                           admin_token=secrets.token_hex(32))
    artifacts = REPO / "test-artifacts" / "hub-trust"
    artifacts.mkdir(parents=True, exist_ok=True)
    proc = HubProcess(settings, REPO, log=artifacts / "jupyterhub.log")
    proc.prepare()
    course = Path(settings.course_dir)
    (course / "source" / A).mkdir(parents=True)
    nbformat.write(toy_master(), course / "source" / A / f"{A}.ipynb")
    system.own_course(settings)
    built = subprocess.run(["runuser", "-u", GRADER, "--", settings.python, "-m", "edsgrade", "--course-dir",
                            settings.course_dir, "-q", "build", A], capture_output=True, text=True, cwd="/",
                           timeout=600, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert built.returncode == 0, built.stderr + built.stdout
    proc.start()
    client = HubClient(settings.url, settings.admin_token)
    try:
        for name in [INSTRUCTOR, *STUDENTS, CAROL]:
            assert client.login(name, settings.password).status_code == 302, name
        instructor = Formgrader(settings.url, client.token_for(INSTRUCTOR))
        assert instructor.post(f"/assignment/{A}/release")["success"]
        yield type("Hub", (), dict(settings=settings, proc=proc, client=client, instructor=instructor,
                                   course=Course(settings.course_dir), base=base))
    finally:
        proc.stop()
        for name in our_users():
            system.remove_user(name)
        shutil.rmtree(base, ignore_errors=True)


def inbound(hub) -> Path:
    return Path(hub.settings.exchange_root) / "eds" / "inbound"


def work_and_submit(hub, student: str, mean: bool, squares: bool) -> Path:
    """``student`` fetches (once), answers and submits with nbgrader's own commands as herself (the
    commands her assignment list runs); returns her new inbound folder."""
    home = Path(pwd.getpwnam(student).pw_dir)
    if not (home / A).exists():
        nbgrader_as(student, hub.settings, "fetch_assignment", A)
    path = home / A / f"{A}.ipynb"
    notebook = answer(nbformat.read(path, as_version=4), mean, squares)
    with open(path, "w") as fh:  # root writes the contents into her file: she keeps owning it
        nbformat.write(notebook, fh)
    before = set(inbound(hub).iterdir())
    nbgrader_as(student, hub.settings, "submit", A)
    new = set(inbound(hub).iterdir()) - before
    assert len(new) == 1, new
    time.sleep(1.1)  # submission times are to the second in names; keep them apart
    return new.pop()


@pytest.fixture(scope="module")
def collected(hub):
    """The whole round: honest submissions, eve's attacks, a deadline, collect in the formgrader."""
    s = hub.settings
    ada = work_and_submit(hub, ADA, mean=True, squares=True)
    bob = work_and_submit(hub, BOB, mean=False, squares=True)
    eve_early = work_and_submit(hub, EVE, mean=False, squares=False)
    # the deadline passes (stored the way `edsgrade exam open` stores it: nbgrader's Assignment.duedate)
    due = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    as_user(GRADER, s, s.python, "-c", "import sys; from nbgrader.api import Gradebook; import datetime;"
            f"gb = Gradebook('sqlite:///{s.course_dir}/gradebook.db', course_id='eds');"
            f"gb.update_or_create_assignment({A!r}, duedate=datetime.datetime.fromisoformat({due.isoformat()!r}));"
            "gb.close()", cwd=s.course_dir)
    time.sleep(1.1)
    # 1. eve submits late, then makes it look early: timestamp.txt rewritten, folder renamed
    eve_late = work_and_submit(hub, EVE, mean=True, squares=False)
    renamed = eve_late.with_name(f"{EVE}+{A}+{EARLY.replace(' UTC', '')} UTC+forged")
    as_user(EVE, s, "/bin/sh", "-c", f"echo '{EARLY}' > '{eve_late}/timestamp.txt' && mv '{eve_late}' '{renamed}'")
    # 2. eve submits under bob's name: a folder of her own in inbound, named for bob, dated later than his
    forged = inbound(hub) / f"{BOB}+{A}+2099-01-01 00:00:00.000000 UTC+forged"
    as_user(EVE, s, "/bin/sh", "-c", f"mkdir '{forged}' && cp '{renamed}/{A}.ipynb' '{forged}/' "
            f"&& echo '2099-01-01 00:00:00.000000 UTC' > '{forged}/timestamp.txt'")
    # ... and under the names of carol, who has not submitted, and of nobody, who has no account
    for victim in (CAROL, NOBODY):
        as_user(EVE, s, "/bin/sh", "-c", f"mkdir '{inbound(hub)}/{victim}+{A}+2001-01-01 00:00:00.000000 UTC+x' "
                f"&& cp '{renamed}/{A}.ipynb' '{inbound(hub)}/{victim}+{A}+2001-01-01 00:00:00.000000 UTC+x/'")
    # she cannot rename, delete or replace bob's own submission (sticky inbound)
    for attack in (f"mv '{bob}' '{bob}.x'", f"rm -rf '{bob}'", f"mv '{forged}' '{bob}'"):
        assert as_user(EVE, s, "/bin/sh", "-c", attack, check=False).returncode != 0, attack
    # 3. eve plants links, a FIFO and a file she does not own in her (renamed) inbound folder
    course = Path(s.course_dir)
    planted = {"master.ipynb": course / "source" / A / f"{A}.ipynb", "shadow.txt": Path("/etc/shadow"),
               "gradebook.db": course / "gradebook.db", "bob.ipynb": bob / f"{A}.ipynb",
               "course": course}
    links = " && ".join(f"ln -s '{target}' '{renamed}/{name}'" for name, target in planted.items())
    as_user(EVE, s, "/bin/sh", "-c", f"{links} && mkfifo '{renamed}/pipe' && mkdir '{renamed}/data' "
            f"&& ln -s /etc/passwd '{renamed}/data/x.csv'")
    snapshot = {p: p.read_bytes() for p in [course / "source" / A / f"{A}.ipynb", course / "nbgrader_config.py"]}
    # the instructor collects in the formgrader (nbgrader's Collect, run by the course service as the grader)
    out = hub.instructor.post(f"/assignment/{A}/collect")
    assert out["success"], out.get("error", out)
    return dict(ada=ada, bob=bob, eve_early=eve_early, eve_late=renamed, forged=forged, due=due,
                collect=out, snapshot=snapshot, planted=planted)


def log_of(hub) -> dict[str, list[str]]:
    return json.loads((Path(hub.settings.course_dir) / "collect-log" / f"{A}.json").read_text())


def notebook_source(path: Path) -> str:
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)


def test_inbound_is_sticky_and_the_course_collects_with_the_hub_class(hub, collected):
    mode = inbound(hub).stat().st_mode
    assert mode & 0o1000 and mode & 0o2000, oct(mode)
    config = (Path(hub.settings.course_dir) / "nbgrader_config.py").read_text()
    assert 'c.ExchangeFactory.collect = "edsgrade.hub.exchange.HubCollect"' in config
    # every collect of the hub's course directory (`edsgrade collect`, `nbgrader collect`) gets it too
    from nbgrader.auth import Authenticator

    from edsgrade.exchange import factory
    from edsgrade.hub.exchange import HubCollect

    make, cfg = factory(hub.course)
    step = make.Collect(coursedir=hub.course.coursedir(A), authenticator=Authenticator(config=cfg), config=cfg)
    assert isinstance(step, HubCollect)
    # the formgrader's Collect ran that class: only it writes the collect log
    assert (Path(hub.settings.course_dir) / "collect-log" / f"{A}.json").is_file()
    assert hub.course.submitted_students(A) == sorted(STUDENTS)


def test_submission_under_another_name_is_refused_and_the_victims_own_is_collected(hub, collected):
    bob_collected = hub.course.submitted_dir(BOB, A)
    assert (bob_collected / f"{A}.ipynb").read_bytes() == (collected["bob"] / f"{A}.ipynb").read_bytes()
    assert "2099" not in (bob_collected / "timestamp.txt").read_text()
    said = " | ".join(log_of(hub)[BOB])
    assert "submitted under edshx-bob's name by another account" in said and "not collected" in said
    # bob's inbound submission is still his and still there
    assert collected["bob"].is_dir() and collected["bob"].stat().st_uid == pwd.getpwnam(BOB).pw_uid


def test_submission_under_the_name_of_a_student_who_did_not_submit_is_refused(hub, collected):
    """Nothing is collected for carol (no empty or forged submission of hers), nor for a name with no account."""
    assert CAROL not in hub.course.submitted_students(A) and NOBODY not in hub.course.submitted_students(A)
    assert not hub.course.submitted_dir(CAROL, A).exists()
    log = log_of(hub)
    assert any("submitted under edshx-carol's name by another account" in x for x in log[CAROL]), log
    assert any("who has no account: not collected" in x for x in log[NOBODY]), log


def test_rewritten_time_after_a_late_submission_is_still_late(hub, collected):
    eve = hub.course.submitted_dir(EVE, A)
    # the latest submission is the late one (its answers), whatever its name and timestamp.txt say
    assert "mean_value = float(np.mean(values))" in notebook_source(eve / f"{A}.ipynb")
    stamp = (eve / "timestamp.txt").read_text().strip()
    assert "2001" not in stamp
    when = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f %Z")
    assert when > collected["due"], (stamp, collected["due"])
    # what she wrote is kept as claimed, for information; her result lists what was refused
    record = json.loads((eve / "collect.json").read_text())
    assert record["time_source"] == "exchange inode change time"
    assert "2001" in record["claimed_timestamp"] and "2001" not in record["timestamp"]
    assert any("`shadow.txt` is a link" in note for note in record["refusals"]), record["refusals"]


def test_planted_links_fifo_and_others_files_are_not_collected(hub, collected):
    eve = hub.course.submitted_dir(EVE, A)
    names = {p.relative_to(eve).as_posix() for p in eve.rglob("*")}
    for name in [*collected["planted"], "pipe", "data/x.csv"]:
        assert name not in names, name
    for path in eve.rglob("*"):
        assert path.is_dir() or (path.is_file() and not path.is_symlink()), path
        if path.is_file():
            text = path.read_bytes()
            assert b"root:" not in text and b"BEGIN HIDDEN TESTS" not in text and b"secret_helper_line" not in text
    said = "\n".join(log_of(hub)[EVE])
    for name in [*collected["planted"], "data/x.csv"]:
        assert f"`{name}` is a link: not collected" in said, (name, said)
    assert "`pipe` is a named pipe: not collected" in said
    # course files untouched
    for path, data in collected["snapshot"].items():
        assert path.read_bytes() == data, path


def test_hub_grades_the_class_each_on_their_own_work(hub, collected):
    graded = cli(Path(hub.settings.course_dir), "hub-grade", A, "--state-dir", hub.settings.state_dir)
    (REPO / "test-artifacts" / "hub-trust" / "hub-grade.txt").write_text(graded.stdout + graded.stderr)
    assert graded.returncode == 0, graded.stderr + graded.stdout
    with hub.course.gradebook() as gb:
        scores = {s: gb.find_submission(A, s).score for s in STUDENTS}
        late = {s: gb.find_submission(A, s).timestamp for s in STUDENTS}
    # ada: everything; bob: squares only (his own work, not eve's forgery); eve: her late mean only
    # (the toy: q1, the mean, 3 points; q2, the squares, 2 points; "why", by hand, not graded yet)
    assert scores == {ADA: 5, BOB: 2, EVE: 3}, (scores, graded.stdout)
    # eve's result says what was left out of her submission
    result = json.loads((hub.course.root / "autograded" / EVE / A / "result.json").read_text())
    assert "`shadow.txt` is a link: not collected" in result["notes"], result["notes"]
    assert late[EVE] > collected["due"], late  # recorded late in the gradebook
    assert late[ADA] < collected["due"] and late[BOB] < collected["due"], late
    assert processes_of([*STUDENTS, CAROL]) == []  # nothing of theirs outlives the round


def test_fetch_feedback_never_follows_a_planted_link(hub, collected):
    out = hub.instructor.post(f"/assignment/{A}/release_feedback")
    if not out["success"]:
        pytest.fail(out.get("error", out))
    s = hub.settings
    home = Path(pwd.getpwnam(EVE).pw_dir)
    elsewhere = home / "elsewhere"
    # eve replaces the folder fetch_feedback writes into by a link to another folder of hers, and
    # plants a link where the page of a later fetch goes
    as_user(EVE, s, "/bin/sh", "-c", f"mkdir -p '{elsewhere}' && rm -rf '{home}/{A}/feedback' "
            f"&& ln -s '{elsewhere}' '{home}/{A}/feedback'")
    nbgrader_as(EVE, s, "fetch_feedback", A)
    assert list(elsewhere.iterdir()) == []  # nothing written through the link
    feedback = home / A / "feedback"
    assert feedback.is_dir() and not feedback.is_symlink()  # the link was replaced by a real folder
    pages = list(feedback.rglob(f"{A}.html"))
    assert pages and all(p.is_file() and not p.is_symlink() for p in pages), pages
    assert b"<html" in pages[0].read_bytes().lower()
    target = elsewhere / "target.html"
    as_user(EVE, s, "/bin/sh", "-c", f"echo mine > '{target}' && rm '{pages[0]}' && ln -s '{target}' '{pages[0]}'")
    nbgrader_as(EVE, s, "fetch_feedback", A)
    assert target.read_text() == "mine\n"
    assert pages[0].is_file() and not pages[0].is_symlink()


def test_password_is_on_no_command_line_while_the_hub_runs(hub):
    secret = [hub.settings.password.encode(), hub.settings.admin_token.encode()]
    seen = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        seen += 1
        assert not any(s in cmdline for s in secret), cmdline.replace(b"\0", b" ")[:300]
    assert seen > 10
    hub_pid = hub.proc.proc.pid
    assert hub.settings.password.encode() not in (Path("/proc") / str(hub_pid) / "environ").read_bytes()
    # the settings file that carries it to the authenticator is root's alone
    settings_file = hub.settings.hub_dir / "settings.json"
    assert settings_file.stat().st_mode & 0o077 == 0 and settings_file.stat().st_uid == 0


# ---- the password's ways in (no hub needed) --------------------------------------------------

def test_password_option_is_refused_with_what_to_do_instead(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edsgrade", "hub", "--password", "hunter2",
                           "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode != 0
    assert "--password is refused" in proc.stderr and "EDSGRADE_HUB_PASSWORD" in proc.stderr
    assert "--password-file" in proc.stderr and not (tmp_path / "hub").exists()


def test_password_file_must_be_private(tmp_path):
    path = tmp_path / "pw"
    path.write_text("s3cret\n")
    path.chmod(0o644)
    with pytest.raises(PasswordError, match=re.escape(f"chmod 600 {path}")):
        read_password_file(path)
    path.chmod(0o600)
    assert hub_password(path, environ={}).value == "s3cret"
    link = tmp_path / "link"
    link.symlink_to(path)
    with pytest.raises(PasswordError, match="link"):
        read_password_file(link)
    assert hub_password(None, environ={"EDSGRADE_HUB_PASSWORD": "from-env"}).value == "from-env"
    assert len(hub_password(None, environ={}).value) >= 12
