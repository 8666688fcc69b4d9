"""Podman for the image tests: its settings for this kind of machine, and local stand-ins for
the Containerfile's base images when no container registry can be reached.

The machines the suite runs on reach PyPI, the npm registry and deb.debian.org, but no
container registry, and their kernel's cgroups are in hybrid mode (crun refuses them; runc
works) with hard descriptor and process limits below podman's defaults. So:

- ``containers_conf`` writes a containers.conf (passed as CONTAINERS_CONF, /etc is left
  alone): runtime runc, default ulimits within the host's hard limits;
- ``standin_bases`` makes a Debian 12 root file system with debootstrap, imports it, and
  builds on it a Python 3.11 image and a Node.js image (Debian's packages) that play
  python:3.11-slim-bookworm and node:22-bookworm-slim. They trust the host's extra CA
  certificates (a TLS-inspecting egress proxy here). Built once, reused by tag: podman's
  storage outlives the test run.

Missing tools are installed with apt-get when we may (root), as scripts/test does; otherwise
``tools_missing`` says what is missing and the test skips (fails when CI=true).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Bump the suffix when a stand-in's recipe changes: the old tags are then rebuilt.
BASE = "localhost/provisiond-standin/debian:bookworm-minbase-2"
PYTHON = "localhost/provisiond-standin/python:3.11-slim-bookworm-2"
NODE = "localhost/provisiond-standin/node:bookworm-2"
PACKAGES = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}
LOCK = Path(tempfile.gettempdir()) / "provisiond-podman-standins.lock"

PYTHON_RECIPE = f"""FROM {BASE}
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \\
    ca-certificates && rm -rf /var/lib/apt/lists/*
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
"""
NODE_RECIPE = f"""FROM {BASE}
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm ca-certificates \\
    && rm -rf /var/lib/apt/lists/*
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
"""


def tools_missing(packages: dict[str, str] = PACKAGES) -> list[str]:
    """Of ``packages`` (command: Debian package; default: what the image test needs), the
    commands not installed, after trying apt-get."""
    missing = [cmd for cmd in packages if shutil.which(cmd) is None]
    if missing and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *(packages[m] for m in missing)],
            env=env,
            capture_output=True,
            check=False,
        )
        missing = [cmd for cmd in packages if shutil.which(cmd) is None]
    return missing


def containers_conf(directory: Path) -> Path:
    """A containers.conf: runc, and ulimits a container may have here (at most the hard
    limits: raising them needs CAP_SYS_RESOURCE, which podman's defaults assume)."""
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 4096)
    path = directory / "containers.conf"
    path.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\n'
    )
    return path


class Podman:
    """Runs podman with the test's containers.conf."""

    def __init__(self, conf: Path) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def run(
        self, *args: str, check: bool = True, timeout: float = 900, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["podman", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kw,  # type: ignore[call-overload]
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            )
        return done  # type: ignore[no-any-return]

    def image_exists(self, name: str) -> bool:
        return self.run("image", "exists", name, check=False).returncode == 0


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One test run at a time makes the stand-ins (several worktrees share the storage)."""
    with LOCK.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _host_cas(context: Path) -> None:
    (context / "ca").mkdir()
    for crt in Path("/usr/local/share/ca-certificates").glob("*.crt"):
        shutil.copy(crt, context / "ca" / crt.name)


def standin_bases(podman: Podman) -> tuple[str, str]:
    """(python image, node image): made here unless already in podman's storage."""
    with _locked():
        if not podman.image_exists(BASE):
            with tempfile.TemporaryDirectory(prefix="provisiond-rootfs-") as tmp:
                rootfs = Path(tmp) / "rootfs"
                subprocess.run(
                    [
                        "debootstrap",
                        "--variant=minbase",
                        "bookworm",
                        str(rootfs),
                        "http://deb.debian.org/debian",
                    ],
                    check=True,
                    capture_output=True,
                    timeout=900,
                )
                for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
                    for entry in (rootfs / cache).glob("*"):
                        if entry.is_file():
                            entry.unlink()
                tar = subprocess.Popen(
                    ["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE
                )
                podman.run("import", "-", BASE, stdin=tar.stdout)
                assert tar.wait() == 0
        for name, recipe in ((PYTHON, PYTHON_RECIPE), (NODE, NODE_RECIPE)):
            if podman.image_exists(name):
                continue
            with tempfile.TemporaryDirectory(prefix="provisiond-standin-") as tmp:
                context = Path(tmp)
                _host_cas(context)
                (context / "Containerfile").write_text(recipe)
                podman.run("build", "--pull=never", "-t", name, str(context))
    return PYTHON, NODE
