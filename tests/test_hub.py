"""The course on a real JupyterHub, on loopback: hub, proxy, the students' servers as their own
system users, nbgrader's assignment list and formgrader, grading on the hub, feedback.

Runs as root (it creates system users, prefixed ``edsht-``, and removes them at the end). The tests
run in file order and share one hub: the API students (full, partial, blank) and a browser student
hand in lab1; the instructor collects; the hub grades; feedback goes back to each student.
Screenshots and the hub's log go to ``test-artifacts/hub/``.
"""
from __future__ import annotations

import contextlib
import json
import re
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from traitlets.config import Config

from conftest import REPO, cli
from hubclient import Formgrader, HubClient, UserServer, live_processes
from edsgrade import exchange
from edsgrade.simulate.cohort import PROFILES
from edsgrade.course import Course
from edsgrade.grading.autograde import grade_run
from edsgrade.hub import system
from edsgrade.hub.launcher import HubProcess
from edsgrade.hub.settings import HubSettings
from edsgrade.authoring.master import load_master

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
    """Command lines of the running processes owned by ``users`` (zombies, already dead, are not counted)."""
    uids = {pwd.getpwnam(u).pw_uid for u in users if u in test_users()}
    return live_processes(uids)


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
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    base = Path(tempfile.mkdtemp(prefix="edsgrade-hubtest-", dir="/tmp"))
    base.chmod(0o755)
    port, hub_port, proxy_port, service_port = free_ports(4)
    settings = HubSettings(state_dir=str(base / "srv"), course_dir=str(base / "srv" / "eds"),
                           exchange_root=str(base / "exchange"), grader_user=GRADER, instructors=[INSTRUCTOR],
                           password=secrets.token_urlsafe(12), port=port, hub_port=hub_port,
                           proxy_api_port=proxy_port, service_port=service_port,
                           python=system.default_singleuser_python(),
                           user_prefix=PREFIX, admin_token=secrets.token_hex(32))
    log = ARTIFACTS / "jupyterhub.log"
    log.unlink(missing_ok=True)
    proc = HubProcess(settings, REPO, log=log)
    proc.prepare()
    # the course's build runs as the grader account, as the README says
    built = subprocess.run(["runuser", "-u", GRADER, "--", settings.python, "-m", "edsgrade", "--course-dir",
                            settings.course_dir, "-q", "build", A], capture_output=True, text=True, cwd="/", timeout=600)
    assert built.returncode == 0, built.stderr + built.stdout
    # the same built course for the local pipeline that the hub's scores are compared with
    shutil.copytree(settings.course_dir, base / "local")
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


# ---- a student in a real browser (Debian's chromium, driven by Playwright) -------------------

@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def browser_login(browser, hub, name: str, then: str = ""):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(f"{hub.settings.url}/hub/login" + (f"?next={then}" if then else ""))
    page.fill("#username_input", name)
    page.fill("#password_input", hub.settings.password)
    page.click("#login_submit")
    return context, page


def open_assignment_list(page):
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
    return page.locator(".nbgrader-AssignmentList, #assignment-list, .lm-Widget:has(#released_assignments_list)").first


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@contextlib.contextmanager
def screenshot_on_failure(page, name: str):
    try:
        yield
    except BaseException:
        shot(page, f"failed-{name}")
        raise


def test_browser_student_fetches_runs_a_check_and_submits(hub, browser):
    context, page = browser_login(browser, hub, WEB_STUDENT)
    with screenshot_on_failure(page, "student-fetch-run-submit"):
        student_fetches_runs_and_submits(hub, page)
    hub.browser["page"] = page


