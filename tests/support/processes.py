"""`provisiond serve` as a separate process, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.integration.web.conftest import free_port


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    """Whether the server ``process`` is starting answers ``/readyz`` with 200 in time
    (False: it exited, or the time ran out)."""
    deadline = time.monotonic() + timeout
    while True:  # another process is starting: nothing to wait on but its port
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)


class Instance:
    """One running `provisiond serve`: its process, URL and (when asked) its log file."""

    def __init__(
        self,
        database: str,
        *,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        environment = {
            **os.environ,
            "PROVISIOND_DATABASE_URL": database,
            "PROVISIOND_PROVISIONING__MQTT_ENABLED": "false",
            **(env or {}),
        }
        sink = log.open("ab") if log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", "provisiond", "serve", "--port", str(self.port)],
            env=environment,
            stdout=sink,
            stderr=sink if log else None,
        )
        if log:
            sink.close()  # type: ignore[union-attr]
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        if not wait_ready(self.url, self.process, timeout):
            raise RuntimeError(
                f"provisiond serve did not start (exit "
                f"{self.process.poll()}); see {self.log or 'stderr'}"
            )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(30)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(30)


def provisiond(database: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One CLI command against ``database``, as its own process; its result (not checked)."""
    env = {**os.environ, "PROVISIOND_DATABASE_URL": database}
    return subprocess.run(
        [sys.executable, "-m", "provisiond", *args], env=env, capture_output=True, text=True
    )
