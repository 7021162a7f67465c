"""The machine side of a course hub: accounts, groups, folders and their permissions.

Everything here runs as root, before JupyterHub starts (:func:`prepare`), and is idempotent.

Who can read what:

=========================  ==============================  =====================================
path                       owner, mode                     who reads it
=========================  ==============================  =====================================
``state_dir/hub``          root, 0700                      the hub (database, cookie secret, logs)
``course_dir``             grader account, 0700            the grader account (formgrader), root
``exchange/eds/outbound``  grader account, 0755            everyone: the released assignments
``exchange/eds/inbound``   grader account, 3733            nobody lists it; students write into it;
                                                           sticky: only its author renames or deletes
                                                           a submission; a submission is rwx for its
                                                           author and readable by the grader
                                                           account's group; collect takes it only
                                                           if its author is the student it names
``exchange/eds/feedback``  grader account, 0711            a student opens only the page whose
                                                           name derives from their own submission
``/home/<student>``        the student, 0700               the student
=========================  ==============================  =====================================
"""
from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from edsgrade.course import CourseError
from edsgrade.hub.settings import HubSettings

#: nbgrader's lab extensions a student does not get (grading tools)
STUDENT_HIDDEN_LAB_EXTENSIONS = ["@jupyter/nbgrader:formgrader", "@jupyter/nbgrader:create-assignment",
                                 "@jupyter/nbgrader:course-list"]
#: nbgrader's server extensions a student does not get
STUDENT_HIDDEN_SERVER_EXTENSIONS = ["nbgrader.server_extensions.formgrader",
                                    "nbgrader.server_extensions.course_list"]
#: the packages a single-user server imports
SINGLEUSER_IMPORTS = "import jupyterhub, jupyterlab, nbgrader, otter, edsgrade.hub.exchange"


class HubSetupError(CourseError):
    """The machine cannot run the course hub as asked; the message says what to do."""


def require_root() -> None:
    if os.geteuid() != 0:
        raise HubSetupError("the course hub runs as root (it creates a system user per student and starts "
                            "their servers as them): run `sudo make hub` or `sudo edsgrade hub`.")


#: where ``make hub-env`` builds the single-user environment when the repository's is not world-readable
SHARED_ENV_PYTHON = "/opt/edsgrade/venv/bin/python"


def usable_by_others(python: str, probe_user: str = "nobody") -> bool:
    """Whether ``python`` imports the single-user packages when run as ``probe_user``."""
    proc = subprocess.run(["runuser", "-u", probe_user, "--", python, "-c", SINGLEUSER_IMPORTS],
                          capture_output=True, text=True, cwd="/", timeout=120)
    return proc.returncode == 0


def default_singleuser_python() -> str:
    """This environment's Python if the students' users can run it, else the one ``make hub-env``
    builds in /opt/edsgrade/venv (when it exists), else this one (the check then says what to do)."""
    if os.geteuid() == 0 and not usable_by_others(sys.executable) and Path(SHARED_ENV_PYTHON).exists():
        return SHARED_ENV_PYTHON
    return sys.executable


