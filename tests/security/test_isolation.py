"""A sandbox that shares nothing with the next one or the host (issue 12, part 3), graded for real as root.

One course (``arena``, see ``tests/arena.py``), two grading runs among honest submissions:

- ``run1`` (one worker, so one slot, one submission after the other): a submission leaves state in
  every IPC kind, the keyring and the temporary folders, and the next one looks for it; one looks at
  ``/proc``; one tries the system calls the seccomp filter denies (and a 32-bit ``int 0x80``); one
  uses the heavy libraries under the filter; one fills its disk; one leaves a very deep, wide,
  unremovable tree behind.
- ``run2`` (two workers): a fork bomb and three memory hogs (many processes, ``/dev/shm``, SysV
  shared memory) against a 2 GiB limit, next to honest submissions graded at the same time.

Each hostile submission answers ``total`` wrongly unless it finds another submission's state, and does
not define ``double``: it may score at most the 1 point of the public check on ``total``.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import nbformat
import pytest

import arena
from edsgrade.course import Course
from edsgrade.gradebook.store import read_grades
from conftest import slot_user_pids
from edsgrade.grading.sandbox import cgroups, confinement as sandbox
from edsgrade.grading.autograde import grade_run

pytestmark = pytest.mark.skipif(not sandbox.can_confine(), reason="the sandbox needs root (CI runs as root)")

SECRET = "edsgrade-test-secret-7d1c"
KEY = 0x5EED7D1C  # SysV key of the state the writer leaves
WRONG = {"a2": "pass"}
HONEST = {"a1": arena.HONEST_TOTAL, "a2": arena.HONEST_DOUBLE}
GiB = 1 << 30
SLOT = 50  # the grading slot run1 uses for every submission

LIBC = "import ctypes, os, errno\nlibc = ctypes.CDLL(None, use_errno=True)\n"

# Leaves the right answer in every place a later submission in the same slot could read it.
WRITER = LIBC + f"""
import socket, time, mmap
answer = float(np.loadtxt('data/values.txt').sum())
blob = repr(answer).encode()
said = {{}}
shm = libc.shmget({KEY}, 4096, 0o1666)
said['shm'] = shm
if shm >= 0:
    libc.shmat.restype = ctypes.c_void_p
    addr = libc.shmat(shm, None, 0)
    ctypes.memmove(addr, blob, len(blob))
said['msg'] = libc.msgget({KEY}, 0o1666)
if said['msg'] >= 0:
    buf = ctypes.create_string_buffer(8 + len(blob)); ctypes.memmove(ctypes.addressof(buf) + 8, blob, len(blob))
    ctypes.c_long.from_buffer(buf).value = 1
    libc.msgsnd(said['msg'], buf, len(blob), 0)
said['sem'] = libc.semget({KEY}, 1, 0o1666)
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
said['mq'] = libc.mq_open(b'/edsgrade-leak', os.O_CREAT | os.O_RDWR, 0o666, None)
if said['mq'] >= 0:
    libc.mq_send(said['mq'], blob, len(blob), 0)
key = libc.syscall(248, b'user', b'edsgrade-leak', blob, len(blob), -4)  # add_key to the user keyring
said['add_key'] = (key, ctypes.get_errno())
for path in ['/tmp/edsgrade-leak', '/var/tmp/edsgrade-leak', '/dev/shm/edsgrade-leak',
             os.path.expanduser('~/edsgrade-leak')]:
    try:
        open(path, 'w').write(repr(answer))
    except OSError as exc:
        said[path] = str(exc)
if os.fork() == 0:  # a daemon holding an abstract socket, to serve the answer to the next one
    os.setsid()
    srv = socket.socket(socket.AF_UNIX)
    srv.bind('\\0edsgrade-leak')
    srv.listen(1)
    while True:
        conn, _ = srv.accept()
        conn.send(blob)
        conn.close()
