"""A throwaway PostgreSQL server for tests and benchmarks: a fresh cluster in a temporary
directory, on a free port, stopped (and deleted) at the end.

Debian's server binaries live in /usr/lib/postgresql/<version>/bin (`pg_ctl` on PATH links
there). `initdb` refuses to run as root, so as root the cluster belongs to the `postgres`
user. fsync is off: a test cluster never has to survive a power cut, and tests run faster.
With PESABOT_TEST_POSTGRES_URL set (a server of your own), that server is used instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import asyncpg


def _bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL's server binaries are missing: install them (Debian: apt-get install -y postgresql; "
        ".ci/run does) or set PESABOT_TEST_POSTGRES_URL to a server of your own"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One cluster; `new_database()` gives each test its own empty database on it."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.url = os.environ.get("PESABOT_TEST_POSTGRES_URL", "")
        self._dir: str | None = None
        self._fsync = fsync  # benchmarks flush as a real server does; tests need not

    def start(self) -> PostgresServer:
        if self.url:
            return self
        bindir = _bindir()
        self._dir = tempfile.mkdtemp(prefix="pesabot-pg-")
        as_root = os.geteuid() == 0
        run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
        if as_root:
            shutil.chown(self._dir, "postgres")
        data, port = os.path.join(self._dir, "data"), _free_port()
        subprocess.run(
            [*run_as, str(bindir / "initdb"), "-D", data, "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )
        fsync = "on" if self._fsync else "off"
        options = f"-p {port} -k {self._dir} -c listen_addresses=127.0.0.1 -c fsync={fsync} -c max_connections=300"
        subprocess.run(
            [
                *run_as,
                str(bindir / "pg_ctl"),
                "-D",
                data,
                "-o",
                options,
                "-l",
                os.path.join(self._dir, "log"),
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        return self

    def stop(self) -> None:
        if self._dir is None:
            return
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*run_as, str(_bindir() / "pg_ctl"), "-D", os.path.join(self._dir, "data"), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    async def new_database(self) -> str:
        """An empty database of its own; its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        admin = await asyncpg.connect(self.url)
        try:
            await admin.execute(f"CREATE DATABASE {name}")
        finally:
            await admin.close()
        return self.url.rsplit("/", 1)[0] + "/" + name

    def new_database_sync(self) -> str:
        """`new_database` from synchronous code (a fixture), even while an event loop runs."""
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self.new_database()).result()
