"""A seccomp-BPF deny-list for sandboxed programs, assembled by hand (stdlib only).

The filter is a deny-list, not an allow-list: CPython and the C library need a few hundred
system calls and an allow-list breaks on every libc update. What it refuses (``EPERM`` unless
noted) are the calls a sandboxed program never needs and that widen the kernel's attack surface
or escape the other layers: creating sockets (no network, no unix sockets: ``socketpair`` stays
allowed), new namespaces (``unshare``, ``setns``, ``clone`` with a namespace flag; ``clone3`` gets
``ENOSYS`` so the C library falls back to ``clone``, whose flags a filter can read), ``ptrace`` and
cross-process memory access, mounts, ``bpf``, ``perf_event_open``, ``io_uring`` (its operations
bypass seccomp), ``userfaultfd``, keyrings, kernel modules, ``kexec``, ``reboot``, clock and
hostname changes, ``TIOCSTI`` terminal injection, ``memfd_create`` and ``execveat`` (so the only
way to start a program is ``execve`` of a path, which Landlock and ``noexec`` mounts judge).
Calls from a foreign ABI (x32, i386 via ``int 0x80``) kill the process.

Only x86_64 has a table here; elsewhere :func:`supported` is False and the layer is reported as
unavailable (never silently skipped). Must be imported without ``rewardlab`` on the path.
"""

from __future__ import annotations

import ctypes
import errno
import struct

try:
    from . import _linux as linux
except ImportError:  # stand-alone, inside the supervisor
    import _linux as linux  # type: ignore[no-redef]

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

SECCOMP_MODE_FILTER = 2
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

# BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

# seccomp_data offsets: int nr; u32 arch; u64 ip; u64 args[6]
_OFF_NR, _OFF_ARCH, _OFF_ARG0_LO, _OFF_ARG1_LO = 0, 4, 16, 24

TIOCSTI = 0x5412

DENIED_X86_64: dict[str, int] = {
    "socket": 41,
    "ptrace": 101,
    "syslog": 103,
    "personality": 135,
    "uselib": 134,
    "vhangup": 153,
    "pivot_root": 155,
    "adjtimex": 159,
    "chroot": 161,
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "sethostname": 170,
    "setdomainname": 171,
    "iopl": 172,
    "ioperm": 173,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "nfsservctl": 180,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "unshare": 272,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "clock_adjtime": 305,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "memfd_create": 319,  # an anonymous file would be an executable outside every mount
    "execveat": 322,  # fexecve / AT_EMPTY_PATH: exec of an fd (a memfd, an O_PATH handle)
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
    "quotactl_fd": 443,
}
_CLONE_X86_64 = 56
_CLONE3_X86_64 = 435
_IOCTL_X86_64 = 16


def supported() -> bool:
    """Whether a filter table exists for this architecture."""
    return linux.machine() == "x86_64"


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def build_filter() -> bytes:
    """The BPF program as raw ``struct sock_filter`` bytes (x86_64)."""
    deny = SECCOMP_RET_ERRNO | errno.EPERM
    prog = [
        _insn(_LD_W_ABS, _OFF_ARCH),
        _insn(_JEQ_K, AUDIT_ARCH_X86_64, jt=1),  # foreign ABI (i386): kill
        _insn(_RET_K, SECCOMP_RET_KILL_PROCESS),
        _insn(_LD_W_ABS, _OFF_NR),
        _insn(_JGE_K, X32_SYSCALL_BIT, jf=1),  # x32 ABI: kill
        _insn(_RET_K, SECCOMP_RET_KILL_PROCESS),
    ]
    for nr in DENIED_X86_64.values():
        prog += [_insn(_JEQ_K, nr, jf=1), _insn(_RET_K, deny)]
    allow = SECCOMP_RET_ALLOW
    prog += [
        _insn(_JEQ_K, _CLONE3_X86_64, jf=1),
        _insn(_RET_K, SECCOMP_RET_ERRNO | errno.ENOSYS),
        # clone(flags, ...): refuse any namespace flag (low 32 bits of arg 0)
        _insn(_JEQ_K, _CLONE_X86_64, jf=4),
        _insn(_LD_W_ABS, _OFF_ARG0_LO),
        _insn(_JSET_K, linux.NAMESPACE_FLAGS, jf=1),
        _insn(_RET_K, deny),
        _insn(_RET_K, allow),
        # ioctl(fd, TIOCSTI, ...): refuse terminal input injection
        _insn(_JEQ_K, _IOCTL_X86_64, jf=4),
        _insn(_LD_W_ABS, _OFF_ARG1_LO),
        _insn(_JEQ_K, TIOCSTI, jf=1),
        _insn(_RET_K, deny),
        _insn(_RET_K, allow),
        _insn(_RET_K, allow),
    ]
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install() -> None:
    """Install the filter on the calling thread (inherited by children and across exec).

    Requires ``no_new_privs`` (or CAP_SYS_ADMIN). Raises OSError if the kernel refuses.
    """
    if not supported():
        raise OSError(errno.ENOSYS, f"no seccomp table for {linux.machine()}")
    raw = build_filter()
    buf = ctypes.create_string_buffer(raw, len(raw))
    prog = _SockFprog(len(raw) // 8, ctypes.cast(buf, ctypes.c_void_p))
    res = linux.libc().prctl(
        linux.PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0
    )
    if res != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp: {errno.errorcode.get(err, err)}")
