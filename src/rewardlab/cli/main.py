"""The ``rewardlab`` command line: every job behind one typer app.

Run ``rewardlab --help`` for the list of commands.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import typer

from rewardlab.cli import eval_process as eval_process_cmd
from rewardlab.cli import eval_rm as eval_rm_cmd
from rewardlab.cli import eval_trust as eval_trust_cmd
from rewardlab.cli import iterate as iterate_cmd
from rewardlab.cli import label as label_cmd
from rewardlab.cli import sample as sample_cmd
from rewardlab.cli import scale as scale_cmd
from rewardlab.cli import serve as serve_cmd
from rewardlab.cli import solve as solve_cmd
from rewardlab.cli import train_policy as train_policy_cmd
from rewardlab.cli import train_pref as train_pref_cmd
from rewardlab.cli import train_rm as train_rm_cmd
from rewardlab.cli import tune as tune_cmd
from rewardlab.cli import verify as verify_cmd
from rewardlab.cli.errors import DEBUG_ENV, ErrorGroup
from rewardlab.cli.runtime import THREADS_HELP

app = typer.Typer(
    name="rewardlab",
    help=(
        "Reward models and verifiers for LLM reasoning: sample, score, search, train, eval. "
        "Errors are one line (exit 2: a bad argument, 1: a failure); --debug shows tracebacks."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=ErrorGroup,
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of any error."),
) -> None:
    if debug:
        os.environ[DEBUG_ENV] = "1"


app.command("sample", help=sample_cmd.HELP)(sample_cmd.sample)
app.command("train-policy", help=train_policy_cmd.HELP)(train_policy_cmd.train_policy)
app.command("scale", help=scale_cmd.HELP)(scale_cmd.scale)
app.command("label", help=label_cmd.HELP)(label_cmd.label)
app.command("tune", help=tune_cmd.HELP)(tune_cmd.tune)
app.command("solve", help=solve_cmd.HELP)(solve_cmd.solve)
app.command("verify", help=verify_cmd.HELP)(verify_cmd.verify)
app.command("serve", help=serve_cmd.HELP)(serve_cmd.serve)
app.command("iterate", help=iterate_cmd.HELP)(iterate_cmd.iterate)
app.command("train-process", help=train_rm_cmd.HELP)(train_rm_cmd.train)
app.command("train-preference", help="Train a preference reward model (or an ensemble).")(
    train_pref_cmd.train_preference
)


def _options_of(fn: Callable[..., object]) -> str:
    """``--a, --b, ...``: the options of a command function (for the train dispatcher's help)."""
    import inspect

    return ", ".join("--" + p.replace("_", "-") for p in inspect.signature(fn).parameters)


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    epilog=(
        f"Process objectives take: {_options_of(train_rm_cmd.train)}. Preference objectives "
        f"take: {_options_of(train_pref_cmd.train_preference)}. Details and file formats: "
        "`rewardlab train-process --help`, `rewardlab train-preference --help`. Example: "
        "rewardlab train --objective prm --data labels.jsonl --out runs/prm"
    ),
    help=(
        "Train a reward model: --objective orm|prm|ovm|implicit-prm (process; options of "
        "`train-process`) or bt|bt-margin|centered|scaled-bt|regression|helpsteer2|"
        "label-smoothing|noise-robust|prdp|gpm|vpl|ctrl-u|dpo|t-reg (preference; options of "
        "`train-preference`, incl. "
        "--ensemble K). Other options pass through to that command."
    ),
)
def train(
    ctx: typer.Context,
    objective: str = typer.Option(..., help="The training objective (see above)."),
) -> None:
    target = _one_command_app(
        train_rm_cmd.train
        if train_rm_cmd.canonical_objective(objective) in train_rm_cmd.OBJECTIVES
        else train_pref_cmd.train_preference
        if objective in train_pref_cmd.PREFERENCE_OBJECTIVES
        else None,
        objective,
    )
    target(["--objective", objective, *ctx.args], standalone_mode=False)


def _one_command_app(fn: Callable[..., object] | None, objective: str) -> typer.Typer:
    if fn is None:
        import difflib

        known = [*train_rm_cmd.OBJECTIVES, *train_pref_cmd.PREFERENCE_OBJECTIVES]
        close = difflib.get_close_matches(objective, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise typer.BadParameter(f"unknown objective {objective!r}; choose one of {known}{hint}")
    sub = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    sub.command()(fn)
    return sub


eval_app = typer.Typer(
    help="Evaluate rewards: step-level (ProcessBench) and preference metrics.", no_args_is_help=True
)
eval_app.command("process", help=eval_process_cmd.HELP)(eval_process_cmd.process)
for _name, (_fn, _help) in eval_rm_cmd.COMMANDS.items():
    eval_app.command(_name.replace("_", "-"), help=_help)(_fn)
for _name, (_fn, _help) in eval_trust_cmd.COMMANDS.items():
    eval_app.command(_name.replace("_", "-"), help=_help)(_fn)
app.add_typer(eval_app, name="eval")


@app.command(
    "demo",
    help="The main job on the built-in default: `rewardlab scale` on the testbed "
    "(runs/default/; re-running resumes).",
)
def demo(
    threads: int | None = typer.Option(None, min=1, help=THREADS_HELP, show_default=False),
) -> None:
    scale_cmd.scale(
        name="default",
        resume=None,
        task=None,
        policy=None,
        pool=None,
        policy_params=None,
        n_max=None,
        problems=None,
        difficulty=None,
        rewards=None,
        strategies=None,
        seed=None,
        temperature=None,
        top_p=None,
        max_new_tokens=None,
        device=None,
        threads=threads,
        quick=False,
        online_n_max=None,
        online_problems=None,
        runs_dir=Path("runs"),
        solve_verify=None,
        backend="local",
        ray_address=None,
        ray_actors=2,
        store=None,
    )


def _mount_optional() -> None:
    """Sub-apps are mounted here (kept as functions so importing the CLI stays cheap)."""
    from rewardlab.cli.sandbox import sandbox_app

    app.add_typer(sandbox_app, name="sandbox", help="Run untrusted code in the sandbox; check it.")

    from rewardlab.cli.store import store_app

    app.add_typer(store_app, name="store")


_mount_optional()

if __name__ == "__main__":  # pragma: no cover
    app()