time.sleep(0.5)
print('WRITER', said)
print('UID', os.getuid())
total = 0.0
"""

# Looks for the writer's state everywhere; answers with what it finds.
READER = LIBC + f"""
import socket
found = {{}}
if libc.shmget({KEY}, 0, 0) >= 0: found['shm'] = 1
if libc.msgget({KEY}, 0) >= 0: found['msg'] = 1
if libc.semget({KEY}, 0, 0) >= 0: found['sem'] = 1
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int]
if libc.mq_open(b'/edsgrade-leak', os.O_RDONLY) >= 0: found['mq'] = 1
for path in ['/tmp/edsgrade-leak', '/var/tmp/edsgrade-leak', '/dev/shm/edsgrade-leak',
             os.path.expanduser('~/edsgrade-leak')]:
    if os.path.exists(path): found[path] = open(path).read()
try:
    c = socket.socket(socket.AF_UNIX); c.settimeout(1); c.connect('\\0edsgrade-leak'); found['abstract'] = c.recv(64)
except OSError:
    pass
if libc.syscall(250, 10, b'user', b'edsgrade-leak', 0) >= 0: found['key'] = 1  # KEYCTL_SEARCH, session keyring
print('READER', sorted(found), os.getuid(), os.uname().nodename)
print('UID', os.getuid())
total = float(list(found.values())[0]) if found and not isinstance(list(found.values())[0], int) else 0.0
"""

PROC = f"""import os, json
seen = {{}}
for pid in [p for p in os.listdir('/proc') if p.isdigit()]:
    try:
        seen[pid] = open(f'/proc/{{pid}}/cmdline', 'rb').read().replace(b'\\0', b' ').decode()
    except OSError as exc:
        seen[pid] = 'unreadable'
print('PROC', json.dumps({{'pids': seen, 'me': os.getpid(), 'mounts': open('/proc/self/mountinfo').read(),
                          'host': os.uname().nodename}}))
total = 0.0
"""

SYSCALLS = LIBC + """import mmap, json
out = {}
def call(name, nr, *args):
    r = libc.syscall(nr, *args)
    out[name] = 'ok' if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
call('ptrace', 101, 0, 0, 0, 0)                    # PTRACE_TRACEME
call('unshare_user', 272, 0x10000000)              # CLONE_NEWUSER: allowed unprivileged without the filter
call('unshare_net', 272, 0x40000000)
call('setns', 308, 0, 0)
call('keyctl', 250, 0, -3, 0)                      # KEYCTL_GET_KEYRING_ID of the session keyring
call('add_key', 248, b'user', b'k', b'v', 1, -3)
call('bpf', 321, 0, 0, 0)
call('perf_event_open', 298, 0, 0, -1, -1, 0)
call('io_uring_setup', 425, 1, 0)
call('userfaultfd', 323, 0)
call('mount', 165, b'none', b'/tmp', b'tmpfs', 0, 0)
call('personality', 135, 0x0040000)                # ADDR_NO_RANDOMIZE
call('clone_newpid', 56, 0x20000000 | 17, 0, 0, 0, 0)
call('clone3', 435, 0, 0)
call('x32_getpid', 0x40000000 | 39)
code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])  # mov eax, 20 (ia32 getpid); int 0x80; ret
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
r = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))()
out['int80_getpid'] = 'ok' if r > 0 else errno.errorcode.get(-r, str(r))
import subprocess, threading
out['subprocess'] = subprocess.run(['echo', 'hi'], capture_output=True, text=True).stdout.strip()
print('SYSCALLS', json.dumps(out))
total = 0.0
"""

LIBRARIES = """import json, os
out = {}
import sklearn.linear_model, numpy as np
out['sklearn'] = float(sklearn.linear_model.LinearRegression().fit([[0], [1], [2]], [1, 3, 5]).coef_[0])
import matplotlib.pyplot as plt
plt.plot([1, 2, 3]); plt.savefig('plot.png'); out['matplotlib'] = os.path.getsize('plot.png') > 0
from obspy import UTCDateTime
out['obspy'] = str(UTCDateTime(2020, 1, 1))
import torch
out['torch'] = float(torch.tensor([1.0, 2.0]).sum())
from concurrent.futures import ProcessPoolExecutor
with ProcessPoolExecutor(2) as pool:
    out['processes'] = list(pool.map(abs, [-1, -2]))
