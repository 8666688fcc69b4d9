"""Shared fixtures: a migrated database per test, on SQLite and on PostgreSQL.

``database_url`` is parametrised: every test that uses it runs on both backends. A migrated
template is built once per session (SQLite: a file copied per test; PostgreSQL: a database
cloned with CREATE DATABASE … TEMPLATE), so each test starts from an empty, current schema.
Without a PostgreSQL server the postgresql cases are skipped locally and fail when CI=true.

In CI (CI=true) every skip is a failure: a test that CI does not run proves nothing, and a
skip hides a missing install step (pytest_runtest_makereport below). There is no allow-list;
add one here, with the reason, only for a skip that is right on every CI machine.
"""

from __future__ import annotations

import functools
import gc
import os
import shutil
import ssl
import uuid
from collections.abc import Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx
import httpx._transports.default
import psycopg
import pytest
import typer.testing
from argon2 import PasswordHasher
from hypothesis import settings as hypothesis_settings

from provisiond.services import hashing
from provisiond.store import migrate
from tests.support.emqx import EmqxStandIn
from tests.support.mosquitto import Broker, available, dynsec_broker
from tests.support.mosquitto import files_broker as mosquitto_files_broker
from tests.support.postgres import postgres_server, with_database

# Hypothesis's per-example deadline is a timed assertion: on 2 shared cores running the suite
# in 4 processes a 300-byte parse took 628 ms once. Properties are about results, not speed.
hypothesis_settings.register_profile("provisiond", deadline=None)
hypothesis_settings.load_profile("provisiond")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Servers the tests start (in process or as processes) take any free port for MQTT, so they
# never meet each other, or a listener already on this machine, at the default 1884.
os.environ.setdefault("PROVISIOND_PROVISIONING__MQTT_PORT", "0")
TEMPLATE = f"provisiond_tpl_{os.getpid()}"
ReportT = TypeVar("ReportT", pytest.TestReport, pytest.CollectReport)
# typer's CliRunner builds the whole click command tree again for every invoke (~40 ms of CPU
# for provisiond's commands, thousands of times in the suite); the app does not change once
# imported, so the tree is built once per app.
typer.testing._get_command = functools.cache(typer.testing._get_command)


# httpx's one-shot functions (httpx.get, httpx.post) and every client made without its own
# `verify` load certifi's whole bundle into a new TLS context: about 15 ms of CPU each, over
# a thousand times in the suite, though the servers here mostly speak plain HTTP. That default
# context is the same every time, so a process makes it once; a client given its own context
# (or a certificate) gets what it asked for, as before.
_httpx_tls = httpx._transports.default.create_ssl_context


@functools.cache
def _default_client_tls() -> ssl.SSLContext:
    return _httpx_tls()


def _client_tls(
    verify: ssl.SSLContext | str | bool = True, cert: object = None, trust_env: bool = True
) -> ssl.SSLContext:
    if verify is True and cert is None:
        return _default_client_tls()
    return _httpx_tls(verify, cert, trust_env)  # type: ignore[arg-type]


httpx._transports.default.create_ssl_context = _client_tls


# The garbage collector, tuned for a test process: a pytest process holds every test module,
# provisiond and its libraries (some 300,000 objects), and each test's server allocates
# hundreds of thousands more; with Python's thresholds (700, 10, 10) it ran a collection every
# few milliseconds: an eighth of a web test's CPU. Collections run 14 times less often here, and
# what exists once the tests are collected (modules, classes, fixtures' definitions) is moved
# out of the collector's sight (gc.freeze). What is garbage is still collected, later;
# gc.collect() still collects everything but the frozen. Servers run as processes keep
# Python's defaults.
GC_THRESHOLDS = (10_000, 10, 10)
gc.set_threshold(*GC_THRESHOLDS)


def pytest_collection_finish(session: pytest.Session) -> None:
    gc.freeze()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: runs on SQLite only")
    config.addinivalue_line("markers", "hook_secret(value): serve the EMQX hooks with a secret")
    config.addinivalue_line("markers", "token_as_username: serve with broker__token_as_username")
    config.addinivalue_line(
        "markers", "real_password_cost: hash passwords with provisiond's own argon2 parameters"
    )


