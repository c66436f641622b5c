"""The sandbox's ordinary behaviour: I/O, files, argv, verdicts, levels, results."""

from __future__ import annotations

import json
import os

import pytest

from rewardlab.sandbox import (
    LEVELS,
    Capabilities,
    Limits,
    Program,
    RunResult,
    SandboxConfig,
    SandboxUnavailable,
    detect,
    resolve_level,
    run,
)
from rewardlab.sandbox.cgroups import CgroupSupport

from .conftest import available, go, needs_isolated, strong_levels

ALL_LEVELS = [
    pytest.param(lv, marks=pytest.mark.skipif(not available(lv), reason="n/a")) for lv in LEVELS
]


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_stdout_stdin_argv_files(level: str, clean: None) -> None:
    src = (
        "import sys\n"
        "data = sys.stdin.read()\n"
        "extra = open('data/in.txt').read()\n"
        "print(data.upper(), extra, sys.argv[1:])\n"
        "print('warn', file=sys.stderr)\n"
    )
    r = go(src, level, stdin="hello", argv=("a", "b"), files={"data/in.txt": "42"})
    assert r.verdict == "ok", r.summary() + r.stderr.decode()
    assert r.stdout == b"HELLO 42 ['a', 'b']\n"
    assert r.stderr == b"warn\n"
    assert r.exit_code == 0 and r.signal is None
    assert r.level == level
    assert r.cpu_s is not None and r.cpu_s >= 0
    assert r.peak_memory_bytes and r.peak_memory_bytes > 1 << 20


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_large_stdin_is_streamed(level: str) -> None:
    blob = "x" * 3_000_000
    r = go("import sys\nprint(len(sys.stdin.read()))", level, stdin=blob)
    assert r.stdout == b"3000000\n", r.summary()


def test_nonzero_exit_is_error_not_ok() -> None:
    r = go("raise SystemExit(3)")
    assert (r.verdict, r.exit_code) == ("error", 3)
    r = go("raise ValueError('boom')")
    assert r.verdict == "error" and b"ValueError: boom" in r.stderr


def test_ok_means_exit_zero_only() -> None:
    r = go("print('FAILED')")
    assert r.ok and r.verdict == "ok"


@pytest.mark.parametrize("level", strong_levels())
def test_environment_is_clean(level: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWARDLAB_TEST_SECRET", "hunter2-secret-value")
    src = (
        "import os\n"
        "print(sorted(os.environ))\n"
        "for pid in ('1', str(os.getppid())):\n"
        "    try:\n"
        "        print(open(f'/proc/{pid}/environ', 'rb').read())\n"
        "    except OSError as e:\n"
        "        print('refused', e.errno)\n"
    )
    r = go(src, level)
    assert b"hunter2" not in r.stdout + r.stderr
    keys = json.loads(r.stdout.decode().splitlines()[0].replace("'", '"'))
    assert set(keys) <= {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "MALLOC_ARENA_MAX"}


def test_extra_env_is_passed() -> None:
    cfg = SandboxConfig(env={"MY_FLAG": "1"}, limits=Limits(wall_s=5))
    r = run(Program("import os; print(os.environ['MY_FLAG'])"), cfg)
    assert r.stdout == b"1\n"


def test_result_json_and_summary() -> None:
    r = go("print('é')")
    d = json.loads(r.to_json())
    assert d["verdict"] == "ok" and d["stdout"] == "é\n" and d["layers"]
    assert "ok (exit 0)" in r.summary()
    assert isinstance(r, RunResult)


def test_string_program_shortcut() -> None:
    r = run("print(6 * 7)", SandboxConfig(limits=Limits(wall_s=5)))
    assert r.stdout == b"42\n"


def test_missing_interpreter_is_sandbox_failure() -> None:
    cfg = SandboxConfig(python="/nonexistent/python3", limits=Limits(wall_s=5), level="basic")
    r = run(Program("print(1)"), cfg)
    assert r.verdict == "sandbox-failure"
    assert "refused to run" in r.detail


# ----------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"wall_s": 0}, "wall_s"),
        ({"memory_mb": 8}, "memory_mb"),
        ({"open_files": 4}, "open_files"),
        ({"output_kb": -1}, "output_kb"),
        ({"disk_mb": 0}, "no cap"),  # tmpfs would read size=0 as unlimited
    ],
)
def test_limits_validate(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Limits(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["/etc/x", "../x", "a/../../x", "main.py", ""])
def test_program_rejects_bad_file_names(name: str) -> None:
    with pytest.raises(ValueError, match="bad file name"):
        Program("pass", files={name: "x"})


def test_config_validates_levels() -> None:
    with pytest.raises(ValueError, match="level"):
        SandboxConfig(level="super")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="below min_level"):
        SandboxConfig(level="basic", min_level="isolated")


