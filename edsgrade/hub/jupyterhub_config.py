"""JupyterHub configuration of the course hub (loaded by ``jupyterhub -f``; see ``edsgrade hub``).

The launcher writes the hub's settings to a JSON file and names it in ``EDSGRADE_HUB_SETTINGS``; this
file turns them into JupyterHub's configuration. A site adds its own (e.g. single sign-on, see
docker/README.md) with ``edsgrade hub --config site_config.py``, loaded last.
"""
import shutil
from pathlib import Path

import edsgrade
from edsgrade.hub.auth import SharedPasswordAuthenticator, course_roles
from edsgrade.hub.settings import HubSettings

c = get_config()  # noqa: F821 - provided by JupyterHub
s = HubSettings.load()
hub_dir = s.hub_dir
bindir = Path(s.python).parent
singleuser = str(bindir / "jupyterhub-singleuser")
path = f"{bindir}:/usr/local/bin:/usr/bin:/bin"
# The students' servers and the course service import the edsgrade that configured this hub (the
# checkout's own when the hub runs from one; its exchange classes are the ones configured below),
# never another copy installed in the single-user environment, as the sandbox does.
package_root = str(Path(edsgrade.__file__).resolve().parents[1])

# ---- the hub and its proxy ----------------------------------------------------------------
c.JupyterHub.ip = s.ip
c.JupyterHub.port = s.port
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = s.hub_port
c.JupyterHub.db_url = f"sqlite:///{hub_dir / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(hub_dir / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{s.proxy_api_port}"
c.ConfigurableHTTPProxy.command = [shutil.which("configurable-http-proxy") or "configurable-http-proxy"]
c.ConfigurableHTTPProxy.pid_file = str(hub_dir / "proxy.pid")
c.JupyterHub.cleanup_servers = True   # stopping the hub stops every single-user server
c.JupyterHub.cleanup_proxy = True

# ---- who logs in: shared password (demo, tests); SSO sites override authenticator_class ---------
c.JupyterHub.authenticator_class = SharedPasswordAuthenticator
c.SharedPasswordAuthenticator.shared_password = s.password or ""
c.SharedPasswordAuthenticator.instructors = s.instructors
c.SharedPasswordAuthenticator.course_id = s.course_id
c.SharedPasswordAuthenticator.name_prefix = s.user_prefix
c.Authenticator.allow_all = True           # the password (or the SSO) is the gate
c.Authenticator.admin_users = set(s.instructors)
c.Authenticator.manage_groups = True       # groups come from the authenticator at each login
c.LocalAuthenticator.create_system_users = True
c.LocalAuthenticator.add_user_cmd = ["useradd", "--create-home", "--shell", "/bin/bash", "-K", "HOME_MODE=0700",
                                     "--comment", "edsgrade hub user"]

# ---- one server per user, as that user, in their home ---------------------------------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [singleuser]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 240
c.Spawner.http_timeout = 240
c.Spawner.environment = {"PATH": path, "PYTHONPATH": package_root}


def use_role_config(spawner):
    """Students' servers get the student configuration (assignment list only, private submissions);
    instructors' the instructor one (course list with the link to the formgrader)."""
    groups = {g.name for g in spawner.user.groups}
    role = "instructor" if s.grader_group in groups else "student"
    spawner.environment["JUPYTER_CONFIG_PATH"] = str(s.jupyter_config_dir(role))
    spawner.environment["EDSGRADE_HUB_ROLE"] = role


c.Spawner.pre_spawn_hook = use_role_config

# ---- the course: groups, roles and the grader's service (nbgrader's JupyterHub set-up) ------
# Groups come from the authenticator at each login (manage_groups): the groups nbgrader knows
# (nbgrader-eds: students, formgrade-eds: graders), each bound to a role of the same name
# (auth.course_roles). A single-user server may do what its user may do.
roles = [
    {"name": "server", "scopes": ["inherit"]},
    *course_roles(s.course_id),
]
c.JupyterHub.services = [{
    "name": s.course_id,
    "url": f"http://127.0.0.1:{s.service_port}",
    "command": [singleuser, f"--ServerApp.root_dir={s.course_dir}", "--ServerApp.default_url=/formgrader"],
    "user": s.grader_user,
    "cwd": s.course_dir,
    "oauth_no_confirm": True,
    "environment": {"PATH": path, "PYTHONPATH": package_root, "EDSGRADE_EXCHANGE": s.exchange_root,
                    "HOME": str(Path(s.state_dir) / s.grader_user)},
}]
if s.admin_token:   # an API token with admin rights (tests, scripts); never needed to use the hub
    c.JupyterHub.services.append({"name": "edsgrade-admin", "api_token": s.admin_token})
    roles.append({"name": "edsgrade-admin", "services": ["edsgrade-admin"],
                  "scopes": ["admin:users", "admin:servers", "tokens", "admin:groups", "access:servers",
                             "access:services", "list:services"]})
c.JupyterHub.load_roles = roles

if s.extra_config:
    load_subconfig(s.extra_config)  # noqa: F821 - provided by JupyterHub