POSTGRES_PARAMS = {"postgresql", "icu", "glibc"}  # database_url's, collated_url's backends
POSTGRES_FIXTURES = {"postgres_template", "postgres_url", "locale_server"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every case that runs on PostgreSQL ``postgres`` (its backend parameter, or a
    PostgreSQL fixture it asks for), so ``-m "not postgres"`` runs the SQLite cases only;
    mark every case that drives Chromium ``slow``, as the marker says (``scripts/test
    --fast`` once ran a browser walk that lacked the mark); leave out the PostgreSQL case of
    a test marked ``sqlite_only`` (a browser walk of pages whose services are tested on both
    backends)."""
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        fixtures = set(getattr(item, "fixturenames", ()))
        if params.get("database_url", "sqlite") != "sqlite" and item.get_closest_marker(
            "sqlite_only"
        ):
            dropped.append(item)
            continue
        if POSTGRES_PARAMS.intersection(map(str, params.values())) or fixtures & POSTGRES_FIXTURES:
            item.add_marker(pytest.mark.postgres)
        if "chromium" in fixtures:
            item.add_marker(pytest.mark.slow)
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI, a skipped test (setup or call, whatever skipped it) is reported as failed."""
    report: pytest.TestReport = yield
    return _no_skip_in_ci(report)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """In CI, a module that skips itself (pytest.skip(allow_module_level=True),
    importorskip) is a collection error."""
    report: pytest.CollectReport = yield
    return _no_skip_in_ci(report)


def _no_skip_in_ci(report: ReportT) -> ReportT:
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true), which counts as a failure: {reason}"
    return report


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def need(present: bool, message: str) -> None:
    """Skip a test whose service is missing here; in CI, fail it."""
    if present:
        return
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    with postgres_server() as server:
        need(
            server is not None,
            "no PostgreSQL server: set PROVISIOND_TEST_POSTGRES_URL, run one on "
            "127.0.0.1:5432 with trust auth, or install postgresql (initdb)",
        )
        assert server is not None
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}"')
            conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
        migrate.upgrade(with_database(server, TEMPLATE))
        yield server
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')


# argon2 with provisiond's parameters (19 MiB, 2 passes) costs ~20 ms of CPU a password, and
# the tests make thousands of users and sign-ins: about a tenth of the suite's CPU. The tests
# run in this process hash with the smallest parameters instead (the same argon2id, the same
# code paths); a hash made so verifies, and a server in another process (the CLI and serve
# process tests) uses the real ones. The tests of the parameters themselves, of rehashing and
# of sign-in throttling are marked real_password_cost.
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def cheap_password_hashing(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("real_password_cost"):
        hashing._dummy_hash.cache_clear()  # made with the parameters of the test before
        yield
        hashing._dummy_hash.cache_clear()
        return
    real = hashing._hasher
    hashing._hasher = CHEAP_HASHER
    hashing._dummy_hash.cache_clear()
    try:
        yield
    finally:
        hashing._hasher = real
        hashing._dummy_hash.cache_clear()


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "provisiond.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


class Clones:
    """Databases cloned from the migrated template, one made ahead while a test runs and
    dropped after it, in a thread of their own: a clone and its drop cost the server about
    100 ms, which a test would otherwise wait for twice."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="postgres-clones")
        self.ready = self.worker.submit(self._create)

    def _run(self, statement: str) -> None:
        with psycopg.connect(self.server, autocommit=True) as conn:
            conn.execute(statement)

    def _create(self) -> str:
        name = f"provisiond_t_{uuid.uuid4().hex[:12]}"
        self._run(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
        return name

    def take(self) -> str:
        name = self.ready.result()
        self.ready = self.worker.submit(self._create)
        return name

    def give_back(self, name: str) -> None:
        self.worker.submit(self._run, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Drop the one made ahead; wait for every drop (the template goes next)."""
        self.give_back(self.ready.result())
        self.worker.shutdown(wait=True)


@pytest.fixture(scope="session")
def postgres_clones(postgres_template: str) -> Iterator[Clones]:
    clones = Clones(postgres_template)
    yield clones
    clones.close()


@pytest.fixture
def postgres_url(postgres_template: str, postgres_clones: Clones) -> Iterator[str]:
    name = postgres_clones.take()
    yield with_database(postgres_template, name)
    postgres_clones.give_back(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database: the test runs once on each backend."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto with the dynamic security plugin (skipped without one, failed in CI)."""
    need(available(), "no mosquitto with the dynamic security plugin (apt-get install mosquitto)")
    with dynsec_broker(tmp_path / "mosquitto") as b:
        yield b


@pytest.fixture
def files_broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto reading a password file and an ACL file (skipped without mosquitto)."""
    need(shutil.which("mosquitto") is not None, "no mosquitto (apt-get install mosquitto)")
    with mosquitto_files_broker(tmp_path / "mosquitto-files") as b:
        yield b


@pytest.fixture
def emqx() -> Iterator[EmqxStandIn]:
    """A stand-in for EMQX's REST API (EMQX cannot run here), from its published API."""
    stand_in = EmqxStandIn()
    stand_in.start()
    try:
        yield stand_in
    finally:
        stand_in.stop()
