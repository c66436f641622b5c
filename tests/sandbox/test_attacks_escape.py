"""The attack battery, part 2: escapes through the file system, the network, other processes
and privileges. Same rules as part 1 (``test_attacks_resources.py``); attacks whose failure
would reach beyond the test (``kill(-1)``) run only after a probe has confirmed that a pid
namespace is active.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
from pathlib import Path

import pytest

from .conftest import LEVELS, PROJECT, needs_isolated, timed

# ------------------------------------------------------------------------ file system


@pytest.mark.parametrize("level", LEVELS)
def test_writes_outside_the_workdir_fail(level: str, shared_dir: Path) -> None:
    token = secrets.token_hex(6)
    targets = [
        f"{Path.home()}/rl-escape-{token}",
        f"/tmp/rl-escape-{token}",
        f"{PROJECT}/rl-escape-{token}",
        f"/dev/shm/rl-escape-{token}",
        f"{shared_dir}/rl-escape-{token}",
        f"/rl-escape-{token}",
    ]
    src = (
        "import os, sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        with open(path, 'w') as f:\n"
        "            f.write('escaped')\n"
        "        print('WROTE', path)\n"
        "    except OSError as e:\n"
        "        print('refused', e.errno)\n"
    )
    r = timed(src, level, argv=tuple(targets))
    wrote = {line.split()[1] for line in r.stdout.decode().splitlines() if line.startswith("WROTE")}
    private_shm = (
        {t for t in targets if t.startswith("/dev/shm/")} if level == "isolated" else set()
    )
    assert wrote <= private_shm  # the isolated level has a private /dev/shm of its own
    assert not any(os.path.exists(t) for t in targets)


@pytest.mark.parametrize("level", LEVELS)
def test_symlink_and_hardlink_tricks(level: str, shared_dir: Path) -> None:
    victim = shared_dir / "victim.txt"
    victim.write_text("original")
    victim.chmod(0o666)
    target = shared_dir / f"via-symlink-{secrets.token_hex(4)}"
    src = (
        "import os, sys\n"
        "victim, target = sys.argv[1], sys.argv[2]\n"
        "def attempt(name, fn):\n"
        "    try:\n"
        "        fn()\n"
        "        print('DID', name)\n"
        "    except OSError as e:\n"
        "        print('refused', name, e.errno)\n"
        "def sym_file():\n"
        "    os.symlink(target, 'link')\n"
        "    open('link', 'w').write('escaped')\n"
        "def sym_dir():\n"
        "    os.symlink(os.path.dirname(target), 'dirlink')\n"
        "    open('dirlink/x', 'w').write('escaped')\n"
        "def hard():\n"
        "    os.link(victim, 'hard')\n"
        "    open('hard', 'w').write('tampered')\n"
        "def direct():\n"
        "    open(victim, 'w').write('tampered')\n"
        "def rename_out():\n"
        "    open('mine', 'w').write('x')\n"
        "    os.rename('mine', target)\n"
        "for n, f in [('sym_file', sym_file), ('sym_dir', sym_dir), ('hard', hard),\n"
        "             ('direct', direct), ('rename_out', rename_out)]:\n"
        "    attempt(n, f)\n"
    )
    r = timed(src, level, argv=(str(victim), str(target)))
    assert victim.read_text() == "original"
    assert not target.exists() and not (shared_dir / "x").exists()
    assert b"DID hard" not in r.stdout and b"DID direct" not in r.stdout


@pytest.mark.parametrize("level", LEVELS)
def test_reads_outside_the_workdir_fail(level: str, shared_dir: Path) -> None:
    secret = shared_dir / "world-readable-secret.txt"
    secret.write_text("TOP-SECRET-" + secrets.token_hex(8))
    secret.chmod(0o644)
    paths = [
        str(PROJECT / "pyproject.toml"),
        "/etc/shadow",
        "/proc/1/environ",
        str(secret),
        str(Path.home() / ".bashrc"),
    ]
    src = (
        "import sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        print('READ', path, open(path, 'rb').read(200))\n"
        "    except OSError as e:\n"
        "        print('refused', path, e.errno)\n"
    )
    r = timed(src, level, argv=tuple(paths))
    assert b"READ" not in r.stdout, r.stdout
    assert b"TOP-SECRET" not in r.stdout and b"[project]" not in r.stdout


# ---------------------------------------------------------------------------- network


@pytest.mark.parametrize("level", LEVELS)
def test_tcp_udp_dns_unix_sockets_fail(level: str, shared_dir: Path) -> None:
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(5)
    tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    unix_path = str(shared_dir / "sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(unix_path)
    os.chmod(unix_path, 0o777)
    unix.listen(5)
    unix.setblocking(False)
    src = (
        "import socket, sys\n"
        "tcp_port, udp_port, unix_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]\n"
        "def attempt(name, fn):\n"
        "    try:\n"
        "        fn()\n"
        "        print('DID', name)\n"
        "    except Exception as e:\n"
        "        print('refused', name, type(e).__name__)\n"
        "def tcp():\n"
        "    socket.create_connection(('127.0.0.1', tcp_port), timeout=1).sendall(b'hi')\n"
        "def udp():\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "    s.sendto(b'hi', ('127.0.0.1', udp_port))\n"
        "def dns():\n"
        "    socket.getaddrinfo('example.com', 80)\n"
        "def unix():\n"
        "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        "    s.connect(unix_path)\n"
        "    s.sendall(b'hi')\n"
        "def raw():\n"
        "    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
        "for n, f in [('tcp', tcp), ('udp', udp), ('dns', dns), ('unix', unix), ('raw', raw)]:\n"
        "    attempt(n, f)\n"
    )
    try:
        r = timed(
            src, level, argv=(str(tcp.getsockname()[1]), str(udp.getsockname()[1]), unix_path)
        )
        assert b"DID" not in r.stdout, r.stdout
        with pytest.raises(BlockingIOError):
            tcp.accept()
        with pytest.raises(BlockingIOError):
            udp.recvfrom(10)
        with pytest.raises(BlockingIOError):
            unix.accept()
    finally:
        for s in (tcp, udp, unix):
            s.close()


# ------------------------------------------------------------- other processes, privileges


@pytest.mark.parametrize("level", LEVELS)
def test_cannot_kill_parent_or_sentinel(level: str, sentinel: subprocess.Popen[bytes]) -> None:
    src = (
        "import os, signal, sys\n"
        "for pid in (os.getppid(), int(sys.argv[1]), 1):\n"
        "    for sig in (signal.SIGKILL, signal.SIGSTOP):\n"
        "        try:\n"
        "            os.kill(pid, sig)\n"
        "            print('SIGNALLED', pid)\n"
        "        except OSError as e:\n"
        "            print('refused', e.errno)\n"
    )
    r = timed(src, level, argv=(str(sentinel.pid),))
    assert r.verdict == "ok", r.summary()
    assert b"SIGNALLED" not in r.stdout
    assert sentinel.poll() is None


@needs_isolated
def test_kill_minus_one_only_after_pid_namespace_confirmed(
    sentinel: subprocess.Popen[bytes],
) -> None:
    probe = timed(
        "import os\nprint(os.getpid(), len([p for p in os.listdir('/proc') if p.isdigit()]))",
        "isolated",
    )
    pid, visible = (int(x) for x in probe.stdout.split())
    if not (pid <= 3 and visible <= 3 and "pid namespace" in probe.layers):
        pytest.fail(f"no pid namespace (pid {pid}, {visible} visible); not running kill(-1)")
    src = (
        "import os, signal\n"
        "try:\n"
        "    os.kill(-1, signal.SIGKILL)\n"
        "except ProcessLookupError:\n"
        "    pass  # nobody else in the namespace to signal\n"
        "print('still here')\n"
    )
    r = timed(src, "isolated")
    assert r.verdict == "ok" and r.stdout == b"still here\n"
    assert sentinel.poll() is None


@pytest.mark.parametrize("level", LEVELS)
def test_ctypes_syscalls_refused(level: str) -> None:
    src = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print('setuid', libc.setuid(0))\n"
        "print('unshare_user', libc.unshare(0x10000000))\n"
        "print('unshare_net', libc.unshare(0x40000000))\n"
        "print('mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))\n"
        "print('ptrace', libc.ptrace(16, 1, 0, 0))\n"
        "print('chroot', libc.chroot(b'/'))\n"
        "print('reboot', libc.reboot(0x4321fedc))\n"
        "print('uid', os.getuid(), os.geteuid())\n"
    )
    r = timed(src, level)
    lines = dict(line.split(" ", 1) for line in r.stdout.decode().splitlines())
    for call in ("setuid", "unshare_user", "unshare_net", "mount", "ptrace", "chroot", "reboot"):
        assert lines[call] == "-1", (call, lines)
    assert "0" not in lines["uid"].split()


@pytest.mark.parametrize("level", LEVELS)
def test_shells_and_exec_refused(level: str) -> None:
    marker = f"/tmp/rl-pwned-{secrets.token_hex(4)}"
    src = (
        "import os, posix, subprocess, sys\n"
        "marker = sys.argv[1]\n"
        "def attempt(name, fn):\n"
        "    try:\n"
        "        out = fn()\n"
        "        print(name, 'returned', out)\n"
        "    except OSError as e:\n"
        "        print(name, 'refused', type(e).__name__)\n"
        "attempt('system', lambda: posix.system(f'touch {marker}; echo PWNED'))\n"
        # subprocess.run is _posixsubprocess.fork_exec underneath
        "attempt('subprocess', lambda: subprocess.run(['/bin/sh', '-c', 'echo PWNED']))\n"
        "import _posixsubprocess\n"
        "attempt('subprocess_py', lambda: subprocess.run([sys.executable, '-c', 'print(1)']))\n"
        "attempt('spawn', lambda: os.posix_spawn('/bin/sh', ['sh', '-c', 'echo PWNED'], {}))\n"
        "sys.stdout.flush()\n"
        "os.execv('/bin/sh', ['sh', '-c', f'touch {marker}; echo PWNED'])\n"
    )
    r = timed(src, level, argv=(marker,))
    assert b"PWNED" not in r.stdout
    assert not os.path.exists(marker)
    assert r.verdict == "error"  # the final execv raised


@pytest.mark.parametrize("level", LEVELS)
def test_raising_rlimits_refused(level: str) -> None:
    src = (
        "import resource\n"
        "for name in ('RLIMIT_AS', 'RLIMIT_NPROC', 'RLIMIT_CPU', 'RLIMIT_NOFILE'):\n"
        "    lim = getattr(resource, name)\n"
        "    try:\n"
        "        resource.setrlimit(lim, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))\n"
        "        print('RAISED', name)\n"
        "    except (ValueError, OSError):\n"
        "        print('refused', name)\n"
        "print(resource.getrlimit(resource.RLIMIT_AS)[1] < 2**40)\n"
    )
    r = timed(src, level)
    assert b"RAISED" not in r.stdout and r.stdout.endswith(b"True\n")


@pytest.mark.parametrize("level", LEVELS)
def test_user_namespace_refused(level: str) -> None:
    src = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "CLONE_NEWUSER = 0x10000000\n"
        "print(libc.unshare(CLONE_NEWUSER), ctypes.get_errno())\n"
        "print(libc.syscall(56, CLONE_NEWUSER | 17, 0, 0, 0, 0), ctypes.get_errno())\n"
    )
    r = timed(src, level)
    for line in r.stdout.decode().splitlines():
        assert line.split()[0] == "-1", r.stdout
