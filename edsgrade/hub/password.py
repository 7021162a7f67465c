"""Where ``edsgrade hub`` gets the shared password from, without it ever being on a command line.

A command line is public on Linux: every user (every student's server, every sandboxed submission
that can see the host's ``/proc``) reads ``/proc/PID/cmdline`` of every process. So the password
comes from the environment (``EDSGRADE_HUB_PASSWORD``; ``/proc/PID/environ`` is readable by the
process's owner only) or from a file only its owner can read (``--password-file``, mode 0600), and
``--password`` is refused. From there it goes into the hub's settings file (root only, 0600, in a
0700 folder), which ``jupyterhub_config.py`` reads: it is never passed to a child process's argv, and
never put in a single-user server's or the course service's environment.
"""
from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from edsgrade.hub.system import HubSetupError

#: environment variable holding the shared password
PASSWORD_ENV = "EDSGRADE_HUB_PASSWORD"
#: a password file larger than this is not a password file
MAX_PASSWORD_BYTES = 4096


class PasswordError(HubSetupError):
    """The shared password was given in a way that would leak it; the message says what to do."""


@dataclass(frozen=True)
class HubPassword:
    """The shared password and where it came from (``"random"``, ``"$EDSGRADE_HUB_PASSWORD"`` or the file)."""

    value: str
    source: str


def read_password_file(path: str | Path) -> str:
    """The password stored in ``path`` (first line, without its line end).

    Refused when ``path`` is not a regular file (a link is not followed), when its group or others can
    read or write it (``chmod 600``), when it is owned by someone other than the caller (or root), or when
    it is empty or too large.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PasswordError(f"the password file {path} does not exist: write the password into it and "
                            f"`chmod 600 {path}`.") from None
    except OSError as exc:
        raise PasswordError(f"cannot open the password file {path} ({exc.strerror}; a symbolic link is not "
                            "followed): give the path of a regular file, mode 0600.") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PasswordError(f"the password file {path} is not a regular file: give a regular file, mode 0600.")
        if info.st_mode & 0o077:
            raise PasswordError(f"the password file {path} can be read or written by other users (mode "
                                f"{stat.S_IMODE(info.st_mode):04o}): run `chmod 600 {path}` and start again.")
        if info.st_uid not in (0, os.geteuid()):
            raise PasswordError(f"the password file {path} belongs to another user (uid {info.st_uid}): "
                                f"`chown root {path}` (or write your own), then `chmod 600 {path}`.")
        data = os.read(fd, MAX_PASSWORD_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_PASSWORD_BYTES:
        raise PasswordError(f"the password file {path} is larger than {MAX_PASSWORD_BYTES} bytes: it should "
                            "hold the password alone, on one line.")
    lines = data.decode("utf-8", errors="strict").splitlines()
    value = lines[0].strip() if lines else ""
    if not value:
        raise PasswordError(f"the password file {path} is empty: write the password on its first line.")
    return value


def hub_password(password_file: str | Path | None = None, *, refused_argv: str | None = None,
                 environ: dict[str, str] | None = None) -> HubPassword:
    """The hub's shared password: from ``password_file``, else ``$EDSGRADE_HUB_PASSWORD``, else a new random one.

    ``refused_argv`` is what was given with the removed ``--password`` option: anything there is refused
    (a command line is readable by every user of the machine), with a message that says what to use.
    """
    if refused_argv is not None:
        raise PasswordError("--password is refused: a command line is readable by every user of the machine "
                            "(/proc/PID/cmdline). Put the password in the environment "
                            f"(`sudo {PASSWORD_ENV}=... edsgrade hub`) or in a file only root reads "
                            "(`--password-file PATH` after `chmod 600 PATH`).")
    environ = os.environ if environ is None else environ
    if password_file:
        return HubPassword(read_password_file(password_file), str(password_file))
    if environ.get(PASSWORD_ENV):
        return HubPassword(environ[PASSWORD_ENV], f"${PASSWORD_ENV}")
    return HubPassword(secrets.token_urlsafe(9), "random")
