"""The trusted launcher: applies the isolation layers, runs one program, reaps it, reports.

Run by the parent as ``python -I -S _supervisor.py CONTROL_FD STATUS_FD`` with an empty
environment: the control pipe carries the job (length-prefixed ``marshal`` data from the
trusted parent), then any byte or EOF means "kill everything now"; the status pipe carries one
JSON line back (the parent never unmarshals anything); fds 0-2 are the program's
stdin/stdout/stderr. It imports only the standard
library and its sibling ``_linux``/``_seccomp``/``_landlock`` modules.

Process tree::

    parent (rewardlab)                               trusted, measures wall time, kills on timeout
     └─ supervisor (root; own session; pids/cpu/memory cgroups)
         └─ [isolated] init = pid 1 of new pid/net/mount/ipc/uts namespaces, private root fs
             └─ program (own session; rlimits; uid dropped; no_new_privs; Landlock; seccomp)

The supervisor/init never runs untrusted code, is non-dumpable (its /proc entries are closed
to the program) and is the only writer of the status line, so the status the parent reads
(exit code, signal, CPU time, peak RSS) cannot be forged by the program. When the program ends
(or on request, or when the parent dies) everything it left behind is killed: by the death of
the pid namespace's init, by ``kill(-1)`` as the sandbox's dedicated uid, and by walking the
subreaper's children. ``--probe`` prints what this kernel allows instead.
"""

from __future__ import annotations

import _signal as signal  # the C module: ``signal`` itself would import enum, functools ...
import marshal
import os
import resource
import select
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _landlock
import _linux
import _rootfs
import _seccomp

TYPE_CHECKING = False
if TYPE_CHECKING:  # start-up time matters here: typing is imported by the type checker only
    from collections.abc import Callable
    from typing import Any

    Job = dict[str, Any]
CONTROL_FD, STATUS_FD = 3, 4  # replaced by the numbers given on the command line
_RLIMITS = {
    "AS": resource.RLIMIT_AS,
    "CPU": resource.RLIMIT_CPU,
    "NPROC": resource.RLIMIT_NPROC,
    "NOFILE": resource.RLIMIT_NOFILE,
    "FSIZE": resource.RLIMIT_FSIZE,
    "CORE": resource.RLIMIT_CORE,
    "STACK": resource.RLIMIT_STACK,
    "MEMLOCK": resource.RLIMIT_MEMLOCK,
    "MSGQUEUE": resource.RLIMIT_MSGQUEUE,
}