def student_fetches_runs_and_submits(hub, page):
    page.wait_for_url(f"**/user/{WEB_STUDENT}/lab**", timeout=300_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
    open_assignment_list(page)
    released = page.locator("#released_assignments_list")
    released.get_by_text(A).first.wait_for()
    shot(page, "1-student-assignment-list")
    released.get_by_role("button", name="Fetch").click()
    fetched = page.locator("#fetched_assignments_list")
    fetched.get_by_text(A).first.wait_for()
    # open the notebook from the list, run it from the top down to the first check (answers blank)
    fetched.get_by_role("button", name=A).click()
    page.locator(f"#nbgrader-eds-{A}").get_by_text(A).click()
    shot(page, "2-student-fetched")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=180_000)
    # run the first cell (it loads the checks), then the check of question 1 (its answer is blank)
    idle = "() => ![...document.querySelectorAll('.jp-InputPrompt')].some(e => e.textContent.includes('*'))"
    page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-editor").first.click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_timeout(300)
    page.wait_for_function(idle, timeout=120_000)
    check = page.locator(".jp-Notebook .jp-CodeCell").filter(
        has=page.locator(".cm-line", has_text=re.compile(r'^grader\.check\("q1"\)$')))
    for _ in range(40):  # the notebook renders the cells near the view only: scroll down to it
        if check.count():
            break
        page.mouse.move(800, 500)
        page.mouse.wheel(0, 600)
        page.wait_for_timeout(250)
    check.first.scroll_into_view_if_needed()
    check.first.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    page.wait_for_timeout(300)
    page.wait_for_function(idle, timeout=120_000)
    result = check.first.locator(".jp-OutputArea-output")
    result.wait_for(timeout=120_000)
    text = result.inner_text()
    assert "q1" in text and ("fail" in text.lower() or "error" in text.lower()), text
    shot(page, "3-student-ran-check-q1")
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1000)
    open_assignment_list(page)
    page.locator("#fetched_assignments_list").get_by_role("button", name="Submit").click()
    page.locator("#submitted_assignments_list").get_by_text(A).first.wait_for(timeout=120_000)
    shot(page, "4-student-submitted")
    assert submission_of(hub, WEB_STUDENT).is_dir()


# ---- the instructor collects, the hub grades, feedback goes back ------------------------------

def handed_in(hub) -> list[str]:
    """The students who submitted: the API students, and the browser student when its test ran."""
    return [*STUDENTS, *([WEB_STUDENT] if "page" in hub.browser else [])]


def test_instructor_collects_in_the_formgrader(hub):
    out = hub.instructor.post(f"/assignment/{A}/collect")
    assert out["success"], out.get("error", out)[-4000:]
    assert hub.course.submitted_students(A) == sorted(handed_in(hub))
    listed = hub.instructor.call("GET", "/formgrader/api/submissions/" + A).json()
    assert {s["student"] for s in listed} >= set(STUDENTS)


def test_hub_grades_like_the_local_pipeline(hub):
    graded = cli(Path(hub.settings.course_dir), "hub-grade", A, "--state-dir", hub.settings.state_dir)
    assert graded.returncode == 0, graded.stderr + graded.stdout
    assert pwd.getpwuid(Path(hub.settings.course_dir, "gradebook.db").stat().st_uid).pw_name == GRADER
    with hub.course.gradebook() as gb:
        hub_scores = {s: gb.find_submission(A, s).score for s in handed_in(hub)}
    # the same notebooks through the local exchange and the local grading
    # (a local exchange where root submits for everyone: the course's own collect, without the hub's
    # rule that a submission filed under a student's name must belong to that student's account)
    local = Course(hub.base / "local", overrides=Config({
        "Exchange": {"root": str(hub.base / "local-exchange")},
        "ExchangeFactory": {"collect": "edsgrade.exchange.safe.SafeCollect"},
        "SafeCollect": {"check_owner": False}}))
    exchange.release(local, A)
    for name in STUDENTS:
        folder = exchange.fetch(local, A, name, replace=True)
        nbformat.write(hub.notebooks[name], folder / f"{A}.ipynb")
        exchange.submit(local, A, name)
    exchange.collect(local, A)
    results = {r.student: r for r in grade_run(local, A, list(STUDENTS), progress=False).results}
    for name in STUDENTS:
        assert hub_scores[name] == pytest.approx(results[name].score), name
    full, partial, blank = (hub_scores[n] for n in STUDENTS)
    assert full == pytest.approx(results[f"{PREFIX}ada"].max_score) and full > partial > blank
    hub.scores = hub_scores


