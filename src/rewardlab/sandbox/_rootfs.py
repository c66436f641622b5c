"""The private root of the ``isolated`` level: a read-only tmpfs with the system directories
and the interpreter bound in, minimal ``/etc`` and ``/dev``, a fresh ``/proc``, a size-capped
tmpfs ``/work`` holding the program's files and a private ``/dev/shm``; then ``pivot_root``.

Run by the supervisor's namespace init (root, in fresh mount/pid namespaces) before anything
untrusted starts. Stand-alone: imported without ``rewardlab`` on the path.
"""

from __future__ import annotations

import os

import _linux

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Job = dict[str, Any]

WORK = "/work"  # the program's directory inside the private root
_DEVICES = ("null", "zero", "full", "random", "urandom")


def bind(src: str, dst: str, writable: bool = False, device: bool = False) -> None:
    if os.path.isdir(src):
        os.makedirs(dst, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        open(dst, "a").close()
    _linux.mount(src, dst, None, _linux.MS_BIND)
    flags = _linux.MS_REMOUNT | _linux.MS_BIND | _linux.MS_NOSUID
    flags |= _linux.MS_NOEXEC if device else _linux.MS_NODEV
    if not writable:
        flags |= _linux.MS_RDONLY
    _linux.mount(None, dst, None, flags)


def _system_tree(root: str, binds: list[str]) -> None:
    """A fresh tmpfs at ``root`` (mounts made private first) with the system paths ``binds``
    bound read-only (symlinks copied), the harmless ``/dev`` nodes and the ``/dev/fd``,
    ``stdin``, ``stdout``, ``stderr`` links: what every private root starts from."""
    _linux.mount(None, "/", None, _linux.MS_REC | _linux.MS_PRIVATE)
    _linux.mount("tmpfs", root, "tmpfs", _linux.MS_NOSUID | _linux.MS_NODEV, "size=4m,mode=0755")
    for src in binds:
        dst = root + src
        if os.path.islink(src):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            os.symlink(os.readlink(src), dst)
        elif os.path.exists(src):
            bind(src, dst)
    os.makedirs(root + "/dev", exist_ok=True)
    for dev in _DEVICES:
        if os.path.exists("/dev/" + dev):
            bind("/dev/" + dev, f"{root}/dev/{dev}", writable=True, device=True)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0")):
        os.symlink(target, f"{root}/dev/{name}")
    os.symlink("/proc/self/fd/1", f"{root}/dev/stdout")
    os.symlink("/proc/self/fd/2", f"{root}/dev/stderr")


def _etc(root: str, uid: int, gid: int) -> None:
    """A minimal ``/etc``: the loader cache and local time bound in, ``passwd`` and ``group``
    naming root and the sandbox user."""
    os.makedirs(root + "/etc", exist_ok=True)
    for src in ("/etc/ld.so.cache", "/etc/localtime"):
        if os.path.exists(src):
            bind(os.path.realpath(src), root + src)
    with open(root + "/etc/passwd", "w") as f:
        f.write(f"root:x:0:0::/:/bin/false\nsandbox:x:{uid}:{gid}::{WORK}:/bin/false\n")
    with open(root + "/etc/group", "w") as f:
        f.write(f"root:x:0:\nsandbox:x:{gid}:\n")


def build_root(job: Job) -> None:
    """Mount a fresh tmpfs root with read-only system dirs, /dev, /proc and a capped /work."""
    root, fs = job["root"], job["fs"]
    _system_tree(root, fs["binds"])
    os.makedirs(root + "/dev/shm", exist_ok=True)  # private: POSIX semaphores (multiprocessing)
    _linux.mount(
        "tmpfs",
        root + "/dev/shm",
        "tmpfs",
        _linux.MS_NOSUID | _linux.MS_NODEV | _linux.MS_NOEXEC,
        f"size={max(fs['disk_bytes'] // 4, 1 << 20)},nr_inodes=256,mode=1777",
    )
    uid, gid = job["uid"] or 0, job["gid"] or 0
    _etc(root, uid, gid)
    os.makedirs(root + "/proc", exist_ok=True)
    proc_flags = _linux.MS_NOSUID | _linux.MS_NODEV | _linux.MS_NOEXEC
    for opts in ("hidepid=invisible,subset=pid", "hidepid=2", ""):
        try:
            _linux.mount("proc", root + "/proc", "proc", proc_flags, opts)
            break
        except OSError:
            if not opts:
                raise
    os.makedirs(root + WORK, exist_ok=True)
    _linux.mount(
        "tmpfs",
        root + WORK,
        "tmpfs",
        _linux.MS_NOSUID | _linux.MS_NODEV | _linux.MS_NOEXEC,
        f"size={fs['disk_bytes']},nr_inodes=4096,mode=0700,uid={uid},gid={gid}",
    )
    copy_tree(job["workdir"], root + WORK, uid, gid)
    _linux.mount(None, root, None, _linux.MS_REMOUNT | _linux.MS_RDONLY | _linux.MS_NOSUID)
    os.chdir(root)
    _linux.pivot_root(".", ".")
    _linux.umount2(".", _linux.MNT_DETACH)
    os.chdir("/")
    _linux.sethostname("sandbox")


def private_workdir(job: Job) -> None:
    """``restricted``: in a fresh mount namespace, a size-capped ``noexec`` tmpfs on the run's
    directory (``job["cwd"]``) holding a copy of the program's files: the disk quota, gone
    with the namespace when the run ends (nothing to unmount, nothing left on the host)."""
    _linux.mount(None, "/", None, _linux.MS_REC | _linux.MS_PRIVATE)
    uid, gid = job["uid"] or 0, job["gid"] or 0
    _linux.mount(
        "tmpfs",
        job["cwd"],
        "tmpfs",
        _linux.MS_NOSUID | _linux.MS_NODEV | _linux.MS_NOEXEC,
        f"size={job['fs']['disk_bytes']},nr_inodes=4096,mode=0700,uid={uid},gid={gid}",
    )
    copy_tree(job["workdir"], job["cwd"], uid, gid)


def copy_tree(src: str, dst: str, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        target = dst if rel == "." else os.path.join(dst, rel)
        for d in dirnames:
            os.makedirs(os.path.join(target, d), exist_ok=True)
            os.chown(os.path.join(target, d), uid, gid)
        for name in filenames:
            out = os.path.join(target, name)
            with open(os.path.join(dirpath, name), "rb") as fin, open(out, "wb") as fout:
                while block := fin.read(1 << 20):
                    fout.write(block)
            os.chown(out, uid, gid)


# ------------------------------------------------------------------------------ zygote


def build_base(spec: Job) -> None:
    """The zygote's part, done once: the read-only private root (system dirs, interpreter,
    ``/dev``, ``/etc``; empty mount points ``/proc``, ``/work``, ``/dev/shm``), pivoted into,
    in the zygote's own mount namespace. Nothing of any run is in it."""
    root = spec["root"]
    _system_tree(root, spec["binds"])
    for d in ("/dev/shm", "/etc", "/proc", WORK):
        os.makedirs(root + d, exist_ok=True)
    _etc(root, spec["uid"], spec["gid"])
    _linux.mount(None, root, None, _linux.MS_REMOUNT | _linux.MS_RDONLY | _linux.MS_NOSUID)
    os.chdir(root)
    _linux.pivot_root(".", ".")
    _linux.umount2(".", _linux.MNT_DETACH)
    os.chdir("/")
    _linux.sethostname("sandbox")


def mount_run(job: Job) -> None:
    """One run's part, in the run's fresh mount (and pid) namespace: its own ``/proc``, a
    fresh size-capped ``noexec`` tmpfs ``/work`` holding the program's files (sent in the job,
    never on the host's disk), a fresh private ``/dev/shm``."""
    _linux.mount(None, "/", None, _linux.MS_REC | _linux.MS_PRIVATE)
    flags = _linux.MS_NOSUID | _linux.MS_NODEV | _linux.MS_NOEXEC
    for opts in ("hidepid=invisible,subset=pid", "hidepid=2", ""):
        try:
            _linux.mount("proc", "/proc", "proc", flags, opts)
            break
        except OSError:
            if not opts:
                raise
    disk, uid, gid = job["fs"]["disk_bytes"], job["uid"], job["gid"]
    _linux.mount(
        "tmpfs", WORK, "tmpfs", flags, f"size={disk},nr_inodes=4096,mode=0700,uid={uid},gid={gid}"
    )
    _linux.mount(
        "tmpfs",
        "/dev/shm",
        "tmpfs",
        flags,
        f"size={max(disk // 4, 1 << 20)},nr_inodes=256,mode=1777",
    )
    for name, data in job["files"].items():
        path = os.path.join(WORK, name)
        _makedirs_owned(os.path.dirname(path), uid, gid)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)


def _makedirs_owned(path: str, uid: int, gid: int) -> None:
    if os.path.isdir(path):
        return
    _makedirs_owned(os.path.dirname(path), uid, gid)
    os.mkdir(path, 0o755)
    os.chown(path, uid, gid)