def check_singleuser_python(python: str, probe_user: str = "nobody") -> None:
    """Check that ``python`` runs JupyterLab and nbgrader as another user (not root).

    The students' servers run as their own system users: the environment must be readable by them,
    every folder above it included (a virtual environment under /root is not).
    """
    cmd = ["runuser", "-u", probe_user, "--", python, "-c", SINGLEUSER_IMPORTS]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/", timeout=120)
    if proc.returncode != 0:
        blocked = [str(p) for p in Path(python).parents if p.exists() and not os.stat(p).st_mode & 0o001]
        raise HubSetupError(
            f"the single-user environment {python} cannot be used by the students' system users "
            f"(tried as {probe_user!r}: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode})."
            + (f" Folders others cannot enter: {', '.join(blocked)}." if blocked else "")
            + " Build it in a world-readable place with `make hub-env` (creates /opt/edsgrade/venv), "
              "or pass --python PATH.")


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise HubSetupError(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def ensure_grader_account(name: str, home: Path) -> pwd.struct_passwd:
    """The system account that owns the course directory and runs the formgrader (its own group)."""
    if not user_exists(name):
        _run(["useradd", "--system", "--user-group", "--create-home", "--home-dir", str(home),
              "--shell", "/bin/bash", "--comment", "edsgrade course grader", name])
    return pwd.getpwnam(name)


def remove_user(name: str) -> None:
    """Delete a system user and its home (tests use it to clean up the users they created)."""
    if user_exists(name):
        subprocess.run(["pkill", "-KILL", "-u", name], capture_output=True)
        _run(["userdel", "--remove", name])
    try:
        grp.getgrnam(name)
        subprocess.run(["groupdel", name], capture_output=True)
    except KeyError:
        pass


def chown_tree(path: Path, uid: int, gid: int) -> None:
    """``chown -R`` without following symbolic links."""
    for folder, dirs, files in os.walk(path):
        os.lchown(folder, uid, gid)
        for name in dirs + files:
            os.lchown(Path(folder) / name, uid, gid)


#: first line of the part of the course's ``nbgrader_config.py`` that ``edsgrade hub`` writes
HUB_CONFIG_MARKER = "# ---- the course hub: written by `edsgrade hub` at each start (edit above this line) ----"


def hub_course_config(exchange_root: str) -> str:
    """The hub's part of the course directory's ``nbgrader_config.py``, read by the formgrader (its
    Collect button) and by every ``nbgrader`` command run there: the hub's exchange, and the hub's
    collect (:class:`edsgrade.hub.exchange.HubCollect`), which takes a submission only from the system
    user of the student it is filed under."""
    return (f"{HUB_CONFIG_MARKER}\n"
            f"c.Exchange.root = os.environ.get(\"EDSGRADE_EXCHANGE\", {exchange_root!r})\n"
            'c.ExchangeFactory.collect = "edsgrade.hub.exchange.HubCollect"\n')


def seed_course(course_dir: Path, repo: Path, exchange_root: str) -> None:
    """A new course directory gets the repository's ``nbgrader_config.py`` and master notebooks; the
    hub's part of that configuration (:func:`hub_course_config`) is written again at each start, so a
    hub started by an older version gets the current one."""
    course_dir.mkdir(parents=True, exist_ok=True)
    config = course_dir / "nbgrader_config.py"
    text = config.read_text() if config.exists() else (repo / "nbgrader_config.py").read_text()
    text = text.split(HUB_CONFIG_MARKER)[0].split("\n# The course hub's exchange (written by `edsgrade hub`).")[0]
    config.write_text(text.rstrip("\n") + "\n\n" + hub_course_config(exchange_root))
    if not (course_dir / "source").exists() and (repo / "source").is_dir():
        shutil.copytree(repo / "source", course_dir / "source",
                        ignore=shutil.ignore_patterns("data", ".ipynb_checkpoints", "__pycache__"))


def own_course(settings: HubSettings) -> None:
    """Give the course directory back to the grader account, closed to everyone else.

    Run it after anything root did in the course directory (``edsgrade build`` or ``grade`` as root).
    """
    account = pwd.getpwnam(settings.grader_user)
    course = Path(settings.course_dir)
    chown_tree(course, account.pw_uid, account.pw_gid)
    course.chmod(0o700)


def prepare_exchange(settings: HubSettings) -> None:
    """The exchange folders of the course, owned by the grader account, with nbgrader's modes."""
    account = pwd.getpwnam(settings.grader_user)
    root = Path(settings.exchange_root)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o1777)
    course = root / settings.course_id
    # inbound: set-group-id (submissions belong to the grader account's group) and sticky (only the
    # author of a submission can rename or delete it)
    for path, mode in ((course, 0o755), (course / "outbound", 0o755), (course / "inbound", 0o3733),
                       (course / "feedback", 0o711)):
        path.mkdir(exist_ok=True)
        os.chown(path, account.pw_uid, account.pw_gid)
        path.chmod(mode)


def nbgrader_config(settings: HubSettings, student: bool) -> str:
    """The ``nbgrader_config.py`` of the single-user servers (students' or instructors')."""
    lines = [
        '"""nbgrader configuration of the single-user servers, written by `edsgrade hub`."""',
        "c = get_config()  # noqa: F821",
        f"c.CourseDirectory.course_id = {settings.course_id!r}",
        f"c.Exchange.root = {settings.exchange_root!r}",
        "c.Exchange.path_includes_course = False",
    ]
    if student:
        lines.append('c.ExchangeFactory.submit = "edsgrade.hub.exchange.PrivateSubmit"')
        lines.append('c.ExchangeFactory.fetch_feedback = "edsgrade.exchange.safe.SafeFetchFeedback"')
    return "\n".join(lines) + "\n"


def write_jupyter_config(settings: HubSettings) -> None:
    """Per-role Jupyter configuration folders, put on ``JUPYTER_CONFIG_PATH`` of each server."""
    base = Path(settings.state_dir) / "jupyter"
    for role in ("student", "instructor"):
        folder = settings.jupyter_config_dir(role)
        (folder / "labconfig").mkdir(parents=True, exist_ok=True)
        student = role == "student"
        (folder / "nbgrader_config.py").write_text(nbgrader_config(settings, student))
        server = {"ServerApp": {"jpserver_extensions": {e: False for e in STUDENT_HIDDEN_SERVER_EXTENSIONS}}} if student else {}
        (folder / "jupyter_server_config.json").write_text(json.dumps(server, indent=2))
        page = {"disabledExtensions": {e: True for e in STUDENT_HIDDEN_LAB_EXTENSIONS}} if student else {}
        (folder / "labconfig" / "page_config.json").write_text(json.dumps(page, indent=2))
    for folder, dirs, files in os.walk(base):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(Path(folder) / name, 0o644)


def prepare(settings: HubSettings, repo: Path) -> None:
    """Everything the hub needs on the machine (idempotent): see the module docstring."""
    require_root()
    state = Path(settings.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    state.chmod(0o755)
    settings.hub_dir.mkdir(exist_ok=True)
    settings.hub_dir.chmod(0o700)
    ensure_grader_account(settings.grader_user, state / settings.grader_user)
    seed_course(Path(settings.course_dir), repo, settings.exchange_root)
    own_course(settings)
    prepare_exchange(settings)
    write_jupyter_config(settings)
