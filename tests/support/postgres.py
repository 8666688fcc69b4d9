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


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str | None]:
    bindir = _pg_bin()
    if bindir is None:
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="provisiond-pg-"))
    data = tmp / "data"
    port = _free_port()
    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:  # initdb refuses to run as root: run the cluster as the postgres user
        shutil.chown(tmp, user="postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    log = tmp / "server.log"
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "--no-sync", "-E", "UTF8"],
                   check=True, capture_output=True)
    server = subprocess.Popen(
        [*prefix, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
         "-k", str(tmp), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
         "-c", "max_connections=200"],
        stdout=open(log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 30
        while not _reachable(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("throwaway PostgreSQL did not start:\n"
                                   + log.read_text(errors="replace"))
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)


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
        yield started


def with_database(server_url: str, name: str) -> str:
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"