print('LIBRARIES', json.dumps(out))
"""

DISK = """import os
written = 0
for i in range(64):
    try:
        with open(f'fill{i}.bin', 'wb') as fh:
            for _ in range(8):
                fh.write(b'x' * (16 << 20))
                written += 16 << 20
    except OSError as exc:
        print('DISK', written >> 20, exc.errno)
        break
try:
    for i in range(5):  # 5 x 128 MiB (each under the file-size limit) > 512 MiB of /tmp
        with open(f'/tmp/fill{i}.bin', 'wb') as fh:
            for _ in range(8):
                fh.write(b'y' * (16 << 20))
except OSError as exc:
    print('TMP', exc.errno)
total = 0.0
"""

TREE = """import os
base = os.getcwd()
os.mkdir('deep'); os.chdir('deep')
for i in range(3000):
    os.mkdir('d'); os.chdir('d')
os.chdir(base)
os.mkdir('wide')
for i in range(20000):
    open(f'wide/{i}', 'w').close()
for folder in ('deep', 'wide'):
    os.chmod(folder, 0)
print('TREE done')
total = 0.0
"""

HOG_CHILDREN = """import os, time
kids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        blob = bytearray(3 << 29)  # 1.5 GiB, touched
        time.sleep(30)
        os._exit(0)
    kids.append(pid)
print('HOG', [os.waitpid(k, 0)[1] for k in kids])
total = 0.0
"""

HOG_SHM = """import os
try:
    for i in range(24):  # 24 x 128 MiB (each under the file-size limit): 3 GiB in all
        with open(f'/dev/shm/hog{i}', 'wb') as fh:
            for _ in range(8):
                fh.write(b'z' * (16 << 20))
except OSError as exc:
    print('SHM', exc.errno)
total = 0.0
"""

HOG_SYSV = LIBC + """libc.shmat.restype = ctypes.c_void_p
libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
seg = libc.shmget(0, 3 << 30, 0o1600)  # IPC_PRIVATE, 3 GiB
assert seg >= 0, ctypes.get_errno()
addr = libc.shmat(seg, None, 0)
assert addr not in (None, 2 ** 64 - 1), ctypes.get_errno()
ctypes.memset(addr, 1, 3 << 30)
total = 0.0
"""

FORKBOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"


def outputs(root, student):
    """The text outputs of a graded notebook's cells."""
    nb = nbformat.read(root / "autograded" / student / "arena" / "arena.ipynb", as_version=4)
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def tagged(text, tag):
    match = re.search(rf"^{tag} (.*)$", text, re.M)
    assert match, f"no {tag} line in the outputs: {text[-2000:]}"
    return match.group(1)


def host_ipc_keys():
    """SysV keys of the host's IPC namespace (shared memory, queues, semaphores)."""
    out = subprocess.run(["ipcs"], capture_output=True, text=True).stdout
    return {int(m, 16) for m in re.findall(r"^(0x[0-9a-f]+)\s", out, re.M)}


def slot_processes():
    """Live processes of the sandbox users that come from this test's interpreter or a shell tool."""
    found = []
    for pid in slot_user_pids():
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if sys.executable in cmd or os.path.realpath(sys.executable) in cmd:
            found.append((pid, cmd))
    return found


def left_cgroups():
    layout = cgroups.detect()
    if layout is None:
        return []
    return [os.path.join(p, n) for p in layout.parents.values() for n in os.listdir(p) if n.startswith("edsgrade-slot")]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = arena.course(tmp_path_factory.mktemp("isolation") / "course")
    return root