def _json(value: object) -> str:
    """JSON for the status line's flat values (``json`` costs milliseconds of start-up)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_json(str(k))}: {_json(v)}" for k, v in value.items()) + "}"
    escaped = "".join(
        "\\" + c if c in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x20 else c for c in str(value)
    )
    return f'"{escaped}"'


def _report(status: Job) -> None:
    try:  # noqa: SIM105 - contextlib costs start-up time
        os.write(STATUS_FD, (_json(status) + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def _read_job() -> Job:
    """The job: a 4-byte length, then ``marshal`` data written by the (trusted) parent."""
    buf = b""
    while len(buf) < 4 or len(buf) < 4 + int.from_bytes(buf[:4], "little"):
        chunk = os.read(CONTROL_FD, 1 << 16)
        if not chunk:
            raise SystemExit(3)  # parent went away before sending the job
        buf += chunk
    job: Job = marshal.loads(buf[4:])
    return job


# -------------------------------------------------------------------------- the program


def _exec_program(job: Job, errpipe: int) -> None:
    """In the forked child: apply the per-process layers in order, then exec. Never returns."""
    try:
        os.setsid()
        os.chdir(job["cwd"])
        os.closerange(3, errpipe)
        os.closerange(errpipe + 1, 1 << 16)
        for name, value in job["rlimits"].items():
            soft, hard = value if isinstance(value, list) else (value, value)
            resource.setrlimit(_RLIMITS[name], (soft, hard))
        if job["uid"] is not None:
            os.setgroups([])
            os.setresgid(job["gid"], job["gid"], job["gid"])
            os.setresuid(job["uid"], job["uid"], job["uid"])
            if os.getuid() != job["uid"] or os.geteuid() != job["uid"]:
                raise OSError("uid was not dropped")
        _linux.set_parent_death_signal(signal.SIGKILL)  # after setresuid, which clears it
        if job["no_new_privs"]:
            _linux.set_no_new_privs()
        if job["landlock"]:
            ll = job["landlock"]
            _landlock.restrict(ll["read"], ll["write"], ll["execute"], ll["devices"])
        if job["seccomp"]:
            _seccomp.install()
        os.execve(job["python"], job["exec_argv"], job["env"])
    except BaseException as exc:  # report the failed layer, never run unconfined
        try:
            os.write(errpipe, f"{type(exc).__name__}: {exc}".encode()[:4000])
        finally:
            os._exit(127)


def _children() -> list[int]:
    pids: list[int] = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return pids


def _kill_everything(job: Job, is_ns_init: bool) -> None:
    """Kill every process the program left, then reap them all (we are their subreaper)."""
    if is_ns_init:
        try:  # noqa: SIM105 - as pid 1 of the namespace: everyone else in it
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
    elif job["uid"] is not None:
        helper = os.fork()
        if helper == 0:  # as the dedicated uid, kill(-1) reaches exactly the sandbox's processes
            try:
                os.setresuid(job["uid"], job["uid"], job["uid"])
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(helper, 0)


def _reap_all() -> list[tuple[int, int]]:
    reaped: list[tuple[int, int]] = []
    while True:
        for pid in _children():
            try:  # noqa: SIM105
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            pid, status, _ = os.wait4(-1, 0)
        except ChildProcessError:
            return reaped
        reaped.append((pid, status))


def _supervise(job: Job, control: int | None, is_ns_init: bool) -> None:
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _exec_program(job, w)
    os.close(w)
    setup_error = b""
    while chunk := os.read(r, 4096):
        setup_error += chunk
    os.close(r)
    status: int | None = None
    requested = False
    if not setup_error:
        pidfd = _linux.pidfd_open(pid)
        watch = [pidfd] + ([control] if control is not None else [])
        while status is None:
            ready, _, _ = select.select(watch, [], [], 0.5)
            while True:  # reap orphans re-parented to us, and the program when it ends
                try:
                    done, st, _ = os.wait4(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if done == 0:
                    break
                if done == pid:
                    status = st
            if control is not None and control in ready and status is None:
                data = os.read(control, 64)
                requested = True
                _ = data  # any byte, or EOF (the parent died), means: stop now
                break
    _kill_everything(job, is_ns_init)
    for done, st in _reap_all():
        if done == pid and status is None:
            status = st
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out: Job = {
        "setup_error": setup_error.decode(errors="replace") or None,
        "killed_by_request": requested,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_kb": usage.ru_maxrss,
        "exit_code": None,
        "signal": None,
    }
    if status is not None:
        if os.WIFEXITED(status):
            out["exit_code"] = os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            out["signal"] = os.WTERMSIG(status)
    _report(out)


# --------------------------------------------------------------------------------- entry


def _join_cgroups(paths: list[str]) -> None:
    for path in paths:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))


def _run(job: Job) -> None:
    _linux.set_parent_death_signal(signal.SIGKILL)
    _linux.set_dumpable(False)
    _join_cgroups(job["cgroups"])
    if not job["namespaces"]:
        if job["private_ipc_mount"]:  # restricted: own SysV IPC and a disk-capped work dir
            _linux.unshare(_linux.CLONE_NEWIPC | _linux.CLONE_NEWNS)
            _rootfs.private_workdir(job)
        _linux.set_child_subreaper()
        _supervise(job, CONTROL_FD, is_ns_init=False)
        return
    _linux.unshare(_linux.CLONE_NEWPID)
    init = os.fork()
    if init == 0:
        try:
            _linux.set_parent_death_signal(signal.SIGKILL)
            _linux.unshare(
                _linux.CLONE_NEWNS | _linux.CLONE_NEWNET | _linux.CLONE_NEWIPC | _linux.CLONE_NEWUTS
            )
            _rootfs.build_root(job)
            _supervise(job, CONTROL_FD, is_ns_init=True)
            os._exit(0)
        except BaseException as exc:
            _report({"setup_error": f"namespace set-up: {type(exc).__name__}: {exc}"})
            os._exit(1)
    os.close(CONTROL_FD)  # init watches it: a kill request or EOF makes init kill everything
    os.waitpid(init, 0)


def _probe() -> Job:
    """What this kernel lets a root process do, tried in throw-away children."""
    report: Job = {
        "euid": os.geteuid(),
        "landlock_abi": _landlock.abi(),
        "seccomp_arch": _seccomp.supported(),
    }

    def attempt(fn: Callable[[], None]) -> str:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                fn()
                os.write(w, b"ok")
            except BaseException as exc:
                os.write(w, f"{type(exc).__name__}: {exc}".encode())
            os._exit(0)
        os.close(w)
        msg = os.read(r, 4096).decode(errors="replace")
        os.close(r)
        os.waitpid(pid, 0)
        return msg or "child died"

    def namespaces() -> None:
        _linux.unshare(
            _linux.CLONE_NEWPID
            | _linux.CLONE_NEWNS
            | _linux.CLONE_NEWNET
            | _linux.CLONE_NEWIPC
            | _linux.CLONE_NEWUTS
        )
        _linux.mount(None, "/", None, _linux.MS_REC | _linux.MS_PRIVATE)
        _linux.mount("tmpfs", "/mnt", "tmpfs", 0, "size=1m")
        child = os.fork()
        if child == 0:
            _linux.mount("proc", "/mnt", "proc", 0, "")
            os._exit(0 if os.getpid() == 1 else 1)
        _, st = os.waitpid(child, 0)
        if st != 0:
            raise OSError("could not mount /proc as pid 1 of a new pid namespace")

    def seccomp() -> None:
        _linux.set_no_new_privs()
        _seccomp.install()

    def setuid() -> None:
        os.setresgid(65534, 65534, 65534)
        os.setresuid(65534, 65534, 65534)

    report["namespaces"] = attempt(namespaces)
    report["seccomp"] = attempt(seccomp) if _seccomp.supported() else "no table for this arch"
    report["setuid"] = attempt(setuid)
    return report


def main() -> None:
    if sys.argv[1:] == ["--probe"]:
        print(_json(_probe()))
        return
    global CONTROL_FD, STATUS_FD
    CONTROL_FD, STATUS_FD = int(sys.argv[1]), int(sys.argv[2])
    job = _read_job()
    try:
        _run(job)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        _report({"setup_error": f"supervisor: {type(exc).__name__}: {exc}"})
        import traceback

        traceback.print_exc(file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
