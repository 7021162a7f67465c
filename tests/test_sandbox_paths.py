"""What the sandbox mounts of the Python environment: its folders as resolved and as spelled."""
import os
import sys

from edsgrade.grading.sandbox import confinement as sandbox


def test_an_environment_reached_through_a_link_is_mounted_under_both_paths(tmp_path, monkeypatch):
    link = tmp_path / "venv"
    os.symlink(os.path.realpath(sys.prefix), link)
    monkeypatch.setattr(sys, "prefix", str(link))
    monkeypatch.setattr(sys, "exec_prefix", str(link))
    paths = sandbox.python_paths()
    assert str(link) in paths  # sys.path keeps the link's spelling: imports inside the jail go through it
    assert os.path.realpath(link) in paths or any(os.path.realpath(link).startswith(d + "/")
                                                  for d in sandbox.SYSTEM_DIRS)