@pytest.fixture(scope="module")
def run1(course):
    """IPC, /proc, seccomp, libraries, disk and trees: one worker, so one slot, in name order."""
    secret_holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", f"--password={SECRET}"])
    profiles = {"ipc1writer": WRITER, "ipc2reader": READER, "proc": PROC, "syscalls": SYSCALLS, "disk": DISK,
                "tree": TREE}
    arena.submission(course, "honest", HONEST)
    arena.submission(course, "libraries", {"a1": arena.HONEST_TOTAL + "\n" + LIBRARIES, "a2": arena.HONEST_DOUBLE})
    for student, code in profiles.items():
        arena.submission(course, student, {**WRONG, "a1": code})
    from edsgrade import exchange

    exchange.collect(Course(course), "arena")
    students = ["honest", "libraries", *profiles]
    keys_before = host_ipc_keys()
    started = time.monotonic()
    acquire = sandbox.acquire_slot
    try:
        with pytest.MonkeyPatch.context() as mp:  # one slot for all (other graders on this machine take slots too)
            mp.setattr(sandbox, "acquire_slot", lambda *a, **k: acquire(max_slots=SLOT + 1, first=SLOT))
            run = grade_run(Course(course), "arena", students, progress=False, cell_timeout=90, timeout=180,
                            memory=2048, disk=256, workers=1)
    finally:
        secret_holder.kill()
        secret_holder.wait()
    return {"results": {r.student: r for r in run.results}, "keys_before": keys_before,
            "seconds": time.monotonic() - started}


@pytest.fixture(scope="module")
def run2(course, run1):
    """A fork bomb and memory hogs, graded two at a time next to honest submissions."""
    profiles = {"bomb": FORKBOMB, "hogkids": HOG_CHILDREN, "hogshm": HOG_SHM, "hogsysv": HOG_SYSV}
    for student, code in profiles.items():
        arena.submission(course, student, {**WRONG, "a1": code})
    for student in ("honest2", "honest3"):
        arena.submission(course, student, HONEST)
    from edsgrade import exchange

    exchange.collect(Course(course), "arena")
    students = ["bomb", "honest2", "hogkids", "hogshm", "honest3", "hogsysv"]
    run = grade_run(Course(course), "arena", students, progress=False, cell_timeout=20, timeout=40,
                    memory=2048, processes=48, workers=2)
    return {r.student: r for r in run.results}


def said(result):
    return " ".join([result.message, *result.notes, *result.execution.get("described", []),
                     *result.execution.get("limits_hit", [])])


def test_every_result_records_the_isolation_in_force(run1):
    for r in run1["results"].values():
        iso = r.execution["isolation"]
        assert iso["sandboxed"] and iso["pid_ns"] and iso["ipc_ns"] and iso["uts_ns"] and iso["mount_ns"], iso
        assert iso["seccomp"] is True, iso
        assert iso["cgroup"] == (cgroups.detect().version if cgroups.detect() else None), iso


def test_honest_submissions_get_full_marks_under_the_filter(run1, course):
    results = run1["results"]
    assert results["honest"].score == 6, results["honest"].to_dict()
    assert results["libraries"].score == 6, (results["libraries"].to_dict(), outputs(course, "libraries")[-3000:])
    libs = json.loads(tagged(outputs(course, "libraries"), "LIBRARIES"))
    assert libs == {"sklearn": pytest.approx(2.0), "matplotlib": True, "obspy": "2020-01-01T00:00:00.000000Z",
                    "torch": 3.0, "processes": [1, 2]}


def test_the_next_submission_in_the_slot_finds_nothing(run1, course):
    results = run1["results"]
    writer = outputs(course, "ipc1writer")
    assert "WRITER" in writer and "'add_key': (-1, 1)" in writer, writer  # keyring: denied (EPERM)
    reader = tagged(outputs(course, "ipc2reader"), "READER")
    found, uid, host = re.match(r"(\[.*\]) (\d+) (\S+)", reader).groups()
    assert found == "[]", f"the second submission found the first one's state in {found}"
    assert host == sandbox.HOSTNAME and host != os.uname().nodename
    assert tagged(writer, "UID") == uid, "both ran in one slot, as one user, one after the other"
    assert results["ipc2reader"].score <= 1 and results["ipc1writer"].score <= 1
    # none of it reached the host's IPC namespace, and nothing of the writer (its daemon) survives
    assert KEY not in host_ipc_keys()


