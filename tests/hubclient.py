"""A small client of a running course hub for the tests: the hub's REST API, a user's single-user
server (contents API, nbgrader's assignment list) and the course service (nbgrader's formgrader API).
Everything goes over HTTP through the proxy, as a browser or a script would."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import requests


def live_processes(uids: set[int]) -> list[str]:
    """Command lines of the running processes owned by ``uids`` (zombies, already dead, are not counted)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and proc.stat().st_uid in uids:
                state = next(l for l in (proc / "status").read_text().splitlines() if l.startswith("State:"))
                if "zombie" not in state:
                    found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, StopIteration):
            pass
    return found


class HubClient:
    """The hub's REST API with an admin token (creates users' tokens, starts and stops servers)."""

    def __init__(self, url: str, admin_token: str) -> None:
        self.url = url.rstrip("/")
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"token {admin_token}"

    def api(self, method: str, path: str, **kw) -> requests.Response:
        r = self.http.request(method, f"{self.url}/hub/api{path}", timeout=60, **kw)
        r.raise_for_status()
        return r

    def login(self, name: str, password: str) -> requests.Response:
        """Log in through the login form, as a browser does (creates the user and its system account)."""
        s = requests.Session()
        s.get(f"{self.url}/hub/login", timeout=30)
        return s.post(f"{self.url}/hub/login", data={"username": name, "password": password,
                                                     "_xsrf": s.cookies.get("_xsrf", path="/hub/")},
                      allow_redirects=False, timeout=120)

    def user(self, name: str) -> dict:
        return self.api("GET", f"/users/{name}").json()

    def token_for(self, name: str) -> str:
        return self.api("POST", f"/users/{name}/tokens", json={"note": "edsgrade hub tests", "expires_in": 7200}).json()["token"]

    def start_server(self, name: str) -> None:
        r = self.http.post(f"{self.url}/hub/api/users/{name}/server", timeout=60)
        if r.status_code not in (201, 202, 400):  # 400: already running
            r.raise_for_status()

    def wait_ready(self, name: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.user(name).get("servers", {}).get("")
            if server and server.get("ready"):
                return
            time.sleep(1)
        raise TimeoutError(f"the server of {name} was not ready after {timeout:.0f} s")

    def stop_server(self, name: str) -> None:
        self.http.delete(f"{self.url}/hub/api/users/{name}/server", timeout=120)


@dataclass
class UserServer:
    """One user's single-user server, called with that user's own token."""

    url: str
    name: str
    token: str

    def _call(self, method: str, path: str, **kw) -> requests.Response:
        r = requests.request(method, f"{self.url}/user/{self.name}{path}",
                             headers={"Authorization": f"token {self.token}"}, timeout=300, **kw)
        r.raise_for_status()
        return r

    # nbgrader's assignment list (the endpoints its JupyterLab panel calls)
    def assignments(self, course: str = "eds") -> list[dict]:
        out = self._call("GET", "/assignments", params={"course_id": course}).json()
        assert out["success"], out
        return out["value"]

    def action(self, action: str, assignment: str, course: str = "eds") -> dict:
        return self._call("POST", f"/assignments/{action}", data={"course_id": course, "assignment_id": assignment}).json()

    # Jupyter's contents API
    def get(self, path: str, content: bool = True) -> dict:
        return self._call("GET", f"/api/contents/{path}", params={"content": int(content)}).json()

    def put_notebook(self, path: str, notebook: dict) -> dict:
        return self._call("PUT", f"/api/contents/{path}", json={"type": "notebook", "format": "json",
                                                                "content": notebook}).json()


@dataclass
class Formgrader:
    """The course service (nbgrader's formgrader as the grader account), called with an instructor's token."""

    url: str
    token: str
    service: str = "eds"

    def call(self, method: str, path: str, **kw) -> requests.Response:
        r = requests.request(method, f"{self.url}/services/{self.service}{path}",
                             headers={"Authorization": f"token {self.token}"}, timeout=300, **kw)
        r.raise_for_status()
        return r

    def post(self, path: str) -> dict:
        return self.call("POST", f"/formgrader/api{path}").json()
