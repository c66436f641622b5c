"""The zygote of the ``isolated`` level: namespaces and the private root set up once, a fresh
child forked per execution.

Run by the parent (``rewardlab.sandbox.zygote``) as ``python -I -S -B _zygote.py SOCKET_FD``
with an empty environment, as root. Stand-alone (stdlib + its siblings), like the supervisor.

Once, at start (the *spec*, ``marshal`` data from the trusted parent): open the ``cgroup.procs``
files of the worker's cgroups; enter new mount, network (no interface up) and uts namespaces;
build the read-only private root (``_rootfs.build_base``) and pivot into it. Then, per
execution, the parent sends one ``run`` message carrying five file descriptors (stdin, stdout,
stderr, control, status) and the zygote forks. The child

* joins the worker's cgroups (so the run gets the whole budget, and nothing of the zygote is
  counted), moves the fds to 0-4, reads the job from the control pipe (the program's files
  travel in it: the zygote itself never reads any program data, so nothing of one run can be
  inherited by the next through the zygote's memory);
* unshares a new pid namespace and forks the run's init, which unshares new mount and ipc
  namespaces, mounts a fresh ``/proc``, a fresh size-capped ``noexec`` tmpfs ``/work`` with the
  files and a fresh ``/dev/shm`` (``_rootfs.mount_run``), then supervises the program exactly as
  the one-shot supervisor does (``_supervisor._supervise``: setsid, rlimits, uid drop,
  ``no_new_privs``, Landlock, seccomp, ``execve`` of a fresh interpreter; kill and reap all;
  the status line).

Per execution therefore: a fresh process and interpreter, fresh pid/mount/ipc namespaces,
fresh files, a fresh cgroup budget (the parent resets the counters and checks the groups are
empty before the next run). Shared between the *sequential* executions of one zygote: the
network namespace (no interface, ``socket()`` refused by seccomp) and the uts namespace
(``sethostname`` refused), both empty of anything a run could leave.
"""

from __future__ import annotations

import _signal as signal
import fcntl
import marshal
import os
import select
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _linux
import _rootfs
import _supervisor as sup

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Job = dict[str, Any]


def _child(fds: list[int], cgroup_procs: list[int]) -> None:
    """One execution (in the forked child). Never returns."""
    try:
        _linux.set_parent_death_signal(signal.SIGKILL)
        for fd in cgroup_procs:
            os.write(fd, b"0")  # "0": the writer itself
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 16) for fd in fds]  # so the dup2s cannot collide
        for target, fd in enumerate(high):
            os.dup2(fd, target)
        os.closerange(5, 1 << 16)
        sup.CONTROL_FD, sup.STATUS_FD = 3, 4
        job = sup._read_job()
        _linux.unshare(_linux.CLONE_NEWPID)
        init = os.fork()
        if init == 0:
            try:
                _linux.set_parent_death_signal(signal.SIGKILL)
                _linux.unshare(_linux.CLONE_NEWNS | _linux.CLONE_NEWIPC)
                _rootfs.mount_run(job)
                sup._supervise(job, 3, is_ns_init=True)
                os._exit(0)
            except BaseException as exc:
                sup._report({"setup_error": f"run set-up: {type(exc).__name__}: {exc}"})
                os._exit(1)
        for fd in range(5):  # init holds them; the parent sees EOF when the run is over
            os.close(fd)
        os.waitpid(init, 0)
    except BaseException as exc:
        sup._report({"setup_error": f"zygote child: {type(exc).__name__}: {exc}"})
    finally:
        os._exit(0)


def _reap(children: set[int]) -> None:
    while children:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)


def serve(sock: socket.socket) -> None:
    """Set up once, then fork one child per ``run`` message until the parent closes.

    No parent-death signal here: the parent may start the zygote from a short-lived thread
    (the signal follows the thread). The parent's death closes its end of the socket, and
    the EOF ends the zygote; its children have the signal (their parent is single-threaded).
    """
    _linux.set_dumpable(False)
    spec: Job = marshal.loads(sock.recv(1 << 20))
    try:
        cgroup_procs = [
            os.open(os.path.join(p, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC)
            for p in spec["cgroups"]
        ]
        _linux.unshare(_linux.CLONE_NEWNS | _linux.CLONE_NEWNET | _linux.CLONE_NEWUTS)
        _rootfs.build_base(spec)
    except BaseException as exc:
        sock.send(f"error {type(exc).__name__}: {exc}".encode()[:4000])
        return
    sock.send(b"ready")
    children: set[int] = set()
    while True:
        ready, _, _ = select.select([sock], [], [], 0.005 if children else None)
        _reap(children)
        if not ready:
            continue
        msg, fds, _flags, _addr = socket.recv_fds(sock, 64, 5)
        if not msg:
            return  # the parent closed: children die with us (parent-death signal)
        if msg != b"run" or len(fds) != 5:
            for fd in fds:
                os.close(fd)
            continue
        pid = os.fork()
        if pid == 0:
            sock.close()
            _child(fds, cgroup_procs)
        children.add(pid)
        for fd in fds:
            os.close(fd)
        sock.send(b"pid %d" % pid)  # the parent's last resort: SIGKILL it (init then dies)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    serve(sock)


if __name__ == "__main__":
    main()
