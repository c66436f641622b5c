"""``rewardlab store``: look at a sample store, and move a pool between SQLite and PostgreSQL."""

from __future__ import annotations

import json

import typer

store_app = typer.Typer(
    help="Sample stores: counts, and copying a pool between SQLite files and PostgreSQL "
    "databases (docs/cluster.md).",
    no_args_is_help=True,
)

LOCATION = "A SQLite file (e.g. runs/NAME/pool.sqlite) or a postgresql://user@host:port/db URL."


@store_app.command("copy")
def copy(
    src: str = typer.Argument(..., help="Store to read. " + LOCATION),
    dst: str = typer.Argument(..., help="Store to write (created if absent). " + LOCATION),
    batch: int = typer.Option(2000, min=1, help="Rows per transaction."),
) -> None:
    """Copy every candidate and score of SRC into DST. Content-keyed and append-only: what
    DST holds already is kept, so an interrupted copy resumes by running it again, and
    copying into a store that other workers write is safe. Prints a JSON line of counts."""
    from pathlib import Path

    from rewardlab.cli.progress import progress_bar
    from rewardlab.store import copy_store, is_url, open_store

    if not is_url(src) and not Path(src).is_file():
        raise typer.BadParameter(f"SRC {src}: no such store file")
    source = open_store(src)
    target = open_store(dst)
    total = source.count() + source.count_scores()
    with progress_bar(f"copying {total} rows", total) as update:
        new_c, new_s = copy_store(source, target, batch, lambda done: update(done, total))
    typer.echo(
        json.dumps(
            {
                "src": source.location,
                "dst": target.location,
                "candidates": source.count(),
                "scores": source.count_scores(),
                "new_candidates": new_c,
                "new_scores": new_s,
            }
        )
    )


@store_app.command("info")
def info(store: str = typer.Argument(..., help=LOCATION)) -> None:
    """Counts of a store as one JSON line: candidates, scores per reward, live leases."""
    from pathlib import Path

    from rewardlab.store import is_url, open_store

    if not is_url(store) and not Path(store).is_file():
        raise typer.BadParameter(f"{store}: no such store file")
    db = open_store(store)
    per_reward: dict[str, int] = {}
    for reward, *_ in db.iter_scores():
        per_reward[reward] = per_reward.get(reward, 0) + 1
    typer.echo(
        json.dumps(
            {
                "store": db.location,
                "candidates": db.count(),
                "scores": per_reward,
                "leases": len(db.leases()),
            }
        )
    )
