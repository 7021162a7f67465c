"""Unit tests of edsgrade.exchange.safecopy: only regular files are copied, every refusal is said, bounds hold."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from edsgrade.exchange.safecopy import CopyLimits, CopyReport, Refusal, UnsafeFile, copy_tree, read_regular, scan_tree

SECRET = "TOP-SECRET-LINE\n"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret" / "master.ipynb"
    path.parent.mkdir()
    path.write_text(SECRET)
    return path


def tree_text(root: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in root.rglob("*") if p.is_file())


def reasons(refusals: list[Refusal]) -> dict[str, str]:
    return {r.path: r.reason for r in refusals}


def test_regular_files_and_folders_are_copied_with_contents(tmp_path):
    src = tmp_path / "src"
    (src / "data" / "sub").mkdir(parents=True)
    (src / "nb.ipynb").write_text("{}")
    (src / "data" / "x.csv").write_bytes(b"a,b\n1,2\n")
    (src / "data" / "sub" / "empty").write_bytes(b"")
    report = CopyReport()
    assert copy_tree(src, tmp_path / "dest", report=report) == []
    assert (tmp_path / "dest" / "data" / "x.csv").read_bytes() == b"a,b\n1,2\n"
    assert (tmp_path / "dest" / "data" / "sub" / "empty").read_bytes() == b""
    assert report.files == 3 and report.folders == 2 and report.bytes == len(b"{}a,b\n1,2\n")
    assert report.latest_change >= os.stat(src / "data" / "x.csv").st_ctime


def test_links_devices_fifos_sockets_and_hard_links_are_refused(tmp_path, secret):
    import socket

    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "ok.txt").write_text("mine")
    (src / "data" / "x.csv").symlink_to(secret)
    (src / "linkdir").symlink_to(secret.parent, target_is_directory=True)
    (src / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(src / "pipe")
    os.link(secret, src / "hard.ipynb")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "sock"))
    if os.geteuid() == 0:
        os.mknod(src / "null", 0o600 | 0o020000, os.makedev(1, 3))
    dest = tmp_path / "dest"
    start = time.monotonic()
    refused = copy_tree(src, dest)
    assert time.monotonic() - start < 5  # the FIFO never blocks
    sock.close()
    got = reasons(refused)
    assert got["data/x.csv"] == "is a link" and got["linkdir"] == "is a link" and got["dangling"] == "is a link"
    assert got["pipe"] == "is a named pipe" and got["sock"] == "is a socket"
    assert got["hard.ipynb"].startswith("is a hard link")
    if os.geteuid() == 0:
        assert got["null"] == "is a device"
    assert str(next(r for r in refused if r.path == "data/x.csv")) == "`data/x.csv` is a link: not collected"
    assert SECRET.strip() not in tree_text(dest)
    assert sorted(p.name for p in dest.rglob("*")) == ["data", "ok.txt"]
    assert not any(p.is_symlink() for p in dest.rglob("*"))


def test_the_copied_folder_itself_being_a_link_copies_nothing(tmp_path, secret):
    (tmp_path / "sub").symlink_to(secret.parent, target_is_directory=True)
    refused = copy_tree(tmp_path / "sub", tmp_path / "dest", verb="submitted")
    assert [str(r) for r in refused] == ["`.` is a link: not submitted"]
    assert not (tmp_path / "dest").exists() or not any((tmp_path / "dest").iterdir())


def test_a_link_swapped_in_during_the_copy_is_never_followed(tmp_path, secret):
    """A racing process replaces files by links to the secret, over and over, while copies run."""
    src = tmp_path / "src"
    src.mkdir()
    names = [f"f{i}.txt" for i in range(50)]
    for n in names:
        (src / n).write_text("mine\n")
    stop = threading.Event()

    def swap():
        while not stop.is_set():
            for n in names:
                tmp = src / f".{n}.tmp"
                try:
                    tmp.symlink_to(secret)
                    os.replace(tmp, src / n)
                    (src / f".{n}.w").write_text("mine\n")
                    os.replace(src / f".{n}.w", src / n)
                except OSError:
                    pass

    racer = threading.Thread(target=swap)
    racer.start()
    try:
        for i in range(20):
            dest = tmp_path / f"dest{i}"
            copy_tree(src, dest)
            assert SECRET.strip() not in tree_text(dest)
            assert not any(p.is_symlink() for p in dest.rglob("*"))
    finally:
        stop.set()
        racer.join()


def test_count_total_size_file_size_depth_and_names_are_bounded(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(30):
        (src / f"f{i:02d}").write_bytes(b"x" * 10)
    (src / "big").write_bytes(b"y" * 200)
    (src / ("n" * 300)[:250]).write_text("long but fine")
    refused = copy_tree(src, tmp_path / "d1", limits=CopyLimits(max_files=10))
    assert len(list((tmp_path / "d1").iterdir())) == 10
    assert len(refused) == 1 and "past the limit of 10" in refused[0].reason
    refused = copy_tree(src, tmp_path / "d2", limits=CopyLimits(max_file_bytes=100, max_bytes=150))
    got = reasons(refused)
    assert got["big"].startswith("is larger than")
    assert sum(p.stat().st_size for p in (tmp_path / "d2").iterdir()) <= 150
    assert any("past its total" in r for r in got.values())
    refused = copy_tree(src, tmp_path / "d3", limits=CopyLimits(max_name=100))
    assert reasons(refused)[("n" * 250)] == "has a name longer than 100 bytes"


def test_a_very_deep_tree_and_many_files_end_with_a_refusal_not_an_error(tmp_path):
    src = tmp_path / "src"
    deep = src
    for _ in range(400):  # far deeper than the limit: the walk stops there, whatever the depth
        deep = deep / "d"
    os.makedirs(deep)
    (deep / "bottom.txt").write_text("deep")
    wide = src / "wide"
    wide.mkdir()
    for i in range(3000):
        (wide / f"{i}").touch()
    start = time.monotonic()
    refused = copy_tree(src, tmp_path / "dest", limits=CopyLimits(max_files=2000, max_depth=16))
    assert time.monotonic() - start < 30
    assert any("nested more than 16" in r.reason for r in refused) or any("past the limit" in r.reason for r in refused)
    depth = max(len(p.relative_to(tmp_path / "dest").parts) for p in (tmp_path / "dest").rglob("*"))
    assert depth <= 16
    assert len(list((tmp_path / "dest").rglob("*"))) <= 2000


def test_odd_names_are_refused_and_shown_escaped(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "line\nbreak.txt").write_text("x")
    os.close(os.open(os.fsencode(src) + b"/bad\xff.txt", os.O_CREAT | os.O_WRONLY, 0o644))
    (src / "ok é.txt").write_text("fine")
    refused = copy_tree(src, tmp_path / "dest")
    got = reasons(refused)
    assert got["line\\x0abreak.txt"] == "has a name with control characters"
    assert got["bad\\xff.txt"] == "has a name that is not UTF-8 text"
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["ok é.txt"]
    for r in refused:
        str(r).encode("utf-8")  # printable anywhere


def test_expect_uid_refuses_what_another_user_owns(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "mine.txt").write_text("mine")
    (src / "theirs.txt").write_text("theirs")
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    os.chown(src / "theirs.txt", 12345, 12345)
    refused = copy_tree(src, tmp_path / "dest", expect_uid=os.geteuid())
    assert reasons(refused) == {"theirs.txt": "is owned by another user (uid 12345)"}
    assert [p.name for p in (tmp_path / "dest").iterdir()] == ["mine.txt"]
    assert [r.path for r in copy_tree(src, tmp_path / "d2", expect_uid=12345)] == ["."]


def test_ignore_patterns_and_functions_leave_entries_out_silently(tmp_path):
    src = tmp_path / "src"
    (src / "__pycache__").mkdir(parents=True)
    (src / "__pycache__" / "a.pyc").write_text("x")
    (src / "keep.py").write_text("x")
    (src / "drop.tmp").write_text("x")
    assert copy_tree(src, tmp_path / "d1", ignore=["__pycache__", "*.tmp"]) == []
    assert [p.name for p in (tmp_path / "d1").iterdir()] == ["keep.py"]
    assert copy_tree(src, tmp_path / "d2", ignore=lambda rel: rel.startswith("__pycache__")) == []
    assert sorted(p.name for p in (tmp_path / "d2").iterdir()) == ["drop.tmp", "keep.py"]


def test_many_refusals_are_summarised(tmp_path, secret):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(50):
        (src / f"l{i:02d}").symlink_to(secret)
    refused = copy_tree(src, tmp_path / "dest", limits=CopyLimits(max_refusals=5))
    assert len(refused) == 6 and refused[-1].reason == "and 45 more entries were refused"


def test_scan_tree_reports_without_copying(tmp_path, secret):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("abc")
    (src / "l").symlink_to(secret)
    report = scan_tree(src)
    assert report.files == 1 and report.bytes == 3 and [r.path for r in report.refusals] == ["l"]
    assert report.latest_change >= os.lstat(src / "l").st_ctime


def test_read_regular_refuses_links_fifos_and_large_files(tmp_path, secret):
    (tmp_path / "ok").write_text("fine")
    assert read_regular(tmp_path / "ok", 100) == b"fine"
    (tmp_path / "link").symlink_to(secret)
    with pytest.raises(UnsafeFile, match="is a link"):
        read_regular(tmp_path / "link", 100)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UnsafeFile, match="named pipe"):
        read_regular(tmp_path / "fifo", 100)
    with pytest.raises(UnsafeFile, match="larger than 2 bytes"):
        read_regular(tmp_path / "ok", 2)
