"""nbgrader's filesystem exchange, with submissions that only their author and the course can read.

nbgrader's own submit leaves a submission world-readable, hidden only by a random folder name in an
inbound folder that students cannot list. :class:`PrivateSubmit` closes it: the inbound folder is
set-group-id with the grader account's group, so a submission belongs to that group, and it is made
readable by its author and that group only. Students' servers use it through
``c.ExchangeFactory.submit`` (see ``edsgrade.hub.system.student_nbgrader_config``).
"""
from __future__ import annotations

import os
from pathlib import Path

from nbgrader.exchange.default import ExchangeSubmit


def close_to_others(path: Path) -> None:
    """Folders ``rwxr-s---``, files ``rw-r-----`` under ``path``: the author and the course's group only."""
    for folder, dirs, files in os.walk(path):
        for name in files:
            os.chmod(Path(folder) / name, 0o640)
        os.chmod(folder, 0o2750)


class PrivateSubmit(ExchangeSubmit):
    """nbgrader's submit, then the submission is closed to other students (see module docstring)."""

    def copy_files(self) -> None:
        super().copy_files()
        close_to_others(Path(self.inbound_path) / self.assignment_filename)
