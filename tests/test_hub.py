"""The course on a real JupyterHub, on loopback: hub, proxy, the students' servers as their own
system users, nbgrader's assignment list and formgrader, grading on the hub, feedback.

Runs as root (it creates system users, prefixed ``edsht-``, and removes them at the end). The tests
run in file order and share one hub: the API students (full, partial, blank) and a browser student
hand in lab1; the instructor collects; the hub grades; feedback goes back to each student.
Screenshots and the hub's log go to ``test-artifacts/hub/``.
"""
from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from traitlets.config import Config

from conftest import REPO, cli
from hubclient import Formgrader, HubClient, UserServer
from edsgrade import exchange
from edsgrade.cohort import PROFILES
from edsgrade.course import Course
from edsgrade.grading.autograde import grade_assignment
from edsgrade.hub import system
from edsgrade.hub.grading import grade_on_hub
from edsgrade.hub.launcher import HubProcess
from edsgrade.hub.settings import HubSettings
from edsgrade.master import load_master

A = "lab1-calibration"
PREFIX = "edsht-"
GRADER, INSTRUCTOR, WEB_STUDENT = f"{PREFIX}grader", f"{PREFIX}inst", f"{PREFIX}dana"
STUDENTS = {f"{PREFIX}ada": "full", f"{PREFIX}ben": "partial", f"{PREFIX}chloe": "blank"}
ARTIFACTS = REPO / "test-artifacts" / "hub"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]

pytestmark = pytest.mark.timeout(900)


def test_users() -> list[str]:
    return [p.pw_name for p in pwd.getpwall() if p.pw_name.startswith(PREFIX)]


test_users.__test__ = False  # a helper, not a test


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def processes_of(users: list[str]) -> list[str]:
    """Command lines of the running processes owned by ``users``."""
    uids = {pwd.getpwnam(u).pw_uid for u in users if u in test_users()}
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and proc.stat().st_uid in uids:
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return found


PROBE = """
import json, os, sys
out = {}
for label, path in json.loads(sys.argv[1]).items():
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        out[label] = "read"
    except PermissionError:
        out[label] = "denied"
    except FileNotFoundError:
        out[label] = "missing"
print(json.dumps(out))
"""


def probe_as(user: str, paths: dict[str, Path]) -> dict[str, str]:
    """Try to read (or list) each path as the system user ``user``; 'read', 'denied' or 'missing'."""
    proc = subprocess.run(["runuser", "-u", user, "--", "/usr/bin/python3", "-c", PROBE,
                           json.dumps({k: str(v) for k, v in paths.items()})],
                          capture_output=True, text=True, cwd="/", timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def hub():
    if os.geteuid() != 0:
        pytest.fail("the hub tests run as root: they create system users and start servers as them")
    for name in test_users():  # left over by a killed run
        system.remove_user(name)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="edsgrade-hubtest-", dir="/tmp"))
    base.chmod(0o755)
    port, hub_port, proxy_port, service_port = free_ports(4)
    settings = HubSettings(state_dir=str(base / "srv"), course_dir=str(base / "srv" / "eds"),
                           exchange_root=str(base / "exchange"), grader_user=GRADER, instructors=[INSTRUCTOR],
                           password=secrets.token_urlsafe(12), port=port, hub_port=hub_port,
                           proxy_api_port=proxy_port, service_port=service_port, python=sys.executable,
                           user_prefix=PREFIX, admin_token=secrets.token_hex(32))
    log = ARTIFACTS / "jupyterhub.log"
    log.unlink(missing_ok=True)
    proc = HubProcess(settings, REPO, log=log)
    proc.prepare()
    built = cli(Path(settings.course_dir), "build", A)  # as root, like an administrator would
    assert built.returncode == 0, built.stderr + built.stdout
    system.own_course(settings)
    proc.start()
    client = HubClient(settings.url, settings.admin_token)
    state = SimpleNamespace(settings=settings, proc=proc, client=client, course=Course(settings.course_dir),
                            base=base, servers={}, notebooks={}, hub_results={}, browser={})
    try:
        yield state
    finally:
        proc.stop()
        for name in test_users():
            system.remove_user(name)
        shutil.rmtree(base, ignore_errors=True)


def inbound(state) -> Path:
    return Path(state.settings.exchange_root) / "eds" / "inbound"


def submission_of(state, student: str) -> Path:
    found = sorted(inbound(state).glob(f"{student}+{A}+*"))
    assert found, f"no submission of {student} in {inbound(state)}"
    return found[-1]


# ---- the hub and its users ---------------------------------------------------------------------

