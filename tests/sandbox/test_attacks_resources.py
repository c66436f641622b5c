"""The attack battery, part 1: resources, processes and crashes. Each attack must end
contained, with the right verdict, within the wall limit + 1 s, and leave nothing behind.

Every attack is bounded (a capped fork loop, a capped allocation, a time cap inside the
program), so a sandbox regression fails the test instead of harming the machine. Each runs at
both strong levels where the machine has them. Part 2 (``test_attacks_escape.py``): escapes
through the file system, the network, other processes and privileges.
"""

from __future__ import annotations

import pytest

from rewardlab.sandbox import detect

from .conftest import CAP, LEVELS, timed

# ------------------------------------------------------------------- processes and time


@pytest.mark.parametrize("level", LEVELS)
def test_fork_bomb(level: str) -> None:
    src = CAP + (
        "import os\n"
        "for _ in range(3000):\n"
        "    if time.monotonic() > _deadline:\n"
        "        break\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        time.sleep(0.01)\n"
    )
    r = timed(src, level, wall_s=2.0, processes=16)
    assert r.verdict in ("timeout", "ok", "error", "killed"), r.summary()


@pytest.mark.parametrize("level", LEVELS)
def test_fork_refused_beyond_limit(level: str) -> None:
    src = CAP + (
        "import os\n"
        "n = 0\n"
        "for _ in range(500):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(10)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "    except OSError:\n"
        "        break\n"
        "print(n)\n"
    )
    r = timed(src, level, processes=16)
    assert r.verdict == "ok", r.summary()
    assert int(r.stdout) < 16


@pytest.mark.parametrize("level", LEVELS)
def test_thread_bomb(level: str) -> None:
    src = CAP + (
        "import threading\n"
        "n = 0\n"
        "for _ in range(5000):\n"
        "    try:\n"
        "        threading.Thread(target=time.sleep, args=(5,), daemon=True).start()\n"
        "        n += 1\n"
        "    except RuntimeError:\n"
        "        break\n"
        "print(n, flush=True)\n"
        "import os\n"
        "os._exit(0)\n"
    )
    r = timed(src, level, processes=16)
    assert r.verdict == "ok", r.summary()
    assert int(r.stdout) < 16


@pytest.mark.parametrize("level", LEVELS)
def test_memory_bomb(level: str) -> None:
    src = "chunks = []\nfor _ in range(64):\n    chunks.append(bytearray(64 * 2**20))\n"
    r = timed(src, level, memory_mb=128)
    assert r.verdict == "memory", r.summary()


@pytest.mark.parametrize("level", LEVELS)
def test_memory_bomb_across_processes(level: str) -> None:
    if "memory" not in detect().cgroups.bases:
        pytest.skip("no memory cgroup: the total is bounded only by processes x address space")
    src = (
        "import os, time\n"
        "kids = []\n"
        "for _ in range(8):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        b = bytearray(100 * 2**20)\n"
        "        b[::4096] = b'x' * len(b[::4096])\n"
        "        time.sleep(2)\n"
        "        os._exit(0)\n"
        "    kids.append(pid)\n"
        "for pid in kids:\n"
        "    os.waitpid(pid, 0)\n"
    )
    r = timed(src, level, memory_mb=160, disk_mb=16, wall_s=5.0)
    assert r.verdict == "memory", r.summary()


@pytest.mark.parametrize("level", LEVELS)
def test_infinite_loop(level: str) -> None:
    r = timed("while True:\n    pass\n", level, wall_s=1.0)
    assert r.verdict == "timeout", r.summary()


@pytest.mark.parametrize("level", LEVELS)
def test_cpu_limit(level: str) -> None:
    r = timed("while True:\n    pass\n", level, wall_s=8.0, cpu_s=1)  # CPU runs out first
    assert r.verdict == "timeout", r.summary()
    assert r.cpu_s is not None and r.cpu_s >= 0.9


@pytest.mark.parametrize("level", LEVELS)
def test_cpu_spin_in_threads(level: str) -> None:
    src = CAP + (
        "import threading\n"
        "def spin():\n"
        "    while time.monotonic() < _deadline + 60:\n"
        "        pass\n"
        "for _ in range(4):\n"
        "    threading.Thread(target=spin).start()\n"
    )
    r = timed(src, level, wall_s=1.0)
    assert r.verdict == "timeout", r.summary()


@pytest.mark.parametrize("level", LEVELS)
def test_ignoring_sigterm(level: str) -> None:
    src = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nwhile True:\n    pass\n"
    r = timed(src, level, wall_s=1.0)
    assert r.verdict == "timeout"


@pytest.mark.parametrize("level", LEVELS)
def test_double_fork_setsid_daemon_does_not_survive(level: str) -> None:
    src = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        os.closerange(0, 3)\n"
        "        time.sleep(30)\n"
        "    os._exit(0)\n"
        "time.sleep(0.2)\n"
        "print('parent done')\n"
    )
    r = timed(src, level)  # timed() asserts no sandbox process survives
    assert r.verdict == "ok" and r.stdout == b"parent done\n"


@pytest.mark.parametrize("level", LEVELS)
def test_daemon_survives_neither_a_timeout(level: str) -> None:
    src = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(30)\n"
        "    os._exit(0)\n"
        "time.sleep(30)\n"
    )
    r = timed(src, level, wall_s=1.0)
    assert r.verdict == "timeout"


