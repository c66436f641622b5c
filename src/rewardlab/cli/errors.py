"""User errors on the command line: one or two lines naming the problem, never a traceback.

Every command runs inside :class:`ErrorGroup` (the root typer group). An exception that is a
user's mistake (a bad value, a missing or malformed file, an unreachable server) becomes a
``click`` error: exit code 2 for usage errors (a bad name or range, found before any work
starts) and 1 for failures during the work. Anything else is a bug and keeps its traceback.
``rewardlab --debug ...`` (or ``REWARDLAB_DEBUG=1``) shows the traceback of every error.

Ctrl-C and SIGTERM raise :class:`KeyboardInterrupt` (SIGTERM is turned into one while a command
runs); a command that knows where its work stands catches it and says how to resume (see
``cli/scale.py``); otherwise the group prints "interrupted" and exits 130 (SIGINT) or 143.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from typer.core import TyperGroup

# typer >= 0.20 vendors its own click: take the exception classes from typer's hierarchy.
UsageError: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError"
)
ClickException: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)

DEBUG_ENV = "REWARDLAB_DEBUG"
#: Exceptions that describe bad input rather than a bug in rewardlab.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RecursionError, MemoryError)


def debug_enabled() -> bool:
    """Whether tracebacks are wanted (``--debug`` sets the environment variable)."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def describe(exc: BaseException) -> str:
    """A one-line message for a user error (the exception's own message, made specific)."""
    if isinstance(exc, RecursionError):
        return "input nested too deeply to read (a JSON value nested thousands of levels?)"
    if isinstance(exc, MemoryError):
        return "out of memory (an input far larger than expected?)"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start}: {exc.reason}); is it the right file?"
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    if isinstance(exc, ConnectionError):
        return f"cannot reach the server: {exc}"
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror.lower()}: {exc.filename}"
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 2000 else text[:2000] + " ..."


class Failure(ClickException):  # type: ignore[misc,valid-type]
    """A failure during the work: ``Error: <message>``, exit code 1."""

    exit_code = 1


class BadUsage(ClickException):  # type: ignore[misc,valid-type]
    """A bad argument found before any work: ``Error: <message>``, exit code 2."""

    exit_code = 2


class Interrupted(KeyboardInterrupt):
    """A KeyboardInterrupt raised by SIGTERM (exit code 143)."""


def exit_code_of(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C (SIGINT), 143 for SIGTERM: 128 + the signal number, as a shell reports."""
    return 128 + (signal.SIGTERM if isinstance(exc, Interrupted) else signal.SIGINT)


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Interrupted` (in the main thread only)."""
    try:
        old = signal.signal(signal.SIGTERM, _raise_interrupted)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextmanager
def usage_errors(prefix: str = "") -> Iterator[None]:
    """Turn user errors raised inside (validation of arguments) into usage errors (exit 2)."""
    try:
        yield
    except ClickException:
        raise
    except USER_ERRORS as e:
        if debug_enabled():
            raise
        raise BadUsage(prefix + describe(e)) from None


#: Commands that resume when re-run with the same arguments (their work is in a store).
RESUMES_BY_RERUN = ("sample", "label")


def interrupt_note(argv: list[str]) -> str:
    """What an interrupted command prints: the command that resumes it, where there is one."""
    import shlex

    if argv and argv[0] in RESUMES_BY_RERUN:
        return (
            "\ninterrupted; everything finished so far is stored.\nresume with: rewardlab "
            + shlex.join(argv)
        )
    return "\ninterrupted."


class ErrorGroup(TyperGroup):
    """The root group: user errors as one-line messages, SIGTERM as an interrupt."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """As typer's, but errors print as plain ``Error: ...`` lines (no rich box, which
        wraps a message over many lines); help keeps its rich formatting."""
        from typer import core

        if not hasattr(core, "_main"):  # pragma: no cover - other typer versions
            return super().main(*args, **kwargs)
        names = ("args", "prog_name", "complete_var", "standalone_mode", "windows_expand_args")
        kwargs.update(zip(names, args, strict=False))
        return core._main(self, rich_markup_mode=None, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        protected = getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])
        argv = [*protected, *ctx.args]
        with sigterm_as_interrupt():
            try:
                return super().invoke(ctx)
            except (ClickException, typer.Exit, typer.Abort, BrokenPipeError):
                raise  # typer reports these itself (a closed pipe, e.g. `| head`, quietly)
            except KeyboardInterrupt as e:
                typer.echo(interrupt_note(argv), err=True)
                raise typer.Exit(exit_code_of(e)) from None
            except USER_ERRORS as e:
                if debug_enabled():
                    raise
                raise Failure(
                    describe(e) + "\n(add --debug after `rewardlab` for the traceback)"
                ) from None