def _caps(**kw: object) -> Capabilities:
    base: dict[str, object] = {
        "linux": True,
        "root": True,
        "landlock_abi": 0,
        "seccomp": "ok",
        "namespaces": "ok",
        "setuid": "ok",
        "cgroups": CgroupSupport(),
        "python": "/usr/bin/python3",
        "unprivileged_python": "/usr/bin/python3",
    }
    base.update(kw)
    return Capabilities(**base)  # type: ignore[arg-type]


def test_resolve_level_refuses_weaker_than_asked() -> None:
    no_landlock = _caps(landlock_abi=0, unprivileged_python=None, unprivileged_python_reason="no")
    assert resolve_level(SandboxConfig(), no_landlock) == "isolated"
    with pytest.raises(SandboxUnavailable, match="no"):
        resolve_level(SandboxConfig(level="restricted"), no_landlock)
    # restricted needs ipc + mount namespaces too (private SysV IPC, disk-capped work dir)
    caps = _caps(namespaces="EPERM: unshare")
    assert resolve_level(SandboxConfig(), caps) == "basic"
    for level in ("restricted", "isolated"):
        with pytest.raises(SandboxUnavailable, match="unshare"):
            resolve_level(SandboxConfig(level=level), caps)  # type: ignore[arg-type]
    with pytest.raises(SandboxUnavailable, match="refusing to run below"):
        resolve_level(SandboxConfig(min_level="restricted"), caps)
    user = _caps(root=False)
    assert user.available() == ("basic",)
    with pytest.raises(SandboxUnavailable, match="needs root"):
        resolve_level(SandboxConfig(min_level="restricted"), user)


def test_refusal_runs_nothing(tmp_path: object) -> None:
    caps = detect()
    if caps.best() == "isolated":
        pytest.skip("every level is available here; refusal is covered with fake capabilities")
    with pytest.raises(SandboxUnavailable):
        run(Program("print(1)"), SandboxConfig(level="isolated"))


def test_layers_grow_with_level() -> None:
    caps = _caps(landlock_abi=6)
    basic, restricted, isolated = (caps.layers(lv) for lv in LEVELS)
    assert set(basic) < set(restricted) < set(isolated)
    assert "seccomp deny-list" in restricted and "pid namespace" in isolated
    assert "landlock (ABI 6)" in restricted


def test_detect_is_cached_and_describes_machine() -> None:
    assert detect() is detect()
    caps = detect()
    assert caps.available()[0] == "basic"
    if os.geteuid() == 0:
        assert caps.root


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_program_runs_as_main_with_exit_builtins(level: str) -> None:
    src = (
        "import sys\nprint(__name__, __file__, sys.argv)\nif __name__ == '__main__':\n    exit(3)\n"
    )
    r = go(src, level, argv=("x",))
    assert (r.verdict, r.exit_code) == ("error", 3), r.stderr
    assert r.stdout == b"__main__ main.py ['main.py', 'x']\n"


def test_only_the_standard_library_is_importable() -> None:
    src = "import json, re\ntry:\n    import numpy\nexcept ImportError:\n    print('no numpy')\n"
    r = go(src)
    assert r.stdout == b"no numpy\n"


@needs_isolated
def test_multiprocessing_works_when_isolated() -> None:
    src = (
        "from multiprocessing import Pool\n"
        "def sq(x):\n"
        "    return x * x\n"
        "if __name__ == '__main__':\n"
        "    with Pool(2) as p:\n"
        "        print(sum(p.map(sq, range(100))))\n"
    )
    r = go(src, "isolated", wall_s=10)
    assert r.verdict == "ok" and r.stdout == b"328350\n", r.stderr