# ------------------------------------------------------------------------ disk and fds


@pytest.mark.parametrize("level", LEVELS)
def test_disk_fill(level: str) -> None:
    src = CAP + (
        "import os\n"
        "block = b'x' * 2**20\n"
        "written = 0\n"
        "try:\n"
        "    for i in range(48):\n"
        "        with open(f'fill{i}', 'wb') as f:\n"
        "            for _ in range(8):\n"
        "                f.write(block)\n"
        "                written += 1\n"
        "finally:\n"
        "    print(written)\n"
    )
    r = timed(src, level, disk_mb=16, file_size_mb=4)
    assert r.verdict in ("error", "output-limit", "memory"), r.summary()
    if level == "isolated":
        assert int(r.stdout) <= 16
    else:
        assert int(r.stdout) <= 4


@pytest.mark.parametrize("level", LEVELS)
def test_fd_exhaustion(level: str) -> None:
    src = (
        "fds = []\n"
        "try:\n"
        "    for _ in range(10000):\n"
        "        fds.append(open('/dev/null'))\n"
        "except OSError as e:\n"
        "    print(len(fds), e.errno)\n"
    )
    r = timed(src, level, open_files=32)
    assert r.verdict == "ok" and int(r.stdout.split()[0]) < 32


# ------------------------------------------------------------------ output and crashes


@pytest.mark.parametrize("level", LEVELS)
def test_output_flood(level: str) -> None:
    src = CAP + (
        "import sys\nwhile time.monotonic() < _deadline:\n    sys.stdout.write('x' * 65536)\n"
    )
    r = timed(src, level, output_kb=256)
    assert r.verdict == "output-limit" and r.stdout_truncated
    assert len(r.stdout) == 256 * 1024


@pytest.mark.parametrize("level", LEVELS)
def test_stderr_flood(level: str) -> None:
    src = CAP + (
        "import sys\nwhile time.monotonic() < _deadline:\n    sys.stderr.write('y' * 65536)\n"
    )
    r = timed(src, level, output_kb=64)
    assert r.verdict == "output-limit" and r.stderr_truncated


@pytest.mark.parametrize("level", LEVELS)
def test_segfault(level: str) -> None:
    r = timed("import ctypes\nctypes.string_at(0)\n", level)
    assert r.verdict == "killed" and r.signal == 11


@pytest.mark.parametrize("level", LEVELS)
def test_deep_recursion(level: str) -> None:
    src = "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1) + 1\nf(0)\n"
    r = timed(src, level, wall_s=5.0, memory_mb=128)
    assert r.verdict in ("killed", "error", "memory", "timeout"), r.summary()


@pytest.mark.parametrize(
    "source",
    [
        bytes(range(256)) * 16,
        "print('héllo 🙂')\n\x00\n",
        "x = '\ud800'\n",
        b"\xef\xbb\xbf\xff\xfe garbage",
        "",
    ],
)
def test_garbage_source(source: str | bytes) -> None:
    level = detect().best()
    r = timed(source, level)
    assert r.verdict in ("error", "ok"), r.summary()
    if source:
        assert r.verdict == "error"


def _hold(children: int, mb: int) -> str:
    """Fork ``children`` processes that each keep ``mb`` MiB of touched memory, then sleep."""
    return (
        "import os, time\n"
        f"for _ in range({children}):\n"
        "    if os.fork() == 0:\n"
        f"        b = bytearray({mb} * 2**20)\n"
        "        b[::4096] = b'x' * len(b[::4096])\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "time.sleep(60)\n"
    )


@pytest.mark.parametrize("level", LEVELS)
def test_run_held_at_its_memory_budget_at_the_deadline_is_a_memory_verdict(level: str) -> None:
    """The kernel may thrash on file pages at the cgroup limit instead of OOM-killing; a run
    whose anonymous memory fills its memory + disk budget when the wall clock runs out is
    classified as memory. Here the budget is 48 + 16 MiB (cgroup limit 128 MiB): 3 x 30 MiB
    fills it without reaching the limit, so the rule itself is what decides."""
    if "memory" not in detect().cgroups.bases:
        pytest.skip("needs a memory cgroup")
    held = timed(_hold(3, 30), level, memory_mb=48, disk_mb=16, wall_s=2.0)
    assert held.verdict == "memory", held.summary()
    assert "no OOM kill" in held.detail
    light = timed(_hold(1, 30), level, memory_mb=48, disk_mb=16, wall_s=2.0)
    assert light.verdict == "timeout", light.summary()


def test_verdict_rule_on_timeout() -> None:
    from rewardlab.sandbox.runner import _Streams, _verdict

    streams = _Streams(cap=1024)
    assert _verdict("timeout", None, streams, 0, 10)[0] == "timeout"
    assert _verdict("timeout", None, streams, 2, 10)[0] == "memory"
    verdict, detail = _verdict("timeout", None, streams, 0, 10, memory_held=True)
    assert verdict == "memory" and "no OOM kill" in detail
    assert _verdict("output-limit", None, streams, 3, 10, memory_held=True)[0] == "output-limit"
