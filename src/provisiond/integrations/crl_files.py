"""CRL files in a directory on this host (the ``crl_dir`` setting), for Mosquitto's
``crlfile``: ``NAME.crl.pem`` per CA, and ``crls.pem`` holding every CA's (for a listener
whose ``cafile`` trusts several). Each file is written whole and renamed into place
(mosquitto_files.replace_file), under a lock (``.crls.lock``) so that instances sharing the
directory take turns; a CRL is never replaced by an older one (lower CRL number), so an
instance a second behind another does not undo it. Mosquitto is then told to read them
(mosquitto_files.Reloader: SIGHUP to its pid_file, or the reload command).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from cryptography import x509

from provisiond.errors import BrokerUnavailable
from provisiond.integrations.mosquitto_files.files import Reloader, replace_file

BUNDLE = "crls.pem"
MODE = 0o644  # a CRL is public


def crl_file(directory: Path, ca_name: str) -> Path:
    return directory / f"{ca_name}.crl.pem"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise BrokerUnavailable(f"cannot read {path}: {err}") from err


def _number(path: Path) -> int:
    """The CRL number of the CRL in ``path`` (-1: no file, or not a CRL with a number)."""
    text = _read(path)
    if text is None:
        return -1
    try:
        crl = x509.load_pem_x509_crl(text.encode())
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except (ValueError, x509.ExtensionNotFound):
        return -1


class CrlDirectory:
    def __init__(self, directory: Path, reloader: Reloader) -> None:
        self.directory = directory
        self._reloader = reloader

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            lock = (self.directory / ".crls.lock").open("a+")
        except OSError as err:
            raise BrokerUnavailable(
                f"cannot use the CRL directory {self.directory}: {err}"
            ) from err
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def write(self, crls: Mapping[str, tuple[int, str]], names: Sequence[str]) -> bool:
        changed = False
        with self._locked():
            for name, (number, pem) in crls.items():
                path = crl_file(self.directory, name)
                if _number(path) < number:
                    replace_file(path, pem, mode=MODE)
                    changed = True
            bundle = "".join(
                text
                for name in names
                if (text := _read(crl_file(self.directory, name))) is not None
            )
            path = self.directory / BUNDLE
            if _read(path) != bundle:
                replace_file(path, bundle, mode=MODE)
                changed = True
        return changed

    def reload(self) -> None:
        self._reloader.reload("the CRL files are written")
