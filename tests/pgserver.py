"""A real PostgreSQL server on loopback for tests and benchmarks: initdb in a temp dir, a free
port, the unix socket in the same dir, stopped by its pid.

PostgreSQL refuses to run as root, so when this process is root the server runs as the
unprivileged ``nobody`` (through ``runuser``) and owns its data directory. ``find_bin`` looks
for ``initdb`` / ``pg_ctl`` / ``postgres`` on PATH, then in ``/usr/lib/postgresql/*/bin``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

USER = "rewardlab"
BINARIES = ("initdb", "pg_ctl", "postgres")


def find_bin() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None when they are absent."""
    on_path = [shutil.which(b) for b in BINARIES]
    if all(on_path) and _same_dir(on_path):
        return Path(str(on_path[0])).resolve().parent
    for cand in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if all((cand / b).exists() for b in BINARIES):
            return cand
    return None


def _same_dir(paths: list[str | None]) -> bool:
    # /usr/local/bin may hold symlinks into /usr/lib/postgresql/N/bin: follow them
    return len({Path(str(p)).resolve().parent for p in paths}) == 1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    """A running server; ``url(db)`` names a database on it, ``create_db()`` makes a fresh one."""

    root: Path
    port: int
    pid: int
    bindir: Path
    _as: list[str] = field(default_factory=list)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{db}"

    def create_db(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown by signal to the postmaster's pid; SIGKILL if it lingers; rm the dir."""
        for sig, wait in ((signal.SIGINT, 20.0), (signal.SIGKILL, 10.0)):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _alive(self.pid):
                time.sleep(0.05)
            if not _alive(self.pid):
                break
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # our child or not, a zombie is gone for our purpose
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def start_server(settings: dict[str, str] | None = None, attempts: int = 3) -> PgServer:
    """initdb + pg_ctl start on a free loopback port; raises RuntimeError with the server log
    when it does not come up. ``settings`` are extra ``-c name=value`` server settings."""
    bindir = find_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl, postgres) not found")
    root = Path(tempfile.mkdtemp(prefix="rewardlab-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
        run_as = ["runuser", "-u", "nobody", "--"]
    data = root / "data"
    flags = ["-U", USER, "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"]
    init = subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), *flags, "--no-instructions"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr.strip()}")
    opts = {"fsync": "off", "max_connections": "200", **(settings or {})}
    extra = " ".join(f"-c {k}={v}" for k, v in opts.items())
    last = ""
    for _ in range(attempts):  # a port taken between the probe and the bind: try another
        port = _free_port()
        log = root / f"server-{port}.log"
        server_opts = f"-k {root} -h 127.0.0.1 -p {port} {extra}"
        ctl = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "120"]
        started = subprocess.run(
            [*run_as, *ctl, "-o", server_opts, "start"],
            capture_output=True,
            text=True,
            timeout=180,
        )
        if started.returncode == 0:
            pid = int((data / "postmaster.pid").read_text().splitlines()[0])
            return PgServer(root, port, pid, bindir, run_as)
        last = log.read_text() if log.exists() else started.stderr
    shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start: {last.strip()[-2000:]}")
