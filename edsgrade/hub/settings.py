"""What a course hub needs to know, written once by the launcher and read by ``jupyterhub_config.py``."""
from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: environment variable naming the settings file that ``jupyterhub_config.py`` reads
SETTINGS_ENV = "EDSGRADE_HUB_SETTINGS"


@dataclass
class HubSettings:
    """Settings of one course hub.

    Parameters
    ----------
    state_dir:
        Folder of the hub's own files (database, cookie secret, logs; root only) and of the
        per-role Jupyter configuration read by single-user servers (world-readable).
    course_dir:
        The nbgrader course directory served by the formgrader; owned by ``grader_user``, closed to
        everyone else (it holds the masters, the hidden tests and the gradebook).
    exchange_root:
        nbgrader's filesystem exchange, shared by all (``/srv/nbgrader/exchange`` by convention).
    instructors:
        Hub user names of the instructors (group ``formgrade-eds``, hub admins); everyone else who logs
        in is a student (group ``nbgrader-eds``).
    password:
        The shared password of the demo authenticator (``None``: the configured SSO authenticator).
    python:
        Python of the single-user environment (JupyterLab, nbgrader, the labs' packages); every
        folder on its path must be readable by the students' system users.
    user_prefix:
        Only names starting with it may log in and become system users ('' allows any valid name).
    """

    state_dir: str = "/srv/edsgrade"
    course_dir: str = "/srv/edsgrade/eds"
    exchange_root: str = "/srv/nbgrader/exchange"
    course_id: str = "eds"
    grader_user: str = "grader-eds"
    instructors: list[str] = field(default_factory=lambda: ["instructor"])
    password: str | None = None
    ip: str = "127.0.0.1"
    port: int = 8000
    hub_port: int = 8081
    proxy_api_port: int = 8001
    service_port: int = 9999
    python: str = sys.executable
    user_prefix: str = ""
    admin_token: str | None = None
    extra_config: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"

    @property
    def hub_dir(self) -> Path:
        """Root-only files of the hub."""
        return Path(self.state_dir) / "hub"

    def jupyter_config_dir(self, role: str) -> Path:
        """Jupyter configuration of the single-user servers of ``role`` ('student' or 'instructor')."""
        return Path(self.state_dir) / "jupyter" / role

    @property
    def grader_group(self) -> str:
        return f"formgrade-{self.course_id}"

    def save(self) -> Path:
        path = self.hub_dir / "settings.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)
        return path

    @classmethod
    def load(cls, path: str | Path | None = None) -> "HubSettings":
        path = path or os.environ.get(SETTINGS_ENV)
        if not path:
            raise RuntimeError(f"{SETTINGS_ENV} is not set: start the hub with `edsgrade hub`.")
        if not Path(path).is_file():
            from edsgrade.course import CourseError

            raise CourseError(f"{path} does not exist: no course hub was started with this state folder "
                              "(start it with `edsgrade hub`, or pass the --state-dir it was started with).")
        return cls(**json.loads(Path(path).read_text()))
