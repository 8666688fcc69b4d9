"""Nothing exhausts the service: `provisiond serve` as an operator runs it, under the
descriptor limit a systemd unit gets (1,024), against idle MQTT sessions, slow HTTP
clients, oversized bodies; and the MQTT listener's deadlines and caps.

The floods are sockets opened by this process (its own descriptor limit raised for them).
They run on SQLite: what is tested is the server's sockets, not its storage (provisioning on
both backends is test_provisioning's)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiocoap
import httpx
import pytest
from aiocoap.optiontypes import BlockOption

from provisiond.protocols import mqtt
from provisiond.settings import Settings, load_settings
from tests.integration.web.conftest import Server, free_port
from tests.integration.web.test_coap import free_udp_port
from tests.integration.web.test_mqtt import (
    answer_of,
    connect_packet,
    read_packets,
    subscribe_packet,
)
from tests.integration.web.test_provisioning import make_profile
from tests.support.processes import wait_ready

SYSTEMD_LIMIT = 1024
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def many_descriptors() -> Iterator[None]:
    """This process opens thousands of sockets: its soft limit up to its hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 16384 if hard == resource.RLIM_INFINITY else min(hard, 16384)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Served:
    """`provisiond serve` in a process of its own, with a descriptor limit of its own."""

    def __init__(
        self,
        database: str,
        log: Path,
        limit: tuple[int, int] | None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port, self.mqtt_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        environment = {
            **os.environ,
            "PROVISIOND_DATABASE_URL": database,
            "PROVISIOND_PROVISIONING__MQTT_PORT": str(self.mqtt_port),
            **(env or {}),
        }

        def limited() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, limit)

        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "provisiond", "serve", "--port", str(self.port)],
                env=environment,
                stdout=sink,
                stderr=subprocess.STDOUT,
                preexec_fn=limited,
            )  # only setrlimit, before exec
        if not wait_ready(self.url, self.process):
            self.stop()
            raise AssertionError("provisiond serve did not start:\n" + log.read_text())

    @property
    def pid(self) -> int:
        return self.process.pid

    def descriptors(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def peak_memory(self) -> int:
        """VmHWM: the most resident memory the server has had, in bytes."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None
        return int(match.group(1)) * 1024

    def limits(self) -> str:
        return Path(f"/proc/{self.pid}/limits").read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(30)


def profile(database: str) -> tuple[str, str]:
    made = subprocess.run(
        [sys.executable, "-m", "provisiond", "profiles", "create", "gw", "--json"],
        env={**os.environ, "PROVISIOND_DATABASE_URL": database},
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(made.stdout)
    return doc["key"], doc["secret"]


@pytest.fixture
def systemd_served(sqlite_url: str, tmp_path: Path) -> Iterator[Served]:
    """Serving with soft and hard descriptor limits of 1,024 (it cannot raise them)."""
    served = Served(sqlite_url, tmp_path / "serve.log", (SYSTEMD_LIMIT, SYSTEMD_LIMIT))
    try:
        yield served
    finally:
        served.stop()


# ------------------------------------------------------------------------------ the floods


async def _open(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 5
        )
    except (OSError, TimeoutError):
        return None  # the server's accept queue is full: it accepts no one


async def idle_mqtt(port: int, count: int) -> list[asyncio.StreamWriter]:
    """``count`` idle sessions from 40 addresses: half never send CONNECT, half CONNECT
    with keep-alive 0 and say nothing more."""
    sources = [f"127.0.1.{n}" for n in range(1, 41)]

    async def one(n: int) -> asyncio.StreamWriter | None:
        opened = await _open(port, sources[n % len(sources)])
        if opened is None:
            return None
        if n % 2:
            opened[1].write(connect_packet(4, "provision", keepalive=0))
        return opened[1]

    return [w for w in await asyncio.gather(*(one(n) for n in range(count))) if w]


async def slow_http(port: int, count: int, connected: asyncio.Event, stop: asyncio.Event) -> None:
    """``count`` clients sending a request's headers one line a second, until ``stop``."""
    opened = [o for o in await asyncio.gather(*(_open(port) for _ in range(count))) if o]
    writers = [w for _, w in opened]
    for w in writers:
        w.write(b"GET /devices HTTP/1.1\r\nHost: provisiond\r\n")
    connected.set()
    line = 0
    while not stop.is_set():
        line += 1
        for w in writers:
            if not w.is_closing():
                w.write(b"X-Slow-%d: 1\r\n" % line)
        with contextlib.suppress(TimeoutError):  # the attack's pace: a line a second
            await asyncio.wait_for(stop.wait(), 1.0)
    for w in writers:
        w.close()


async def mqtt_provision(port: int, key: str, secret: str, name: str) -> dict[str, Any]:
    opened = await _open(port, "127.0.0.1")
    assert opened is not None, "the MQTT listener accepts no one"
    reader, writer = opened
    request = json.dumps(
        {"deviceName": name, "provisionDeviceKey": key, "provisionDeviceSecret": secret}
    ).encode()
    writer.write(
        connect_packet(4, "provision")
        + subscribe_packet(4, "/provision/response")
        + mqtt.encode_publish(4, "/provision/request", request, 1, 7)
    )
    buffer = bytearray()
    try:
        while True:
            chunk = await reader.read(65536)
            assert chunk, "the MQTT session was closed before its answer"
            buffer += chunk
            while (frame := mqtt.take_frame(buffer)) is not None:
                if frame[0] >> 4 == mqtt.PUBLISH:
                    return answer_of(4, frame[1], qos=1)
    finally:
        writer.close()


@pytest.mark.slow
def test_idle_mqtt_sessions_and_slow_http_clients_do_not_take_the_service_down(
    systemd_served: Served, sqlite_url: str
) -> None:
    """2,000 idle MQTT connections and 1,000 clients sending a header line a second, at
    once, against a server limited to 1,024 descriptors: /healthz, a provisioning over
    HTTP and one over MQTT each still answer within a second."""
    served = systemd_served
    key, secret = profile(sqlite_url)
    latencies: dict[str, float] = {}

    async def attack_and_check() -> int:
        connected, stop = asyncio.Event(), asyncio.Event()
        sessions = await idle_mqtt(served.mqtt_port, 2000)
        slow = asyncio.create_task(slow_http(served.port, 1000, connected, stop))
        await asyncio.wait_for(connected.wait(), 60)
        descriptors = served.descriptors()
        try:
            async with httpx.AsyncClient(
                base_url=served.url, timeout=1.0, limits=httpx.Limits(max_keepalive_connections=0)
            ) as client:
                started = time.perf_counter()
                health = await client.get("/healthz")
                latencies["healthz"] = time.perf_counter() - started
                assert health.status_code == 200
                started = time.perf_counter()
                provisioned = await client.post(
                    "/api/v1/provision",
                    json={
                        "deviceName": "under-siege-1",
                        "provisionDeviceKey": key,
                        "provisionDeviceSecret": secret,
                    },
                )
                latencies["provision over HTTP"] = time.perf_counter() - started
                assert provisioned.status_code == 200, provisioned.text
                assert provisioned.json()["status"] == "SUCCESS"
            started = time.perf_counter()
            answer = await asyncio.wait_for(
                mqtt_provision(served.mqtt_port, key, secret, "under-siege-2"), 1.0
            )
            latencies["provision over MQTT"] = time.perf_counter() - started
            assert answer["status"] == "SUCCESS"
        finally:
            stop.set()
            await slow
            for w in sessions:
                w.close()
        return descriptors

    try:
        descriptors = asyncio.run(attack_and_check())
    except (TimeoutError, httpx.TransportError) as err:
        raise AssertionError(
            f"the service did not answer under the flood ({err!r}); answered: {latencies}"
        ) from err
    sys.stdout.write(
        f"\nunder the flood: {descriptors} descriptors open; "
        + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in latencies.items())
        + "\n"
    )
    assert descriptors < SYSTEMD_LIMIT
    log = served.log.read_text()
    assert "the descriptor limit (RLIMIT_NOFILE, systemd LimitNOFILE) is 1024" in log
    assert "serving with http_max_connections" in log


