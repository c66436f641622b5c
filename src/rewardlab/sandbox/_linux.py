"""Thin ctypes wrappers over the Linux system calls the sandbox needs (stdlib only).

This module is imported both by the trusted parent (``rewardlab.sandbox._linux``) and by the
stand-alone supervisor script (as ``_linux``, with no ``rewardlab`` on the path), so it must not
import anything from ``rewardlab``. Every wrapper raises ``OSError`` with the kernel's errno.
Nothing happens at import: libc is opened on first use.
"""

from __future__ import annotations

import ctypes
import os

# clone/unshare flags (linux/sched.h)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWTIME = 0x00000080
NAMESPACE_FLAGS = (
    CLONE_NEWNS
    | CLONE_NEWCGROUP
    | CLONE_NEWUTS
    | CLONE_NEWIPC
    | CLONE_NEWUSER
    | CLONE_NEWPID
    | CLONE_NEWNET
    | CLONE_NEWTIME
)

# mount flags (linux/mount.h)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

# prctl options (linux/prctl.h)
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_SET_CHILD_SUBREAPER = 36

# x86_64 syscall numbers used directly (no glibc wrapper in older libcs)
_SYSCALLS = {
    "x86_64": {
        "pivot_root": 155,
        "landlock_create_ruleset": 444,
        "landlock_add_rule": 445,
        "landlock_restrict_self": 446,
        "pidfd_open": 434,
    },
    "aarch64": {
        "pivot_root": 41,
        "landlock_create_ruleset": 444,
        "landlock_add_rule": 445,
        "landlock_restrict_self": 446,
        "pidfd_open": 434,
    },
}


def machine() -> str:
    """The CPU architecture name as the kernel reports it (``x86_64``, ``aarch64`` ...)."""
    return os.uname().machine


def syscall_number(name: str) -> int:
    """The number of ``name`` on this architecture; KeyError where it is not known."""
    return _SYSCALLS[machine()][name]


_LIBC: list[ctypes.CDLL] = []  # opened on first use, then reused


def libc() -> ctypes.CDLL:
    """The C library, opened once with errno tracking."""
    if _LIBC:
        return _LIBC[0]
    lib = ctypes.CDLL(None, use_errno=True)
    lib.syscall.restype = ctypes.c_long
    lib.prctl.restype = ctypes.c_int
    lib.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    _LIBC.append(lib)
    return lib


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def syscall(name: str, *args: object) -> int:
    """Call a raw system call by name; returns its result or raises OSError."""
    return _check(libc().syscall(syscall_number(name), *args), name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """``prctl(2)``."""
    return _check(libc().prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")


def unshare(flags: int) -> None:
    """``unshare(2)``: move the caller into new namespaces (pid: its future children)."""
    _check(libc().unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    """``mount(2)``."""

    def enc(s: str | None) -> bytes | None:
        return None if s is None else s.encode()

    result = libc().mount(
        enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data) if data else None
    )
    _check(result, f"mount {source} -> {target}")


def umount2(target: str, flags: int) -> None:
    """``umount2(2)``."""
    _check(libc().umount2(target.encode(), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """``pivot_root(2)``."""
    syscall("pivot_root", new_root.encode(), put_old.encode())


def sethostname(name: str) -> None:
    """``sethostname(2)`` (in a private UTS namespace)."""
    raw = name.encode()
    _check(libc().sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def set_no_new_privs() -> None:
    """``PR_SET_NO_NEW_PRIVS``: execve can never grant privileges (setuid bits, file caps)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def no_new_privs() -> bool:
    """Whether ``no_new_privs`` is set on the caller."""
    return prctl(PR_GET_NO_NEW_PRIVS) == 1


def set_parent_death_signal(sig: int) -> None:
    """Ask the kernel to send ``sig`` to the caller when its parent thread exits."""
    prctl(PR_SET_PDEATHSIG, sig)


def set_dumpable(flag: bool) -> None:
    """``PR_SET_DUMPABLE``; 0 also closes ``/proc/<pid>/{mem,fd,environ}`` to same-uid peers."""
    prctl(PR_SET_DUMPABLE, int(flag))


def set_child_subreaper() -> None:
    """Orphaned descendants are re-parented to the caller instead of to init."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def pidfd_open(pid: int) -> int:
    """A pollable file descriptor that becomes readable when ``pid`` exits."""
    if hasattr(os, "pidfd_open"):
        return os.pidfd_open(pid)
    return syscall("pidfd_open", ctypes.c_int(pid), ctypes.c_uint(0))


def elf_interpreter(path: str) -> str | None:
    """The dynamic loader named in an ELF executable's ``PT_INTERP`` header, or None.

    Landlock checks the execute right on the loader as well as on the program, so both must be
    allowed for ``execve`` of a dynamically linked interpreter to work.
    """
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
                return None
            endian = "<" if head[5] == 1 else ">"
            phoff, phentsize, phnum = (
                struct.unpack_from(endian + "Q", head, 32)[0],
                *struct.unpack_from(endian + "HH", head, 54),
            )
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                p_type, _flags, p_offset, _vaddr, _paddr, p_filesz = struct.unpack(
                    endian + "IIQQQQ", f.read(40)
                )
                if p_type == 3:  # PT_INTERP
                    f.seek(p_offset)
                    return f.read(p_filesz).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    return None
