"""nbgrader's filesystem exchange, with submissions that only their author and the course can read.

nbgrader's own submit leaves a submission world-readable, hidden only by a random folder name in an
inbound folder that students cannot list. :class:`PrivateSubmit` closes it: the inbound folder is
set-group-id with the grader account's group, so everything created in it belongs to that group;
the submission is copied without copying its folders' modes (which would drop the set-group-id
bit before nbgrader writes ``timestamp.txt``), then made readable by its author and that group only.
Students' servers use it through ``c.ExchangeFactory.submit`` (see ``edsgrade.hub.system``).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from nbgrader.exchange.default import ExchangeSubmit
from nbgrader.utils import ignore_patterns


def close_to_others(path: Path) -> None:
    """Folders ``rwxr-x---``, files ``rw-r-----`` under ``path``: the author and the folder's group only."""
    for folder, dirs, files in os.walk(path):
        for name in files:
            os.chmod(Path(folder) / name, 0o640)
        os.chmod(folder, 0o750)


def copy_into_group_folder(src: str, dest: str, ignore) -> None:
    """Copy the tree ``src`` to ``dest`` creating every folder afresh (so each inherits the group of
    the set-group-id parent) and copying file contents only; symbolic links are skipped."""
    os.mkdir(dest)
    names = os.listdir(src)
    skipped = ignore(src, names) if ignore else set()
    for name in names:
        s, d = os.path.join(src, name), os.path.join(dest, name)
        if name in skipped or os.path.islink(s):
            continue
        if os.path.isdir(s):
            copy_into_group_folder(s, d, ignore)
        else:
            shutil.copyfile(s, d)


class PrivateSubmit(ExchangeSubmit):
    """nbgrader's submit, with the submission closed to other students (see the module docstring)."""

    def do_copy(self, src, dest, log=None):  # noqa: D102 - nbgrader's interface
        if not os.path.abspath(dest).startswith(os.path.abspath(self.inbound_path) + os.sep):
            return super().do_copy(src, dest, log)  # the student's own cache copy
        if self.get_size(src) > 1000 * self.coursedir.max_dir_size:
            raise RuntimeError(f"Directory size is too big (maximum {1000 * self.coursedir.max_dir_size} bytes)")
        copy_into_group_folder(src, dest, ignore_patterns(exclude=self.coursedir.ignore, include=self.coursedir.include,
                                                          max_file_size=self.coursedir.max_file_size, log=self.log))

    def copy_files(self) -> None:
        super().copy_files()
        close_to_others(Path(self.inbound_path) / self.assignment_filename)