@pytest.mark.slow
def test_a_200_mb_body_to_an_open_route_is_refused_before_it_is_read(
    systemd_served: Served,
) -> None:
    """POST /api/v1/register needs no token: a 200 MB body is answered 413 (a problem
    document) as soon as its headers are in, the connection closes and the server's memory
    does not grow by the body; a chunked one is cut at the limit the same way."""
    served = systemd_served
    before = served.peak_memory()
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
        s.sendall(
            b"POST /api/v1/register HTTP/1.1\r\nHost: provisiond\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (200 * MB)
        )
        sent, closed = _send_body(s, 200 * MB)
        early = _read_answer(s)
    grown = served.peak_memory() - before
    assert grown < 32 * MB, f"the server's memory grew by {grown / MB:.0f} MB"
    assert closed, f"the server read all {sent / MB:.0f} MB of the body"
    assert sent < 200 * MB
    status, doc = early
    assert status == 413
    assert doc["code"] == "payload-too-large"
    assert "http_public_max_body_bytes" in doc["detail"]

    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as s:
        s.sendall(
            b"POST /api/v1/register HTTP/1.1\r\nHost: provisiond\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (MB, b" " * MB)
        sent, closed = _send_body(s, 200 * MB, chunk)
        status, doc = _read_answer(s)
    assert closed
    assert sent < 200 * MB
    assert status == 413
    assert doc["code"] == "payload-too-large"
    assert served.peak_memory() - before < 32 * MB


def test_each_route_has_its_body_limit(server: Server) -> None:
    """64 KiB without an operator token (the device API answers in its own shape), 1 MiB on
    the operator API; the refusal closes the connection."""
    big, bigger = b"x" * (65 * 1024), b"x" * (1024 * 1024 + 1)
    with httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {server.token}"}
    ) as client:
        provision = client.post("/api/v1/provision", content=big)
        assert provision.status_code == 413
        assert provision.headers["connection"] == "close"
        assert provision.json()["status"] == "FAILURE"
        assert "65536" in provision.json()["errorMsg"]
        for path in ("/api/v1/register", "/login", "/hooks/emqx/authn", "/ocsp"):
            refused = client.post(path, content=big)
            assert refused.status_code == 413, path
            assert refused.json()["code"] == "payload-too-large"
        operator = client.post(
            "/api/v1/groups", content=big, headers={"Content-Type": "application/json"}
        )
        assert operator.status_code == 422  # read, and found not to be JSON
        refused = client.post(
            "/api/v1/groups", content=bigger, headers={"Content-Type": "application/json"}
        )
        assert refused.status_code == 413
        assert "http_max_body_bytes" in refused.json()["detail"]


