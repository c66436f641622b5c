"""The attack battery, part 3: what an adversarial review found (issue 16) - SysV IPC shared
between runs, executing a binary the program wrote itself (``memfd_create`` + exec,
``execveat``, the ELF loader on a written file), and filling the disk at ``restricted``.

Same rules as parts 1 and 2: every attack is bounded inside the program, runs at every strong
level this machine has, and is followed by the leftover check.
"""

from __future__ import annotations

import os
import secrets
import subprocess

import pytest

from rewardlab.sandbox.slots import MAX_SLOTS

from .conftest import CAP, LEVELS, UID_BASE, timed

_IPC_TABLES = ("/proc/sysvipc/shm", "/proc/sysvipc/sem", "/proc/sysvipc/msg")


def sandbox_ipc_objects() -> list[tuple[str, int]]:
    """(kind, id) of every SysV IPC object in the host's namespace owned by a sandbox uid."""
    found: list[tuple[str, int]] = []
    for table in _IPC_TABLES:
        with open(table) as f:
            header = f.readline().split()
            for line in f:
                row = dict(zip(header, line.split(), strict=False))
                if UID_BASE <= int(row["uid"]) < UID_BASE + MAX_SLOTS:
                    id_key = next(k for k in ("shmid", "semid", "msqid") if k in row)
                    ident = int(row[id_key])
                    found.append((table.rsplit("/", 1)[1], ident))
    return found


def _remove(objects: list[tuple[str, int]]) -> None:
    flag = {"shm": "-m", "sem": "-s", "msg": "-q"}
    for kind, ident in objects:
        subprocess.run(["ipcrm", flag[kind], str(ident)], check=False, capture_output=True)


IPC_WRITER = (
    "import ctypes, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.shmat.restype = ctypes.c_void_p\n"
    "key = int(sys.argv[1])\n"
    "shm = libc.shmget(key, 1 << 20, 0o1666)\n"
    "addr = libc.shmat(shm, None, 0)\n"
    "ctypes.memmove(addr, b'PAYLOAD-FROM-RUN-1', 18)\n"
    "print('shm', shm, 'sem', libc.semget(key, 1, 0o1666), 'msg', libc.msgget(key, 0o1666))\n"
)
IPC_READER = (
    "import ctypes, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.shmat.restype = ctypes.c_void_p\n"
    "key = int(sys.argv[1])\n"
    "shm = libc.shmget(key, 0, 0)\n"
    "if shm < 0:\n"
    "    print('no segment', ctypes.get_errno())\n"
    "else:\n"
    "    print('FOUND', ctypes.string_at(libc.shmat(shm, None, 0), 18))\n"
    "print('sem', libc.semget(key, 0, 0), 'msg', libc.msgget(key, 0))\n"
)


@pytest.mark.parametrize("level", LEVELS)
def test_sysv_ipc_does_not_outlive_a_run(level: str) -> None:
    key = str(secrets.randbelow(1 << 30) + 1)
    before = sandbox_ipc_objects()
    try:
        first = timed(IPC_WRITER, level, argv=(key,))
        assert first.verdict == "ok", first.summary()  # the objects were created inside the run
        assert " -1" not in first.stdout.decode(), first.stdout
        left = [o for o in sandbox_ipc_objects() if o not in before]
        assert left == [], f"IPC objects of the run survived it: {left}"
        second = timed(IPC_READER, level, argv=(key,))
        out = second.stdout.decode()
        assert "FOUND" not in out, out
        assert "sem -1 msg -1" in out, out
    finally:
        _remove([o for o in sandbox_ipc_objects() if o not in before])


