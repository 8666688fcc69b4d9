"""Mosquitto's password and ACL files on this host, and telling Mosquitto to read them.

Each change runs under an exclusive lock (``<password file>.lock``, so `serve` and
`provisiond broker sync` take turns), reads both files, lets the caller edit provisiond's
accounts, writes each file whole to a temporary file beside it (same mode), flushes it to
disk and renames it over the old one — Mosquitto never reads half a file — then makes
Mosquitto read them again: SIGHUP to the process in its ``pid_file``, or a command (e.g.
``systemctl reload mosquitto``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from provisiond.errors import BrokerUnavailable
from provisiond.integrations.mosquitto_files import protocol as mosquitto_files

log = logging.getLogger(__name__)
T = TypeVar("T")


class MosquittoFiles:
    def __init__(
        self,
        password_file: Path,
        acl_file: Path,
        *,
        pid_file: Path | None = None,
        reload_command: str | None = None,
        timeout: float = 10.0,
        namespace: str = "",
    ) -> None:
        self._namespace = namespace
        self.password_file = password_file
        self.acl_file = acl_file
        self._reloader = Reloader(pid_file, reload_command, timeout)
        self._lock = asyncio.Lock()  # one change at a time in this process

    async def change(
        self, edit: Callable[[mosquitto_files.Files], tuple[bool, T]], *, reload: bool = False
    ) -> T:
        """Run ``edit`` on the files' accounts; if it says they changed, write them. Then
        make Mosquitto read them if they were written or ``reload`` asks for it (a change
        whose reload failed is retried with ``reload``: the files are right already)."""
        async with self._lock:
            return await asyncio.to_thread(self._change, edit, reload)

    def _change(self, edit: Callable[[mosquitto_files.Files], tuple[bool, T]], reload: bool) -> T:
        try:
            lock = open(  # noqa: SIM115
                self.password_file.with_name(self.password_file.name + ".lock"),
                "a+",
            )
        except OSError as err:
            raise BrokerUnavailable(f"cannot lock Mosquitto's password file: {err}") from err
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            files = mosquitto_files.parse(
                self._text(self.password_file), self._text(self.acl_file), self._namespace
            )
            changed, result = edit(files)
            if changed:
                password_text, acl_text = mosquitto_files.render(files)
                # the ACL first: an account never exists without its rules
                replace_file(self.acl_file, acl_text)
                replace_file(self.password_file, password_text)
            if changed or reload:
                self._reloader.reload("the files are written")
            return result

    @staticmethod
    def _text(path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""
        except (OSError, UnicodeDecodeError) as err:
            raise BrokerUnavailable(f"cannot read {path}: {err}") from err


def replace_file(path: Path, text: str, *, mode: int = 0o640) -> None:
    """Write ``path`` whole and atomically: a temporary file beside it (with the old file's
    mode, else ``mode``), flushed to disk, renamed over it. A reader sees the old file or
    the new one, never half of one (BrokerUnavailable if it cannot be written)."""
    with contextlib.suppress(FileNotFoundError):
        mode = path.stat().st_mode & 0o777
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fchmod(out.fileno(), mode)
                os.fsync(out.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError as err:
        raise BrokerUnavailable(f"cannot write {path}: {err}") from err


class Reloader:
    """Makes Mosquitto read its files again: SIGHUP to the process in its ``pid_file``, or
    the operator's command (e.g. ``systemctl reload mosquitto``); neither: nothing."""

    def __init__(self, pid_file: Path | None, command: str | None, timeout: float) -> None:
        self._pid_file = pid_file
        self._command = shlex.split(command) if command else None
        self._timeout = timeout

    @property
    def configured(self) -> bool:
        return self._pid_file is not None or self._command is not None

    def reload(self, what: str) -> None:
        """BrokerUnavailable if Mosquitto could not be told (``what``: what is done)."""
        if self._command is not None:
            try:
                # the operator's own command, from provisiond's configuration
                done = subprocess.run(  # noqa: S603
                    self._command,
                    capture_output=True,
                    timeout=self._timeout,
                    check=False,
                )
            except (OSError, subprocess.TimeoutExpired) as err:
                raise BrokerUnavailable(f"{what}, but the reload command failed: {err}") from err
            if done.returncode != 0:
                raise BrokerUnavailable(
                    f"{what}, but the reload command exited "
                    f"{done.returncode}: {done.stderr.decode(errors='replace').strip()[:200]}"
                )
            return
        if self._pid_file is None:
            return
        try:
            pid = int(self._pid_file.read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as err:
            raise BrokerUnavailable(
                f"{what}, but Mosquitto could not be told to read them "
                f"(its pid file {self._pid_file}): {err}"
            ) from err
