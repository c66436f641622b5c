"""``rewardlab sandbox``: run an untrusted Python file in the sandbox, or check the machine.

    rewardlab sandbox doctor                 # which isolation layers are active here
    rewardlab sandbox run prog.py --stdin in.txt --wall 5 --level isolated

``run`` prints the structured result as JSON on stdout and a readable summary on stderr; its
exit status is 0 for verdict ``ok``, 1 for any other verdict, 2 when the requested level is not
available (nothing was run). ``doctor --require isolated`` exits 1 unless that level is reached.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from rewardlab.sandbox import (
    LEVELS,
    Limits,
    Program,
    SandboxConfig,
    SandboxUnavailable,
    doctor,
    run,
)
from rewardlab.sandbox.config import level_rank

sandbox_app = typer.Typer(
    help="Run untrusted Python in the sandbox; report which isolation layers are active.",
    no_args_is_help=True,
)


def _level(value: str, allow_auto: bool) -> str:
    choices = (*LEVELS, "auto") if allow_auto else LEVELS
    if value not in choices:
        raise typer.BadParameter(f"choose one of {', '.join(choices)}")
    return value


@sandbox_app.command("run")
def run_command(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Python file to run")],
    args: Annotated[list[str] | None, typer.Argument(help="arguments for the program")] = None,
    stdin: Annotated[Path | None, typer.Option(help="file fed to the program's stdin")] = None,
    level: Annotated[str, typer.Option(help="auto, basic, restricted or isolated")] = "auto",
    min_level: Annotated[str, typer.Option(help="refuse to run below this level")] = "basic",
    wall: Annotated[float, typer.Option(help="wall-clock limit, seconds")] = 10.0,
    cpu: Annotated[int, typer.Option(help="CPU limit per process, seconds")] = 10,
    memory_mb: Annotated[int, typer.Option(help="address space per process, MiB")] = 512,
    processes: Annotated[int, typer.Option(help="processes + threads")] = 32,
    output_kb: Annotated[int, typer.Option(help="bytes kept per stream, KiB")] = 1024,
    disk_mb: Annotated[int, typer.Option(help="work dir size (restricted, isolated), MiB")] = 64,
) -> None:
    """Run FILE in the sandbox; print the result as JSON and a summary."""
    config = SandboxConfig(
        limits=Limits(
            wall_s=wall,
            cpu_s=cpu,
            memory_mb=memory_mb,
            processes=processes,
            output_kb=output_kb,
            disk_mb=disk_mb,
        ),
        level=_level(level, allow_auto=True),  # type: ignore[arg-type]
        min_level=_level(min_level, allow_auto=False),  # type: ignore[arg-type]
    )
    program = Program(
        source=file.read_bytes(),
        stdin=stdin.read_bytes() if stdin else b"",
        argv=tuple(args or ()),
    )
    try:
        result = run(program, config)
    except SandboxUnavailable as exc:
        typer.echo(f"REFUSED: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    typer.echo(result.summary(), err=True)
    if result.stdout_truncated or result.stderr_truncated:
        typer.echo("note: output was truncated", err=True)
    raise typer.Exit(0 if result.ok else 1)


@sandbox_app.command("doctor")
def doctor_command(
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    live: Annotated[bool, typer.Option(help="self-test every available level")] = True,
    require: Annotated[str | None, typer.Option(help="exit 1 unless this level is reached")] = None,
) -> None:
    """Say which isolation level and layers this machine gives, and self-test them."""
    if require is not None:
        _level(require, allow_auto=False)
    report = doctor(live=live)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.text())
    failed = [c.level for c in report.live if c.level != "basic" and not c.contained]
    if failed:
        typer.echo(f"SELF-TEST FAILED at level(s): {', '.join(failed)}", err=True)
    if require is not None and (
        report.best is None or level_rank(report.best) < level_rank(require)  # type: ignore[arg-type]
    ):
        typer.echo(f"required level {require!r} is not available here", err=True)
        raise typer.Exit(1)
    if failed:
        raise typer.Exit(1)
    sys.stdout.flush()
