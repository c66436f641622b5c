"""The solution process (untrusted side of the judge): loads the solution, answers requests.

Copied into the sandbox as ``_rl_worker.py`` and started by the judge process with pipes on
stdin/stdout. It loads ``solution.py`` as module ``solution`` (so ``if __name__ == "__main__"``
blocks stay quiet), points the solution's own stdin/stdout at ``/dev/null``, then answers one
JSON request per line:

* ``{"op": "eval", "expr": E}`` -> the value of ``E`` in the solution's namespace;
* ``{"op": "call", "name": N, "args": A, "kwargs": K}`` -> ``N(*A, **K)``.

Answers are ``{"ok": true, "value": <encoded>}`` or ``{"ok": false, "type": T, "error": msg}``.
Nothing this process says is trusted: its values are compared by others, outside it.
"""

import ctypes
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.getcwd())
from _rl_codec import decode, encode

sys.path.pop(0)


def _scope_signals() -> None:
    """Enter a nested Landlock domain that may not signal the judge (Landlock ABI >= 6).

    Best effort: where the kernel lacks it, a stopped or killed judge still only means the
    tests have no record, i.e. fail.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    attr = (ctypes.c_uint64 * 3)(0, 0, 0b11)  # scoped: abstract unix sockets + signals
    fd = libc.syscall(444, ctypes.byref(attr), ctypes.c_size_t(24), 0)
    if fd >= 0:
        libc.syscall(446, fd, 0)
        os.close(fd)


def main() -> None:
    _scope_signals()
    rpc_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    rpc_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)

    def answer(msg: dict[str, Any]) -> None:
        rpc_out.write(json.dumps(msg) + "\n")
        rpc_out.flush()

    namespace: dict[str, Any] = {"__name__": "solution", "__builtins__": __builtins__}
    try:
        with open("solution.py", "rb") as f:
            source = f.read()
        exec(compile(source, "solution.py", "exec"), namespace)
        entry = sys.argv[1] if len(sys.argv) > 1 else ""
        if entry and entry in namespace:
            namespace.setdefault("candidate", namespace[entry])
        answer({"ready": True})
    except BaseException as exc:
        answer({"ready": False, "type": type(exc).__name__, "error": str(exc)[:500]})
        return
    for line in rpc_in:
        try:
            req = json.loads(line)
            if req["op"] == "eval":
                value = eval(req["expr"], namespace)
            else:
                args, kwargs = decode(req["args"]), decode(req["kwargs"])
                value = namespace[req["name"]](*args, **kwargs)
            answer({"ok": True, "value": encode(value)})
        except BaseException as exc:
            answer({"ok": False, "type": type(exc).__name__, "error": str(exc)[:500]})


if __name__ == "__main__":
    main()