def _send_body(s: socket.socket, total: int, chunk: bytes = b" " * MB) -> tuple[int, bool]:
    """Send up to ``total`` bytes of body; (bytes sent, whether the server closed first)."""
    sent = 0
    try:
        while sent < total:
            s.sendall(chunk)
            sent += len(chunk)
    except OSError:
        return sent, True
    return sent, False


def _read_answer(s: socket.socket) -> tuple[int, dict[str, Any]]:
    data = bytearray()
    try:
        while chunk := s.recv(65536):
            data += chunk
    except OSError:
        pass  # a reset after the answer
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), f"no answer: {bytes(data[:200])!r}"
    return int(head.split()[1]), json.loads(body)


@pytest.fixture
def impatient(sqlite_url: str, tmp_path: Path) -> Iterator[Served]:
    served = Served(
        sqlite_url,
        tmp_path / "serve.log",
        None,
        {
            "PROVISIOND_LIMITS__HTTP_HEADER_TIMEOUT_SECONDS": "2",
            "PROVISIOND_LIMITS__HTTP_BODY_TIMEOUT_SECONDS": "2",
            "PROVISIOND_LIMITS__HTTP_MAX_CONNECTIONS": "16",
            "PROVISIOND_LIMITS__HTTP_RESERVED_CONNECTIONS": "2",
        },
    )
    try:
        yield served
    finally:
        served.stop()


