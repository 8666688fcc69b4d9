"""Podman and the image built from deploy/Containerfile, shared by the image and systemd tests
(built once per session; podman's layer cache makes a rebuild of an unchanged tree quick)."""

from __future__ import annotations

import hashlib

import pytest

from tests.conftest import need
from tests.support.deployment import DEPLOY, ROOT
from tests.support.podman import Podman, containers_conf, standin_bases, tools_missing

# one tag per checkout: several worktrees share podman's storage
TAG = f"localhost/provisiond-test:{hashlib.sha1(str(ROOT).encode()).hexdigest()[:10]}"  # noqa: S324


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    missing = tools_missing()
    need(not missing, f"the image tests need {', '.join(missing)} (apt-get install them)")
    return Podman(containers_conf(tmp_path_factory.mktemp("podman")))


@pytest.fixture(scope="session")
def image(podman: Podman) -> str:
    python, node = standin_bases(podman)
    podman.run(
        "build",
        "--format",
        "docker",  # podman keeps HEALTHCHECK in Docker-format images only
        "--pull=never",
        "--build-arg",
        f"PYTHON_IMAGE={python}",
        "--build-arg",
        f"NODE_IMAGE={node}",
        "-f",
        str(DEPLOY / "Containerfile"),
        "-t",
        TAG,
        str(ROOT),
    )
    return TAG