EXEC_PROBES = (
    "import os, shutil, sys\n"
    "def attempt(name, fn):\n"
    "    try:\n"
    "        pid = os.fork()\n"
    "        if pid == 0:\n"
    "            try:\n"
    "                fn()\n"
    "            except OSError as e:\n"
    "                print(name, 'refused', e.errno, flush=True)\n"
    "            os._exit(0)\n"
    "        os.waitpid(pid, 0)\n"
    "    except OSError as e:\n"
    "        print(name, 'refused', e.errno, flush=True)\n"
    "def memfd():\n"
    "    fd = os.memfd_create('x', 0)\n"
    "    os.write(fd, open(sys.executable, 'rb').read())\n"
    "    os.execv(f'/proc/self/fd/{fd}', ['x', '-c', 'print(\"RAN memfd\")'])\n"
    "def fexecve():\n"  # execveat(fd, '', AT_EMPTY_PATH) of the interpreter itself
    "    fd = os.open(sys.executable, os.O_RDONLY)\n"
    "    os.execve(fd, ['x', '-c', 'print(\"RAN fexecve\")'], {})\n"
    "def written():\n"  # a copy of a system binary written into the work dir
    "    shutil.copy('/bin/echo', 'mine')\n"
    "    os.chmod('mine', 0o755)\n"
    "    os.execv('./mine', ['mine', 'RAN written'])\n"
    "def loader_on_written():\n"  # the ELF loader may run; a file the run wrote may not be mapped
    "    shutil.copy('/bin/echo', 'mine2')\n"
    "    os.execv(sys.argv[1], ['ld', './mine2', 'RAN loader_on_written'])\n"
    "for name in ('memfd', 'fexecve', 'written', 'loader_on_written'):\n"
    "    attempt(name, globals()[name])\n"
)


def _loader() -> str:
    for path in ("/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"):
        if os.path.exists(path):
            return path
    pytest.skip("no known ELF loader path on this machine")


@pytest.mark.parametrize("level", LEVELS)
def test_memfd_execveat_and_written_binaries_do_not_run(level: str) -> None:
    r = timed(EXEC_PROBES, level, argv=(_loader(),))
    out = r.stdout.decode() + r.stderr.decode()
    assert "RAN" not in out, out
    for name in ("memfd", "fexecve", "written"):
        assert f"{name} refused" in out, out
    # the loader itself is executable (the interpreter needs it) but cannot map a file the run
    # wrote: the work dir is a noexec mount ("RAN loader_on_written" is absent, checked above)


@pytest.mark.parametrize("level", LEVELS)
def test_disk_fill_with_many_small_files_stops_at_the_quota(level: str) -> None:
    """Each file under the per-file limit, together far over ``disk_mb``: the work dir's quota
    (a size-capped tmpfs at both levels) stops the run; nothing is left on the host."""
    src = CAP + (
        "import os\n"
        "block = b'x' * 2**20\n"
        "written = 0\n"
        "try:\n"
        "    for i in range(64):\n"
        "        with open(f'part{i}', 'wb') as f:\n"
        "            f.write(block)\n"
        "        written += 1\n"
        "except OSError as e:\n"
        "    print('stopped', e.errno)\n"
        "print(written)\n"
        "raise SystemExit(1 if written < 64 else 0)\n"
    )
    r = timed(src, level, disk_mb=8, file_size_mb=4, memory_mb=256)
    lines = r.stdout.decode().split()
    assert r.verdict in ("error", "memory"), r.summary()
    assert int(lines[-1]) <= 8, r.stdout
    assert "stopped" in lines, r.stdout


def test_basic_level_has_no_total_disk_quota() -> None:
    """What ``docs/sandbox.md`` says ``basic`` does not guarantee: files under the per-file
    limit add up past ``disk_mb`` (its work dir is a plain directory on the host's disk)."""
    src = (
        "for i in range(3):\n    open(f'part{i}', 'wb').write(b'x' * 2**20)\nprint('wrote 3 MiB')\n"
    )
    r = timed(src, "basic", disk_mb=1, file_size_mb=2)
    assert r.verdict == "ok" and r.stdout == b"wrote 3 MiB\n", r.summary()