def _held_for(s: socket.socket, line: bytes, limit: float = 30.0) -> float:
    """Send ``line`` every half second until the server closes; how long that took."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            s.sendall(line)
        except OSError:
            return time.monotonic() - started
        readable, _, _ = select.select([s], [], [], 0.5)  # the client's pace
        if readable:
            try:
                if not s.recv(65536):
                    return time.monotonic() - started
            except OSError:
                return time.monotonic() - started
    raise AssertionError(f"the server still held the connection after {limit} s")


@pytest.mark.slow
def test_a_slowloris_client_is_cut_off_at_the_header_timeout(impatient: Served) -> None:
    with socket.create_connection(("127.0.0.1", impatient.port)) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: provisiond\r\n")
        held = _held_for(s, b"X-Slow: 1\r\n")
    assert 1.5 <= held < 10, held  # http_header_timeout_seconds = 2


@pytest.mark.slow
def test_a_body_that_trickles_is_cut_off(impatient: Served) -> None:
    """The headers in at once, then a byte of body every half second: below
    http_body_min_rate once http_body_timeout_seconds have passed."""
    with socket.create_connection(("127.0.0.1", impatient.port)) as s:
        s.sendall(
            b"POST /api/v1/register HTTP/1.1\r\nHost: provisiond\r\n"
            b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n"
        )
        held = _held_for(s, b" ")
    assert 1.5 <= held < 10, held


@pytest.mark.slow
@pytest.mark.parametrize("writes", ["line by line", "in one write", "and on past the limit"])
def test_headers_past_the_limit_are_answered_431(impatient: Served, writes: str) -> None:
    """Over the limit whether the headers trickle in or arrive whole in one read (CI once
    saw 64 small writes coalesce into one read and the request answered 200)."""
    lines = [b"X-Big-%d: %s\r\n" % (n, b"x" * 1024) for n in range(40)] + [b"\r\n"]
    with socket.create_connection(("127.0.0.1", impatient.port), timeout=10) as s:
        try:
            if writes == "and on past the limit":  # the answer must survive the excess
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: provisiond\r\n")
                for line in lines[:-1] * 8:
                    s.sendall(line)
            elif writes == "in one write":
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: provisiond\r\n" + b"".join(lines))
            else:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: provisiond\r\n")
                for line in lines:
                    s.sendall(line)
        except OSError:
            pass
        status, doc = _read_answer(s)
    assert status == 431
    assert doc["code"] == "headers-too-large"


@pytest.mark.slow
def test_healthz_answers_when_every_connection_is_busy(impatient: Served) -> None:
    """16 connections (the cap) each in the middle of a request body: none can be evicted.
    /healthz still answers, on a reserved connection; anything else there is a 503."""
    busy = []
    try:
        for _ in range(16):
            s = socket.create_connection(("127.0.0.1", impatient.port), timeout=10)
            s.sendall(
                b"POST /api/v1/register HTTP/1.1\r\nHost: provisiond\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            busy.append(s)
        with httpx.Client(base_url=impatient.url, timeout=1.0) as client:
            assert client.get("/healthz").status_code == 200
        with httpx.Client(base_url=impatient.url, timeout=1.0) as client:
            refused = client.post("/api/v1/provision", json={})
        assert refused.status_code == 503
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "unavailable"
        assert "http_max_connections" in refused.json()["detail"]
    finally:
        for s in busy:
            s.close()


@pytest.mark.slow
def test_serve_raises_its_soft_descriptor_limit_to_the_hard_one(
    sqlite_url: str, tmp_path: Path
) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 16384:
        pytest.skip(f"the hard descriptor limit here ({hard}) is below what the caps need")
    served = Served(sqlite_url, tmp_path / "serve.log", (SYSTEMD_LIMIT, 16384))
    try:
        line = next(x for x in served.limits().splitlines() if x.startswith("Max open files"))
        assert line.split()[3:5] == ["16384", "16384"]
    finally:
        served.stop()
    assert "descriptor limit" not in served.log.read_text()


# ------------------------------------------------------------------ the MQTT listener's caps


@pytest.fixture
def server_settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    """Small caps and short deadlines; a test may change them (indirect parametrize; a
    callable value is called here, so a free port is taken when the test runs, not when the
    tests are collected, minutes earlier in another pytest-xdist process)."""
    given = {
        "limits__mqtt_connect_timeout_seconds": 1,
        "limits__mqtt_idle_seconds": 30,
        "limits__mqtt_max_sessions": 16,
        "limits__mqtt_max_sessions_per_address": 4,
        **getattr(request, "param", {}),
    }
    given = {k: v() if callable(v) else v for k, v in given.items()}
    return load_settings(database_url=database_url, log_level="warning", **given)


def _closed_within(s: socket.socket, limit: float = 10.0) -> float:
    started = time.monotonic()
    s.settimeout(limit)
    try:
        while s.recv(65536):
            pass
    except TimeoutError:
        raise AssertionError(f"still open after {limit} s") from None
    return time.monotonic() - started


@pytest.mark.parametrize("server_settings", [{"limits__mqtt_idle_seconds": 1}], indirect=True)
@pytest.mark.parametrize("connect", [False, True], ids=["no-connect", "keepalive-0"])
def test_idle_mqtt_connections_are_closed(server: Server, connect: bool) -> None:
    """A connection that never sends CONNECT, and a session with keep-alive 0 that says
    nothing more, are closed after a second (the settings), not held."""
    with socket.create_connection(("127.0.0.1", server.mqtt_port)) as s:
        if connect:
            s.sendall(connect_packet(4, "provision", keepalive=0))
            assert read_packets(s, 1)[0][0] == mqtt.CONNACK
        assert _closed_within(s) < 5


def _sessions(server: Server, sources: list[str]) -> list[socket.socket]:
    out = []
    for source in sources:
        s = socket.create_connection(
            ("127.0.0.1", server.mqtt_port), timeout=10, source_address=(source, 0)
        )
        s.sendall(connect_packet(5, "provision", keepalive=60))
        assert read_packets(s, 1)[0][0] == mqtt.CONNACK
        out.append(s)
    return out


def test_an_address_at_its_cap_gives_up_its_idlest_session(
    server: Server, api: httpx.Client
) -> None:
    key, secret = make_profile(api)
    idle = _sessions(server, ["127.0.0.1"] * 4)
    other = _sessions(server, ["127.0.3.1"])
    try:
        with socket.create_connection(("127.0.0.1", server.mqtt_port), timeout=10) as s:
            request = json.dumps(
                {"deviceName": "fifth", "provisionDeviceKey": key, "provisionDeviceSecret": secret}
            ).encode()
            s.sendall(
                connect_packet(4, "provision")
                + subscribe_packet(4, "/provision/response")
                + mqtt.encode_publish(4, "/provision/request", request, 1, 7)
            )
            assert answer_of(4, read_packets(s, 4)[3][1], qos=1)["status"] == "SUCCESS"
        # the first (idlest) of the four was told the server is busy, then closed
        assert read_packets(idle[0], 2) == [(mqtt.DISCONNECT, bytes([0x89, 0]))]
        for s in (*idle[1:], *other):  # the others, and the other address's, stay
            s.sendall(bytes([mqtt.PINGREQ << 4, 0]))
            assert read_packets(s, 1) == [(mqtt.PINGRESP, b"")]
    finally:
        for s in (*idle, *other):
            s.close()


def test_at_the_total_cap_the_idlest_session_anywhere_goes(server: Server) -> None:
    sources = [f"127.0.4.{n}" for n in range(1, 17)]
    sessions = _sessions(server, sources)  # 16: the cap, from 16 addresses
    try:
        newcomer = _sessions(server, ["127.0.5.1"])
        assert read_packets(sessions[0], 2) == [(mqtt.DISCONNECT, bytes([0x89, 0]))]
        for s in (*sessions[1:], *newcomer):
            s.sendall(bytes([mqtt.PINGREQ << 4, 0]))
            assert read_packets(s, 1) == [(mqtt.PINGRESP, b"")]
    finally:
        for s in (*sessions, *newcomer):
            s.close()


# ------------------------------------------------------------------------------------ CoAP


@pytest.mark.parametrize(
    "server_settings", [{"provisioning__coap_port": free_udp_port}], indirect=True
)
def test_coap_is_udp_only_and_bounds_a_blockwise_request(server: Server) -> None:
    """No CoAP-over-TCP or -WebSocket listeners (connections without caps) beside the UDP
    port; a request sent in blocks is refused (4.13) once past 64 KiB, not assembled."""
    port = server.settings.provisioning.coap_port
    assert port is not None
    for tcp_port in (port, port + 3000):  # aiocoap's TCP, and its WebSocket, ports
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", tcp_port), timeout=5).close()

    async def upload(blocks: int) -> list[Any]:
        """Send ``blocks`` 1 KiB blocks of one request; the code of each answer, up to the
        first that is not 2.31 Continue."""
        context = await aiocoap.Context.create_client_context()
        codes = []
        try:
            for n in range(blocks):
                request = aiocoap.Message(
                    code=aiocoap.POST,
                    payload=b" " * 1024,
                    uri=f"coap://127.0.0.1:{port}/api/v1/provision",
                )
                request.opt.block1 = BlockOption.BlockwiseTuple(n, n < blocks - 1, 6)
                answer = await asyncio.wait_for(
                    context.request(request, handle_blockwise=False).response, 30
                )
                codes.append(answer.code)
                if answer.code != aiocoap.CONTINUE:
                    break
        finally:
            await context.shutdown()
        return codes

    refused = asyncio.run(upload(200))
    assert refused[-1] == aiocoap.REQUEST_ENTITY_TOO_LARGE
    assert len(refused) == 65  # blocks 0-63 (64 KiB) taken, the 65th refused
    assert asyncio.run(upload(4))[-1] == aiocoap.CONTENT  # within the limit: answered
