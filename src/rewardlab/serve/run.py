"""Run the app under uvicorn; SIGTERM/SIGINT drain: stop accepting, finish requests in flight
(up to ``drain_timeout_s``), stop the batcher, exit 0. A second SIGINT forces the exit."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

import uvicorn


class DrainingServer(uvicorn.Server):
    """uvicorn's server, marking the app as draining on the first signal (new requests on open
    connections get 503, ``/health`` 503) and not re-raising the signal after a clean drain."""

    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self.rewardlab_app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.rewardlab_app.state.draining = True
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 5000,
    drain_timeout_s: float = 60.0,
    log_level: str = "warning",
) -> None:
    """Serve until a signal, then drain (blocks)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=int(max(1, drain_timeout_s)),
        lifespan="on",
        access_log=False,
    )
    DrainingServer(config, app).run()