def test_login_creates_system_users_and_groups(hub):
    for name in [INSTRUCTOR, *STUDENTS]:
        r = hub.client.login(name, hub.settings.password)
        assert r.status_code == 302, (name, r.status_code, r.text[:300])
        entry = pwd.getpwnam(name)  # created on first login
        assert (os.stat(entry.pw_dir).st_mode & 0o777) == 0o700, f"{name}'s home is open to others"
    assert hub.client.login(f"{PREFIX}eve", "wrong password").status_code == 403
    assert f"{PREFIX}eve" not in test_users()
    groups = {g["name"]: set(g["users"]) for g in hub.client.api("GET", "/groups").json()}
    assert groups["nbgrader-eds"] == set(STUDENTS)
    assert INSTRUCTOR in groups["formgrade-eds"] and not set(STUDENTS) & groups["formgrade-eds"]
    assert hub.client.user(INSTRUCTOR)["admin"] and not hub.client.user(f"{PREFIX}ada")["admin"]


def test_instructor_releases_lab1_in_the_formgrader(hub):
    hub.instructor = Formgrader(hub.settings.url, hub.client.token_for(INSTRUCTOR))
    out = hub.instructor.post(f"/assignment/{A}/release")
    assert out["success"], out
    assert (Path(hub.settings.exchange_root) / "eds" / "outbound" / A / f"{A}.ipynb").is_file()
    # a student's token does not open the course service
    student = Formgrader(hub.settings.url, hub.client.token_for(f"{PREFIX}ada"))
    with pytest.raises(Exception) as refused:
        student.call("GET", "/formgrader/api/assignments")
    assert getattr(refused.value, "response", None) is not None and refused.value.response.status_code == 403


def test_students_servers_start_as_their_users(hub):
    for name in STUDENTS:
        hub.client.start_server(name)
    for name in STUDENTS:
        hub.client.wait_ready(name)
        hub.servers[name] = UserServer(hub.settings.url, name, hub.client.token_for(name))
    for name in STUDENTS:
        procs = [p for p in processes_of([name]) if "jupyterhub-singleuser" in p]
        assert procs, f"no single-user server running as {name}"


def test_students_fetch_answer_and_submit(hub):
    master = load_master(hub.course.master_path(A))
    for name, profile in STUDENTS.items():
        server = hub.servers[name]
        listed = {a["assignment_id"]: a for a in server.assignments()}
        assert listed[A]["status"] == "released"
        after = {a["assignment_id"]: a for a in server.action("fetch", A)["value"]}
        assert after[A]["status"] == "fetched"
        release = server.get(f"{A}/{A}.ipynb")["content"]
        answered = PROFILES[profile][1](nbformat.from_dict(release), master)
        hub.notebooks[name] = answered
        server.put_notebook(f"{A}/{A}.ipynb", answered)
        saved = server.get(f"{A}/{A}.ipynb")["content"]["cells"]
        assert [c["source"] for c in saved] == [c.source for c in answered.cells]
        out = server.action("submit", A)
        statuses = {a["status"] for a in out["value"] if a["assignment_id"] == A}
        assert "submitted" in statuses, out
    owners = {p.stat().st_uid for p in inbound(hub).iterdir()}
    assert owners == {pwd.getpwnam(n).pw_uid for n in STUDENTS}


def test_students_cannot_read_each_other_or_the_course(hub):
    course = Path(hub.settings.course_dir)
    names = list(STUDENTS)
    for i, name in enumerate(names):
        other = names[(i + 1) % len(names)]
        mine, theirs = submission_of(hub, name), submission_of(hub, other)
        seen = probe_as(name, {
            "released notebook": Path(hub.settings.exchange_root) / "eds" / "outbound" / A / f"{A}.ipynb",
            "own submission": mine / f"{A}.ipynb",
            "own home": Path(pwd.getpwnam(name).pw_dir) / A / f"{A}.ipynb",
            "inbound listing": inbound(hub),
            "other's submission folder": theirs,
            "other's submitted notebook": theirs / f"{A}.ipynb",
            "other's home": Path(pwd.getpwnam(other).pw_dir) / A / f"{A}.ipynb",
            "course directory": course,
            "master notebook": course / "source" / A / f"{A}.ipynb",
            "hidden tests": course / "build" / A,
            "gradebook": course / "gradebook.db",
            "feedback listing": Path(hub.settings.exchange_root) / "eds" / "feedback",
        })
        expected = {"released notebook": "read", "own submission": "read", "own home": "read"}
        assert seen == {k: expected.get(k, "denied") for k in seen}, (name, seen)
    # the grader account reads submissions (through the inbound folder's group), students' homes not
    seen = probe_as(GRADER, {"a submission": submission_of(hub, names[0]) / f"{A}.ipynb",
                             "a home": Path(pwd.getpwnam(names[0]).pw_dir)})
    assert seen == {"a submission": "read", "a home": "denied"}
