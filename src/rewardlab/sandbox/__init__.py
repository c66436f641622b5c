"""Isolated execution of untrusted Python programs, and judging them against tests.

The parent process (yours) stays trusted: it keeps the wall clock, the expected outputs and the
verdict. Levels ``basic`` < ``restricted`` < ``isolated`` are described in
:mod:`rewardlab.sandbox.config` and ``docs/sandbox.md``; ``rewardlab sandbox doctor`` says which
one this machine reaches.

>>> from rewardlab.sandbox import run, Program
>>> run(Program("print(sum(range(10)))")).stdout        # doctest: +SKIP
b'45\\n'

Importing this package does nothing but define names.
"""

from rewardlab.sandbox.config import (
    LEVELS,
    Level,
    Limits,
    Program,
    RunResult,
    SandboxConfig,
    SandboxUnavailable,
    Verdict,
)
from rewardlab.sandbox.detect import Capabilities, detect, resolve_level
from rewardlab.sandbox.doctor import DoctorReport, doctor
from rewardlab.sandbox.judge import (
    CallTest,
    JudgeResult,
    ScriptTest,
    TestOutcome,
    judge,
    parse_asserts,
    parse_check,
)
from rewardlab.sandbox.pool import SandboxPool, parallel_map
from rewardlab.sandbox.runner import run

__all__ = [
    "LEVELS",
    "CallTest",
    "Capabilities",
    "DoctorReport",
    "JudgeResult",
    "Level",
    "Limits",
    "Program",
    "RunResult",
    "SandboxConfig",
    "SandboxPool",
    "SandboxUnavailable",
    "ScriptTest",
    "TestOutcome",
    "Verdict",
    "detect",
    "doctor",
    "judge",
    "parallel_map",
    "parse_asserts",
    "parse_check",
    "resolve_level",
    "run",
]
