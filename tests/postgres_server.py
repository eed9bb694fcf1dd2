"""A throwaway PostgreSQL server for tests and benchmarks: a fresh cluster in a temporary
directory, on a free port, stopped (and deleted) at the end.

Where the server comes from, first found wins:
1. PESABOT_TEST_POSTGRES_URL: a server of your own; no cluster is started.
2. The machine's own binaries: Debian's /usr/lib/postgresql/<version>/bin (CI's path, the one
   production is like), or `initdb` on PATH.
3. The binaries the pip package `pgserver` brings with requirements-dev.txt, so a machine with
   Python and nothing else runs the tests too.
PESABOT_TEST_POSTGRES_BINDIR picks a directory of binaries instead (`pgserver` for the
package's, whatever the machine has). The tests never skip for want of a server.

`initdb` refuses to run as root, so as root the cluster belongs to the `postgres` user, or,
on a machine without one, to a `pgserver` user made as the package itself makes it. fsync is
off: a test cluster never has to survive a power cut, and tests run faster.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import asyncpg


def _pgserver_bindir() -> Path | None:
    """The `pgserver` package's binaries, if it is installed (found without importing it)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "initdb").exists() else None


def _bindir() -> Path:
    chosen = os.environ.get("PESABOT_TEST_POSTGRES_BINDIR", "")
    if chosen and chosen != "pgserver":
        return Path(chosen)
    if not chosen:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
        if candidates:
            return Path(candidates[0]).parent
        initdb = shutil.which("initdb")
        if initdb:
            return Path(initdb).parent
    bindir = _pgserver_bindir()
    if bindir is not None:
        return bindir
    raise RuntimeError(
        "PostgreSQL's server binaries are missing: pip install -r requirements-dev.txt (it brings pgserver's), "
        "install your system's (Debian: apt-get install -y postgresql), or set PESABOT_TEST_POSTGRES_URL to a "
        "server of your own"
    )


def _cluster_owner(bindir: Path) -> str | None:
    """Who runs the server: this user, or as root (which initdb refuses) `postgres`, else a
    `pgserver` system user, made here as the package itself makes one when run as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
            break
        except KeyError:
            continue
    else:
        subprocess.run(["useradd", "--system", "--no-create-home", name], check=True, capture_output=True)
    if bindir == _pgserver_bindir():
        _open_to_everyone(bindir.parent.parent)
    return name


def _open_to_everyone(package: Path) -> None:
    """Lets the cluster's owner run root's copy of the package's binaries: every folder above it
    traversable, the binaries, libraries and shared files readable (and runnable where they are)."""
    for folder in package.parents:
        folder.chmod(folder.stat().st_mode | 0o011)
    for tree in (package / "pginstall", package.parent / "pgserver.libs"):
        for path in (tree, *tree.rglob("*")):
            mode = path.stat().st_mode
            runnable = path.is_dir() or mode & 0o100
            path.chmod(mode | 0o044 | (0o011 if runnable else 0))


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
        self._bindir = Path()
        self._owner: str | None = None

    def _run_as(self) -> list[str]:
        return ["runuser", "-u", self._owner, "--"] if self._owner else []

    def start(self) -> PostgresServer:
        if self.url:
            return self
        bindir = self._bindir = _bindir()
        self._owner = _cluster_owner(bindir)
        self._dir = tempfile.mkdtemp(prefix="pesabot-pg-")
        run_as = self._run_as()
        if self._owner:
            shutil.chown(self._dir, self._owner)
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
        subprocess.run(
            [
                *self._run_as(),
                str(self._bindir / "pg_ctl"),
                "-D",
                os.path.join(self._dir, "data"),
                "-m",
                "immediate",
                "stop",
            ],
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
