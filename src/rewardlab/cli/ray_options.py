"""``--backend`` / ``--ray-address`` / ``--ray-actors``: the Ray flags every job command shares
(``scale``, ``sample``, ``label``, ``verify``), declared once.

>>> def job(backend: Backend = "local", ray_address: RayAddress = None,
...         ray_actors: RayActors = 2) -> None: ...  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rewardlab.pipelines.ray_backend import RayConfig, RayPolicyPool

Backend = Annotated[
    str,
    typer.Option(
        help="Where the models run: 'local' (this process) or 'ray' (Ray actor pools, one "
        "policy or reward replica per actor; needs pip install 'rewardlab\\[ray]'). Same results "
        "either way; the store stays here (docs/cluster.md).",
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        help="--backend ray: a running cluster (auto, HOST:6379, ray://HOST:10001).",
        show_default="start a local Ray instance for the run",
    ),
]
RayActors = Annotated[
    int, typer.Option(min=1, help="--backend ray: model replicas (actors) per stage.")
]


def ray_backend_of(backend: str, address: str | None, actors: int) -> RayConfig | None:
    """The three flags as a ``RayConfig`` (None for local); a bad name, ``--ray-address``
    without ``--backend ray``, or ray without Ray installed is a usage error before any work
    starts."""
    from rewardlab.pipelines.ray_backend import INSTALL_HINT, RayConfig, ray_available

    if backend not in ("local", "ray"):
        raise typer.BadParameter(f"--backend must be 'local' or 'ray', got {backend!r}")
    if backend == "local":
        if address is not None:
            raise typer.BadParameter("--ray-address needs --backend ray")
        return None
    if not ray_available():
        raise typer.BadParameter(INSTALL_HINT)
    return RayConfig(address=address, actors=actors)


@contextmanager
def policy_actors(
    ray: RayConfig | None, spec: str, device: str | None = None, name: str | None = None
) -> Iterator[RayPolicyPool | None]:
    """A Ray session and an actor pool of replicas of the policy ``spec`` for the block
    (None, and nothing started, for the local backend)."""
    if ray is None:
        yield None
        return
    from dataclasses import replace

    from rewardlab.pipelines.ray_backend import RayPolicyPool, ray_session

    kwargs = {**ray.load_kwargs, **({"device": device} if device else {})}
    with ray_session(ray), RayPolicyPool(spec, replace(ray, load_kwargs=kwargs), name) as pool:
        yield pool
