"""JupyterHub's configuration for a class in a box (make class; rnngrading.classbox).

rnngrading.classbox copies this file into CLASS_DIR/hub/ and starts JupyterHub with it as
root; RNNCOURSE_CLASS names the class's class.json (roster, ports, folders), which classbox
writes. Everything a class needs beyond JupyterHub itself is outside this file: the
environment every user runs (CLASS_DIR/env), nbgrader's exchange (CLASS_DIR/exchange) and
the Jupyter config dirs that switch formgrader on for the instructor and off for students
(CLASS_DIR/jupyter, put on JUPYTER_CONFIG_PATH below).

On a university's hub, the two blocks marked "swap" change and the rest stays:
- authenticator: PAM against this machine's accounts here; there, LDAP
  (jupyterhub-ldapauthenticator), OAuth/OIDC (oauthenticator) or LTI from the LMS
  (ltiauthenticator), with the same allowed_users / admin_users or groups;
- spawner: one local process per user here (LocalProcessSpawner, as that system user);
  there, systemdspawner, DockerSpawner or KubeSpawner running the same environment, with
  the exchange on a shared volume and the config dirs mounted read-only.
"""

import json
import os
import pwd

c = get_config()  # noqa: F821 (injected by traitlets)
cls = json.load(open(os.environ["RNNCOURSE_CLASS"]))
here = os.path.dirname(os.path.abspath(__file__))

# ---- the hub, its proxy and its state: localhost only
c.JupyterHub.bind_url = f"http://127.0.0.1:{cls['port']}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{cls['hub_port']}"
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{cls['proxy_api_port']}"
c.ConfigurableHTTPProxy.command = [cls["proxy"]]
c.ConfigurableHTTPProxy.pid_file = os.path.join(here, "jupyterhub-proxy.pid")
c.JupyterHub.pid_file = os.path.join(here, "jupyterhub.pid")
c.JupyterHub.db_url = "sqlite:///" + os.path.join(here, "jupyterhub.sqlite")
c.JupyterHub.cookie_secret_file = os.path.join(here, "jupyterhub_cookie_secret")
c.JupyterHub.cleanup_servers = True  # a stopped hub stops every user's server
c.JupyterHub.cleanup_proxy = True

# ---- swap: who may log in (PAM: this machine's accounts and their passwords)
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = {cls["instructor"], *cls["students"]}
c.Authenticator.admin_users = {cls["instructor"]}

# ---- swap: how each user's server runs (a local process as that user)
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [os.path.join(cls["env"], "bin", "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def per_role(spawner):
    """The instructor's server gets formgrader and the course; a student's does not."""
    role = "instructor" if spawner.user.name == cls["instructor"] else "student"
    spawner.environment.update({
        "PATH": os.path.join(cls["env"], "bin") + ":" + SYSTEM_PATH,
        "JUPYTER_CONFIG_PATH": os.pathsep.join(
            os.path.join(cls["jupyter"], d) for d in (role, "common")),
        "RNNCOURSE_EXCHANGE": cls["exchange"],
        "LANG": "C.UTF-8",
    })
    if role == "instructor":
        home = pwd.getpwnam(spawner.user.name).pw_dir
        spawner.environment["RNNCOURSE_COURSE"] = os.path.join(home, "course")


c.Spawner.pre_spawn_hook = per_role
