"""Shared-password login for the demo hub and the tests (a real JupyterHub authenticator).

Every valid user name with the course's shared password logs in; a name seen for the first time
becomes a system user (``useradd``, a private home). Instructors join the groups ``formgrade-eds``
and ``instructors`` (roles ``formgrade-eds`` and ``admin``), everyone else ``nbgrader-eds`` (role
``nbgrader-eds``). A real course replaces this class by its single
sign-on (see ``docker/README.md``) and keeps the rest of the configuration.
"""
from __future__ import annotations

import hmac
import re

from jupyterhub.auth import LocalAuthenticator
from traitlets import List, Unicode

#: system user names this authenticator accepts (Debian's useradd accepts more, students need no more)
VALID_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")


class SharedPasswordAuthenticator(LocalAuthenticator):
    """Log in with any valid user name and the course's shared password; groups from the course roles."""

    shared_password = Unicode(help="The password every user types (demo and tests only).").tag(config=True)
    instructors = List(Unicode(), help="User names of the instructors.").tag(config=True)
    course_id = Unicode("eds", help="nbgrader course id (groups nbgrader-ID and formgrade-ID).").tag(config=True)
    name_prefix = Unicode("", help="Only user names starting with it may log in.").tag(config=True)

    def groups_of(self, username: str) -> list[str]:
        """The hub groups of ``username``: the course's grader or student group."""
        if username in self.instructors:
            return ["instructors", f"formgrade-{self.course_id}"]
        return [f"nbgrader-{self.course_id}"]

    async def authenticate(self, handler, data):  # noqa: D102 - JupyterHub's interface
        username = self.normalize_username((data or {}).get("username", "").strip())
        password = (data or {}).get("password", "")
        if not self.shared_password:
            self.log.error("SharedPasswordAuthenticator has no shared_password: nobody can log in")
            return None
        if not VALID_NAME.match(username) or not username.startswith(self.name_prefix):
            self.log.warning("refused user name %r (lower-case letters, digits, '-' or '_', starting "
                             "with a letter%s)", username,
                             f", and with {self.name_prefix!r}" if self.name_prefix else "")
            return None
        if not hmac.compare_digest(password.encode(), self.shared_password.encode()):
            return None
        return {"name": username, "groups": self.groups_of(username)}


def course_roles(course_id: str) -> list[dict]:
    """The course's roles, bound to nbgrader's groups: graders open the course service (formgrader),
    students only see it listed. Static roles (``load_roles``), not roles managed by the
    authenticator: JupyterHub 6.1 fails to restart with managed role assignments in its database."""
    return [
        {"name": f"formgrade-{course_id}", "description": "graders of the course", "groups": [f"formgrade-{course_id}"],
         "scopes": [f"access:services!service={course_id}", f"read:services!service={course_id}", "list:services"]},
        {"name": f"nbgrader-{course_id}", "description": "students of the course", "groups": [f"nbgrader-{course_id}"],
         "scopes": [f"read:services!service={course_id}", "list:services"]},
    ]
