"""The course on JupyterHub: configuration, system set-up and launcher of ``edsgrade hub``.

One server, the way a department runs it (like The Littlest JupyterHub): JupyterHub as root,
configurable-http-proxy, ``LocalProcessSpawner`` with one system user per student (created on first
login), JupyterLab with nbgrader's assignment list, and the course service ``eds`` (nbgrader's
formgrader, run as the grader account that owns the course directory).

Modules: :mod:`.settings` (what a hub needs to know), :mod:`.auth` (shared-password login),
:mod:`.exchange` (a student submits, and is collected, only under her own name), :mod:`.system` (users, groups, folders,
permissions), :mod:`.launcher` (start and stop), :mod:`.grading` (grade and return feedback on the
hub), and ``jupyterhub_config.py`` (the file JupyterHub loads).
"""
