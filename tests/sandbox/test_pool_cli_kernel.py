"""The pool (bounded parallelism, one run's fork bomb does not starve the others), the CLI,
and the kernel helpers (seccomp filter)."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rewardlab.cli.sandbox import sandbox_app
from rewardlab.sandbox import Limits, Program, SandboxConfig, SandboxPool, _seccomp, detect, doctor
from rewardlab.sandbox.pool import parallel_map

from .conftest import assert_clean, needs_isolated

FORK_BOMB = (
    "import os, time\n"
    "deadline = time.monotonic() + 6\n"
    "for _ in range(5000):\n"
    "    if time.monotonic() > deadline:\n"
    "        break\n"
    "    try:\n"
    "        os.fork()\n"
    "    except OSError:\n"
    "        pass\n"
    "while time.monotonic() < deadline:\n"
    "    pass\n"
)
WORK = "total = 0\nfor i in range(300_000):\n    total += i * i\nprint(total)\n"


@needs_isolated
def test_pool_fork_bomb_does_not_starve_the_others() -> None:
    cfg = SandboxConfig(limits=Limits(wall_s=5.0, cpu_s=5, processes=24, cpu_cores=1.0))
    start = time.monotonic()
    results = SandboxPool(cfg, workers=4).map([FORK_BOMB, WORK, WORK, WORK])
    elapsed = time.monotonic() - start
    expected = str(sum(i * i for i in range(300_000))).encode() + b"\n"
    for r in results[1:]:
        assert r.verdict == "ok", r.summary()
        assert r.stdout == expected
        assert r.wall_s < 3.0, r.summary()
    assert results[0].verdict in ("timeout", "ok", "error"), results[0].summary()
    assert elapsed < 5.0 + 1.0
    assert_clean()


def test_pool_keeps_order_and_bound() -> None:
    programs = [Program(f"print({i})") for i in range(6)]
    results = SandboxPool(SandboxConfig(limits=Limits(wall_s=5)), workers=3).map(programs)
    assert [r.stdout for r in results] == [f"{i}\n".encode() for i in range(6)]


def test_parallel_map_order() -> None:
    assert parallel_map(lambda x: x * 2, [3, 1, 2], workers=2) == [6, 2, 4]
    with pytest.raises(ValueError, match="workers"):
        SandboxPool(workers=-1)


# ---------------------------------------------------------------------------------- CLI

runner = CliRunner()


def test_cli_run_prints_json_and_summary(tmp_path: Path) -> None:
    prog = tmp_path / "p.py"
    prog.write_text("import sys\nprint(sys.stdin.read().upper(), sys.argv[1:])\n")
    stdin = tmp_path / "in.txt"
    stdin.write_text("hi")
    res = runner.invoke(sandbox_app, ["run", str(prog), "x", "--stdin", str(stdin), "--wall", "5"])
    assert res.exit_code == 0, res.output
    start = res.stdout.index("{")
    payload = json.loads(res.stdout[start : res.stdout.rindex("}") + 1])
    assert payload["verdict"] == "ok" and payload["stdout"] == "HI ['x']\n"
    assert "ok (exit 0)" in res.output


def test_cli_run_exit_codes(tmp_path: Path) -> None:
    prog = tmp_path / "p.py"
    prog.write_text("while True: pass\n")
    res = runner.invoke(sandbox_app, ["run", str(prog), "--wall", "0.5"])
    assert res.exit_code == 1 and '"verdict": "timeout"' in res.stdout
    res = runner.invoke(sandbox_app, ["run", str(prog), "--level", "nope"])
    assert res.exit_code != 0


def test_cli_doctor(tmp_path: Path) -> None:
    res = runner.invoke(sandbox_app, ["doctor", "--no-live"])
    assert res.exit_code == 0, res.output
    assert "SANDBOX LEVEL HERE:" in res.stdout
    res = runner.invoke(sandbox_app, ["doctor", "--no-live", "--json"])
    assert json.loads(res.stdout)["best_level"] == detect().best()


@needs_isolated
def test_doctor_live_self_test_contains_strong_levels() -> None:
    report = doctor()
    checks = {c.level: c for c in report.live}
    assert checks["isolated"].contained, checks["isolated"].results
    if "restricted" in checks:
        assert checks["restricted"].contained, checks["restricted"].results
    assert not checks["basic"].contained  # basic is honest about what it does not cover
    assert "CONTAINED" in report.text()


# ---------------------------------------------------------------------- kernel helpers


@pytest.mark.skipif(not _seccomp.supported(), reason="no seccomp table for this architecture")
def test_seccomp_filter_is_well_formed() -> None:
    raw = _seccomp.build_filter()
    assert len(raw) % 8 == 0
    n = len(raw) // 8
    insns = [struct.unpack("HBBI", raw[i * 8 : i * 8 + 8]) for i in range(n)]
    for pc, (code, jt, jf, _k) in enumerate(insns):
        if code & 0x07 == 0x05:  # a jump: both targets inside the program
            assert pc + 1 + max(jt, jf) < n
    assert insns[-1] == (0x06, 0, 0, _seccomp.SECCOMP_RET_ALLOW)
    assert "socket" in _seccomp.DENIED_X86_64 and "ptrace" in _seccomp.DENIED_X86_64


def test_no_leftovers_so_far() -> None:
    assert_clean()  # the package fixture repeats this after the last test of the battery
