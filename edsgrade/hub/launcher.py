"""Start and stop the course hub: ``edsgrade hub`` (foreground) and :class:`HubProcess` (tests)."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from edsgrade.hub import system
from edsgrade.hub.password import PASSWORD_ENV
from edsgrade.hub.settings import SETTINGS_ENV, HubSettings

CONFIG_FILE = Path(__file__).with_name("jupyterhub_config.py")


def check_proxy() -> str:
    """The configurable-http-proxy command, or a clear error saying how to install it."""
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise system.HubSetupError("configurable-http-proxy is not installed: `npm install -g "
                                   "configurable-http-proxy` (needs Node.js: `apt-get install -y nodejs npm`), "
                                   "or run `make hub`, which does it.")
    return found


def hub_environment(settings: HubSettings, settings_file: Path) -> dict[str, str]:
    """The environment JupyterHub starts with: this one, with the settings file named, the single-user
    environment first on ``PATH``, and without the shared password (the hub reads it from the
    root-only settings file: see :mod:`.password`)."""
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    env[SETTINGS_ENV] = str(settings_file)
    env["PATH"] = f"{Path(settings.python).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


class HubProcess:
    """A running JupyterHub for the course: :meth:`start` prepares the machine and waits until the
    hub answers; :meth:`stop` stops it, which stops the proxy and every single-user server.

    Example
    -------
    >>> hub = HubProcess(HubSettings(password="demo"), repo=Path("."))   # doctest: +SKIP
    >>> hub.start(); ...; hub.stop()                                      # doctest: +SKIP
    """

    def __init__(self, settings: HubSettings, repo: Path, log: Path | None = None) -> None:
        self.settings = settings
        self.repo = Path(repo)
        self.log_path = log
        self.proc: subprocess.Popen | None = None

    def prepare(self) -> Path:
        """Check the machine and lay out accounts and folders; return the settings file."""
        system.require_root()
        check_proxy()
        system.check_singleuser_python(self.settings.python)
        system.prepare(self.settings, self.repo)
        return self.settings.save()

    def start(self, timeout: float = 120) -> None:
        settings_file = self.prepare()
        env = hub_environment(self.settings, settings_file)
        out = open(self.log_path, "ab") if self.log_path else None
        hub = Path(self.settings.python).parent / "jupyterhub"
        self.proc = subprocess.Popen([str(hub), "-f", str(CONFIG_FILE)], cwd=self.settings.hub_dir, env=env,
                                     stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise system.HubSetupError(f"JupyterHub exited with code {self.proc.returncode}"
                                           + (f": see {self.log_path}" if self.log_path else ""))
            try:
                with urllib.request.urlopen(f"{self.settings.url}/hub/api/", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise system.HubSetupError(f"JupyterHub did not answer at {self.settings.url} within {timeout:.0f} s"
                                   + (f": see {self.log_path}" if self.log_path else ""))

    def stop(self, timeout: float = 60) -> None:
        """Stop the hub (it stops the single-user servers, the service and the proxy), then make sure
        nothing of it is left: the proxy's pid file is checked and a stuck hub is killed."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.stop_proxy()
        self.proc = None

    def stop_proxy(self) -> None:
        """Stop the proxy the hub started, if it is still running (a hub that failed or was killed
        leaves it behind, holding its ports)."""
        pid_file = self.settings.hub_dir / "proxy.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
            pid_file.unlink(missing_ok=True)


def run_hub(settings: HubSettings, repo: Path) -> int:
    """``edsgrade hub``: start the hub in the foreground, its log on the terminal, until Ctrl-C."""
    hub = HubProcess(settings, repo)
    settings_file = hub.prepare()
    env = hub_environment(settings, settings_file)
    jupyterhub = Path(settings.python).parent / "jupyterhub"
    print(f"course hub at {settings.url} (course directory {settings.course_dir}, exchange {settings.exchange_root})",
          file=sys.stderr, flush=True)
    try:
        return subprocess.call([str(jupyterhub), "-f", str(CONFIG_FILE)], cwd=settings.hub_dir, env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        hub.stop_proxy()
