"""Landlock (Linux >= 5.13): an unprivileged, stackable file-system and network policy.

:func:`restrict` confines the calling process and everything it later executes: files may be
read only beneath ``read`` paths, written only beneath ``write`` paths, and executed only where
``execute`` allows (the interpreter itself, so ``os.system``, ``execv('/bin/sh')`` and friends
fail with ``EACCES``). From ABI 2 links and renames across directories are refused (hard-link
tricks), from ABI 4 TCP bind/connect is refused, from ABI 6 the process may neither signal
processes outside its domain nor reach abstract unix sockets outside it.

Stand-alone: imported by the supervisor script without ``rewardlab`` on the path.
"""

from __future__ import annotations

import ctypes
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

try:
    from . import _linux as linux
except ImportError:  # stand-alone, inside the supervisor
    import _linux as linux  # type: ignore[no-redef]

EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REFER = 1 << 13
TRUNCATE = 1 << 14
IOCTL_DEV = 1 << 15
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

NET_BIND_TCP = 1 << 0
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_O_PATH = getattr(os, "O_PATH", 0o10000000)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi() -> int:
    """The Landlock ABI version the kernel offers; 0 where Landlock is absent or disabled."""
    try:
        return linux.syscall(
            "landlock_create_ruleset", None, ctypes.c_size_t(0), _CREATE_RULESET_VERSION
        )
    except (OSError, KeyError):
        return 0


def handled_fs(version: int) -> int:
    """All file-system rights the given ABI can refuse."""
    rights = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if version >= 2:
        rights |= REFER
    if version >= 3:
        rights |= TRUNCATE
    if version >= 5:
        rights |= IOCTL_DEV
    return rights


def _add(ruleset: int, path: str, rights: int, handled: int) -> None:
    try:
        fd = os.open(path, _O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # absent paths simply grant nothing
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS
        rule = _PathBeneath(rights & handled, fd)
        linux.syscall(
            "landlock_add_rule", ctypes.c_int(ruleset), _RULE_PATH_BENEATH, ctypes.byref(rule), 0
        )
    finally:
        os.close(fd)


def restrict(
    read: Iterable[str], write: Iterable[str], execute: Iterable[str], devices: Iterable[str] = ()
) -> int:
    """Confine the caller (requires ``no_new_privs``). Returns the ABI version applied.

    Args:
        read: paths (dirs or files) that may be read beneath.
        write: directories with every right (create, write, delete, read).
        execute: files that may be executed (and read).
        devices: device files that may be read and written (``/dev/null`` ...).
    """
    version = abi()
    if version <= 0:
        raise OSError(38, "landlock unavailable")
    fs = handled_fs(version)
    attr = _RulesetAttr(fs, 0, 0)
    size = 8
    if version >= 4:
        attr.handled_access_net = NET_BIND_TCP | NET_CONNECT_TCP
        size = 16
    if version >= 6:
        attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
        size = 24
    ruleset = linux.syscall("landlock_create_ruleset", ctypes.byref(attr), ctypes.c_size_t(size), 0)
    try:
        for p in read:
            _add(ruleset, p, READ_FILE | READ_DIR, fs)
        for p in execute:
            _add(ruleset, p, READ_FILE | EXECUTE, fs)
        for p in devices:
            _add(ruleset, p, READ_FILE | WRITE_FILE | TRUNCATE, fs)
        for p in write:
            _add(ruleset, p, fs & ~EXECUTE, fs)
        linux.syscall("landlock_restrict_self", ctypes.c_int(ruleset), 0)
    finally:
        os.close(ruleset)
    return version
