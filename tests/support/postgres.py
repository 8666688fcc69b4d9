"""Find a PostgreSQL server for the tests, or start a throwaway one.

Order: ``PROVISIOND_TEST_POSTGRES_URL``; a server on 127.0.0.1:5432 that trusts ``postgres``;
otherwise a new cluster (initdb) in a temporary directory on a free port, removed at the end.
Returns None when none can be had; the caller skips (or fails when CI=true).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class Cluster:
    """A PostgreSQL cluster of our own (initdb) on a free port: tests may stop and start it."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.tmp = Path(tempfile.mkdtemp(prefix="provisiond-pg-"))
        self.data = self.tmp / "data"
        self.port = _free_port()
        self.log = self.tmp / "server.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root: run it as the postgres user
            shutil.chown(self.tmp, user="postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [
                *self.prefix,
                str(bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        self.server: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.server = subprocess.Popen(
            [
                *self.prefix,
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.tmp),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=open(self.log, "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while not _reachable(self.url):
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "throwaway PostgreSQL did not start:\n" + self.log.read_text(errors="replace")
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """A fast shutdown (SIGINT): clients are disconnected at once."""
        if self.server is not None and self.server.poll() is None:
            subprocess.run(
                [
                    *self.prefix,
                    str(self.bindir / "pg_ctl"),
                    "stop",
                    "-D",
                    str(self.data),
                    "-m",
                    "fast",
                    "-w",
                ],
                check=True,
                capture_output=True,
            )
            self.server.wait(timeout=30)
        self.server = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[Cluster | None]:
    bindir = _pg_bin()
    if bindir is None:
        yield None
        return
    cluster = Cluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@contextlib.contextmanager
def postgres_server() -> Iterator[str | None]:
    url = os.environ.get("PROVISIOND_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    if _reachable(DEFAULT_URL):
        yield DEFAULT_URL
        return
    with throwaway_cluster() as started:
        yield started.url if started else None


def with_database(server_url: str, name: str) -> str:
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"