def test_proc_shows_only_the_sandboxs_own_processes(run1, course):
    seen = json.loads(tagged(outputs(course, "proc"), "PROC"))
    cmdlines = " ".join(seen["pids"].values())
    assert SECRET not in cmdlines and "pytest" not in cmdlines, cmdlines
    assert str(seen["me"]) in seen["pids"] and seen["me"] < 10  # numbered in its own namespace
    assert all(int(pid) > 1 for pid in seen["pids"]), "the namespace's init (root) is hidden"
    assert len(seen["pids"]) <= 3, seen["pids"]
    # its mounts are its own jail's: no host path of the course or of any working copy
    assert str(course) not in seen["mounts"] and "edsgrade-arena-" not in seen["mounts"], seen["mounts"]
    assert "cgroup" not in seen["mounts"]
    assert run1["results"]["proc"].score <= 1


def test_seccomp_denies_what_grading_never_needs(run1, course):
    out = json.loads(tagged(outputs(course, "syscalls"), "SYSCALLS"))
    denied = {k: v for k, v in out.items() if k not in ("clone3", "subprocess")}
    assert all(v == "EPERM" for v in denied.values()), out
    assert out["clone3"] == "ENOSYS" and out["subprocess"] == "hi", out
    assert run1["results"]["syscalls"].score <= 1


def test_a_full_disk_is_a_clear_result(run1, course):
    r = run1["results"]["disk"]
    text = outputs(course, "disk")
    assert re.search(r"^DISK \d+ 28$", text, re.M) and re.search(r"^TMP 28$", text, re.M), text  # ENOSPC
    written = int(re.search(r"^DISK (\d+)", text, re.M).group(1))
    assert written <= 256 + 16, written
    assert r.status == "graded" and r.score <= 1
    assert "disk" in r.execution["limits_hit"] and "working copy is full" in said(r) and "/tmp is full" in said(r)


def test_a_hostile_tree_is_cleaned_up_in_bounded_time(run1, course):
    r = run1["results"]["tree"]
    assert "TREE done" in outputs(course, "tree")
    assert r.status == "graded" and r.score <= 1
    assert r.seconds < 60, r.seconds


def test_nothing_outlives_run1(run1):
    assert slot_processes() == []
    assert left_cgroups() == []


def test_memory_limit_holds_over_processes_and_shared_memory(run2):
    layout = cgroups.detect()
    for student in ("hogkids", "hogshm", "hogsysv"):
        r = run2[student]
        assert r.status == "graded" and r.score <= 1, (student, r.to_dict())
        if layout is None:
            continue
        assert "memory" in r.execution["limits_hit"], (student, r.execution)
        assert "memory limit" in said(r), (student, said(r))
        peak = r.execution["resources"]["memory_peak"]
        assert peak is None or peak <= 2 * GiB + (64 << 20), (student, peak)


def test_a_fork_bomb_does_not_starve_an_honest_submission(run2):
    for student in ("honest2", "honest3"):
        r = run2[student]
        assert r.score == 6 and not r.execution["limits_hit"], (student, r.to_dict())
        assert r.execution["seconds"] < 20
    bomb = run2["bomb"]
    assert bomb.status == "graded" and bomb.score <= 1 and "time limit" in said(bomb)


def test_grades_and_nothing_outlives_run2(run2, course):
    grades = {g.student: g.total for g in read_grades(Course(course), "arena")}
    assert grades["honest"] == grades["honest2"] == grades["honest3"] == 6
    assert all(grades[s] <= 1 for s in ("bomb", "hogkids", "hogshm", "hogsysv"))
    assert slot_processes() == []
    assert left_cgroups() == []
