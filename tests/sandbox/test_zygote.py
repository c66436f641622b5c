"""Pre-isolated workers (``ZygotePool``): the same guarantees per execution as a one-shot
``isolated`` run - a fresh process, fresh files, fresh IPC, a fresh cgroup budget, nothing
surviving - although namespaces, the private root and the cgroups are set up once per worker.

Every test here runs its executions one after another on ONE worker (``workers=1``), so a
leak between executions of the same zygote would be seen.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rewardlab.sandbox import Limits, Program, RunResult, SandboxConfig, SandboxPool, detect
from rewardlab.sandbox.zygote import LAYER, ZygotePool

from .conftest import (
    CAP,
    PROJECT,
    TEMP_PREFIX,
    assert_clean,
    leftover_cgroups,
    leftover_dirs,
    needs_isolated,
    sandbox_processes,
)
from .test_attacks_hardening import EXEC_PROBES, IPC_READER, IPC_WRITER, _loader

pytestmark = needs_isolated

SMALL = Limits(wall_s=5.0, cpu_s=5, memory_mb=256, processes=16, disk_mb=16, file_size_mb=8)


@pytest.fixture(scope="module")
def pool() -> Iterator[ZygotePool]:
    with ZygotePool(SandboxConfig(limits=SMALL, level="isolated"), workers=1) as p:
        yield p
    assert_clean()  # closing the pool leaves no process, temporary directory or cgroup


def go(pool: ZygotePool, source: str, **kw: object) -> RunResult:
    """One execution; afterwards no process of any sandbox uid is alive."""
    result = pool.run(Program(source, **kw))  # type: ignore[arg-type]
    assert sandbox_processes() == [], "a process of the execution survived it"
    return result


def test_runs_like_a_one_shot_run(pool: ZygotePool) -> None:
    r = go(
        pool,
        "import os, sys\nprint(sys.stdin.read()[::-1], sys.argv[1:], sorted(os.listdir('.')))\n"
        "print(open('data/x.txt').read(), os.getuid() != 0, os.getpid())",
        stdin="abc",
        argv=("a1",),
        files={"data/x.txt": "payload"},
    )
    assert r.verdict == "ok", (r.summary(), r.stderr)
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "cba ['a1'] ['data', 'main.py']"
    assert lines[1].startswith("payload True ")
    assert int(lines[1].split()[-1]) <= 3  # pid namespace of its own
    assert LAYER in r.layers and "pid namespace" in r.layers
    assert r.cpu_s is not None and r.peak_memory_bytes is not None
    assert go(pool, "raise SystemExit(3)").verdict == "error"


def test_nothing_crosses_between_executions(pool: ZygotePool) -> None:
    key = str(secrets.randbelow(1 << 30) + 1)
    first = go(
        pool,
        "import os, sys, time\n"
        "open('left.txt', 'w').write('secret')\n"
        "open('/dev/shm/left', 'w').write('secret')\n"
        "if os.fork() == 0:\n"  # a daemon: double fork + setsid, sleeping well past the run
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.closerange(0, 3)\n"
        "        time.sleep(30)\n"
        "    os._exit(0)\n"
        "time.sleep(0.1)\n" + IPC_WRITER,
        argv=(key,),
    )
    assert first.verdict == "ok", (first.summary(), first.stderr)
    second = go(
        pool,
        "import os\n"
        "print(sorted(os.listdir('.')), os.listdir('/dev/shm'))\n"
        "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))\n" + IPC_READER,
        argv=(key,),
    )
    out = second.stdout.decode().splitlines()
    assert out[0] == "['main.py'] []", out
    assert len(eval(out[1])) <= 2, out  # itself (and init, where visible): no daemon
    assert "FOUND" not in second.stdout.decode() and "sem -1 msg -1" in out[-1], out


def test_fresh_cgroup_budget_per_execution() -> None:
    if "memory" not in detect().cgroups.bases:
        pytest.skip("no memory cgroup here")
    limits = Limits(wall_s=5.0, memory_mb=160, disk_mb=16, processes=16)
    bomb = (
        "import os, time\n"
        "kids = []\n"
        "for _ in range(8):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        b = bytearray(100 * 2**20)\n"
        "        b[::4096] = b'x' * len(b[::4096])\n"
        "        time.sleep(1)\n"
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "for pid in kids:\n"
        "    os.waitpid(pid, 0)\n"
    )
    big = "b = bytearray(96 * 2**20)\nb[::4096] = b'x' * len(b[::4096])\nprint('ok')"
    with ZygotePool(SandboxConfig(limits=limits, level="isolated"), workers=1) as p:
        assert go(p, bomb).verdict == "memory"
        after_oom = go(p, "print(1)")  # OOM kills are counted per execution
        assert after_oom.verdict == "ok", after_oom.summary()
        heavy = go(p, big)
        light = go(p, "print(1)")  # the peak is measured per execution
        assert heavy.peak_memory_bytes and light.peak_memory_bytes
        assert heavy.peak_memory_bytes > 90 * 2**20 > 2 * light.peak_memory_bytes, (heavy, light)
        fork_bomb = CAP + (
            "import os\n"
            "while time.monotonic() < _deadline:\n"
            "    try:\n"
            "        os.fork()\n"
            "    except OSError:\n"
            "        break\n"
            "time.sleep(0.5)\n"
        )
        go(p, fork_bomb)
        forks = go(
            p,
            "import os\n"
            "kids = []\n"
            "for _ in range(8):\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        os._exit(0)\n"
            "    kids.append(pid)\n"
            "print(len([os.waitpid(k, 0) for k in kids]))",
        )
        assert forks.stdout == b"8\n", forks.summary()


@pytest.mark.parametrize("cgroups", [True, False])
def test_timeout_then_next_execution_is_clean(cgroups: bool) -> None:
    start = time.monotonic()
    config = SandboxConfig(limits=Limits(wall_s=1.0), level="isolated", cgroups=cgroups)
    with ZygotePool(config, workers=1) as p:
        r = go(p, "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile 1: pass")
        assert r.verdict == "timeout", r.summary()
        assert time.monotonic() - start < 4.0
        assert go(p, "print(2)").stdout == b"2\n"


def test_escapes_refused_in_a_worker(pool: ZygotePool, tmp_path: Path) -> None:
    token = secrets.token_hex(4)
    targets = (f"/tmp/rl-zyg-{token}", f"{PROJECT}/rl-zyg-{token}", f"{Path.home()}/rl-{token}")
    src = (
        "import os, socket, sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('WROTE', path)\n"
        "    except OSError:\n"
        "        pass\n"
        "try:\n"
        "    socket.socket()\n"
        "    print('SOCKET')\n"
        "except OSError:\n"
        "    pass\n"
        "print(sorted(os.environ))\n"
    )
    r = go(pool, src, argv=targets)
    assert b"WROTE" not in r.stdout and b"SOCKET" not in r.stdout, r.stdout
    assert not any(os.path.exists(t) for t in targets)
    env = eval(r.stdout.decode().splitlines()[-1])
    assert set(env) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "MALLOC_ARENA_MAX"}
    r = go(pool, EXEC_PROBES, argv=(_loader(),))
    assert b"RAN" not in r.stdout + r.stderr
    kill_all = (
        "import os, signal\n"
        "assert os.getpid() <= 3, 'no pid namespace: not sending kill(-1)'\n"
        "try:\n"
        "    os.kill(-1, signal.SIGKILL)\n"
        "except ProcessLookupError:\n"
        "    pass\n"
        "print('alive')\n"
    )
    r = go(pool, kill_all)
    assert r.stdout == b"alive\n", r.stderr


def test_disk_cap_per_execution(pool: ZygotePool) -> None:
    fill = (
        "written = 0\n"
        "try:\n"
        "    for i in range(64):\n"
        "        open(f'f{i}', 'wb').write(b'x' * 2**20)\n"
        "        written += 1\n"
        "except OSError:\n"
        "    pass\n"
        "print(written)\n"
    )
    for _ in range(2):  # the second fill gets the whole quota again: nothing was left
        r = go(pool, fill)
        assert 8 <= int(r.stdout) <= 16, r.stdout


def test_parent_death_takes_the_workers_down() -> None:
    code = (
        "import sys, threading\n"
        "from rewardlab.sandbox import SandboxConfig, Limits\n"
        "import rewardlab.sandbox.zygote as z\n"
        f"z.TEMP_PREFIX = {TEMP_PREFIX!r}\n"  # this session's, so the check below sees it
        "from rewardlab.sandbox.zygote import ZygotePool\n"
        "pool = ZygotePool(SandboxConfig(limits=Limits(wall_s=30), level='isolated'), 1)\n"
        "pool.run('print(0)')\n"
        "print(pool._all[0].proc.pid, flush=True)\n"
        "pool.run('import time\\nprint(1, flush=True)\\ntime.sleep(30)')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "src")}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    zygote_pid = int(proc.stdout.readline())
    time.sleep(0.5)
    assert sandbox_processes(include_foreign=True), "the sleeping execution should be running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5
    while (sandbox_processes() or os.path.exists(f"/proc/{zygote_pid}")) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert sandbox_processes() == []
    assert not os.path.exists(f"/proc/{zygote_pid}")
    # the dead parent's temporary directory and cgroups are not collected (as for run());
    # the next use of the slot recycles the cgroup, the directory is empty
    for d in leftover_dirs():
        os.rmdir(os.path.join(d, "root"))
        os.rmdir(d)
    for c in leftover_cgroups():
        os.rmdir(c)


def test_sandbox_pool_uses_workers_at_isolated() -> None:
    results = SandboxPool(SandboxConfig(limits=SMALL, level="isolated"), workers=2).map(
        [f"print({i})" for i in range(6)]
    )
    assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(6)]
    assert all(LAYER in r.layers for r in results)
    assert_clean()
