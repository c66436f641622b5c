"""Start and stop real OpenAI-compatible servers on loopback for the ``openai`` backend's tests.

- :func:`transformers_serve`: ``transformers serve`` (third party: Hugging Face's own server,
  installed with ``transformers`` and the ``openai`` package), pinned to one local model.
- :func:`vllm_like`: ``tests/openai_server.py``, our small server with vLLM's semantics (``n``,
  ``logprobs``, ``echo``, ``stop_reason``) and injectable faults.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 240.0  # a loaded 2-core machine needs a while to import torch + transformers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def transformers_cli() -> str | None:
    """The ``transformers`` command beside this Python, if its serving extra is installed."""
    import importlib.util

    if importlib.util.find_spec("openai") is None:
        return None
    beside = Path(sys.executable).with_name("transformers")
    return str(beside) if beside.is_file() else shutil.which("transformers")


@dataclass
class Server:
    """A server process on ``port``; :meth:`restart` stops it and starts the same command."""

    command: list[str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait: bool = True) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": f"{TESTS.parent / 'src'}{os.pathsep}{TESTS}",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.command, env=env, stdout=out, stderr=out)
        if wait:
            try:
                self.wait_ready()
            except BaseException:  # a timeout (pytest's too) must not leave the process behind
                self.stop()
                raise

    def wait_ready(self) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < START_TIMEOUT_S:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server died:\n{self.log.read_text()[-3000:]}")
            try:  # urllib: no TLS context built per poll (httpx loads the CA bundle each time)
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not start in {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def transformers_serve(model_dir: Path, log: Path) -> Server:
    cli = transformers_cli()
    if cli is None:
        raise RuntimeError("transformers serve needs the 'openai' package")
    port = free_port()
    command = [
        cli, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
        "--device", "cpu", "--log-level", "warning",
    ]  # fmt: skip
    server = Server(command, port, log)
    server.start()
    return server


def vllm_like(model_dir: Path, log: Path, name: str = "tiny-test") -> Server:
    port = free_port()
    command = [
        sys.executable, str(TESTS / "openai_server.py"), "--model", str(model_dir),
        "--port", str(port), "--name", name,
    ]  # fmt: skip
    server = Server(command, port, log)
    server.start()
    return server