def test_feedback_reaches_each_student_and_only_them(hub):
    out = hub.instructor.post(f"/assignment/{A}/release_feedback")
    assert out["success"], out.get("error", out)[-4000:]
    released = list((Path(hub.settings.exchange_root) / "eds" / "feedback").glob("*.html"))
    assert len(released) == len(handed_in(hub))
    for name, server in hub.servers.items():
        out = server.action("fetch_feedback", A)
        mine = [a for a in out["value"] if a["assignment_id"] == A and a["status"] == "submitted"]
        assert mine and any(sub.get("has_local_feedback") for sub in mine[0]["submissions"]), out
        stamps = server.get(f"{A}/feedback")["content"]
        assert len(stamps) == 1, stamps
        page = server._call("GET", f"/api/contents/{stamps[0]['path']}/{A}.html",
                            params={"type": "file", "format": "text"}).json()["content"]
        assert f"feedback for {name}" in page
        assert f"{hub.scores[name]:g} / " in page
        assert not [other for other in handed_in(hub) if other != name and other in page]
    names = list(STUDENTS)
    other_feedback = Path(pwd.getpwnam(names[1]).pw_dir) / A / "feedback"
    assert probe_as(names[0], {"other's feedback": other_feedback}) == {"other's feedback": "denied"}


def test_browser_student_sees_feedback(hub, browser):
    page = hub.browser["page"]
    with screenshot_on_failure(page, "student-feedback"):
        page.goto(f"{hub.settings.url}/user/{WEB_STUDENT}/lab")
        page.wait_for_selector("#jp-main-dock-panel", timeout=120_000)
        open_assignment_list(page)
        submitted = page.locator("#submitted_assignments_list")
        submitted.get_by_text(A).first.wait_for()
        submitted.get_by_role("button", name="Fetch Feedback").click()
        link = submitted.get_by_text(re.compile("view feedback", re.I)).first
        link.wait_for(timeout=120_000)
        shot(page, "5-student-feedback-fetched")
        link.click()  # shows the feedback folder in the file browser
        page.locator(".jp-DirListing-item", has_text=f"{A}.html").first.dblclick()
        viewer = page.frame_locator(".jp-HTMLViewer iframe").first
        viewer.get_by_text(f"feedback for {WEB_STUDENT}").first.wait_for(timeout=60_000)
        assert f"{hub.scores[WEB_STUDENT]:g} / " in viewer.locator("body").inner_text()
        shot(page, "6-student-feedback-page")


def test_browser_instructor_opens_the_formgrader(hub, browser):
    context, page = browser_login(browser, hub, INSTRUCTOR, then=f"/services/{hub.settings.course_id}/formgrader")
    with screenshot_on_failure(page, "instructor-formgrader"):
        page.wait_for_url("**/services/eds/formgrader**", timeout=120_000)
        page.get_by_text("Manage Assignments").first.wait_for()
        page.get_by_text(A).first.wait_for()
        shot(page, "7-instructor-formgrader")
    context.close()


def test_teardown_stops_hub_proxy_servers_and_removes_users(hub):
    if "page" in hub.browser:
        hub.browser["page"].context.close()
    assert processes_of(list(STUDENTS)), "the students' servers should be running before the hub stops"
    hub.proc.stop()
    deadline = time.monotonic() + 30  # the single-user servers stop with the hub, within seconds
    while processes_of(test_users()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert processes_of(test_users()) == []
    for port in (hub.settings.port, hub.settings.hub_port, hub.settings.proxy_api_port, hub.settings.service_port):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"something still listens on {port}"
    # a restart on the same state (database, users, roles) comes up, and people can log in again
    hub.proc.start()
    try:
        assert hub.client.login(next(iter(STUDENTS)), hub.settings.password).status_code == 302
        assert hub.client.login(INSTRUCTOR, hub.settings.password).status_code == 302
    finally:
        hub.proc.stop()
    for name in test_users():
        system.remove_user(name)
    assert test_users() == []
