"""A webhook receiver on a loopback port: records every request (and counts connections),
answers as told; over TLS with a given certificate, recording the name each client sent
(SNI)."""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # what to answer to the n-th request (0-based): a status code
    answer: Callable[[int], int] = lambda _n: 200
    arrived: threading.Condition = field(default_factory=threading.Condition)
    headers: dict[str, str] = field(default_factory=dict)  # added to every answer
    connections: int = 0  # accepted, whether or not a request followed
    server_names: list[str | None] = field(default_factory=list)  # SNI of TLS clients

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} requests arrived")
            return list(self.requests)


@contextlib.contextmanager
def receiver(tls: tuple[str, str] | None = None) -> Iterator[Receiver]:
    """``tls``: (certificate, key) PEM files to answer HTTPS with."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            r = state["r"]
            with r.arrived:
                n = len(r.requests)
                r.requests.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                r.arrived.notify_all()
            code = r.answer(n)
            self.send_response(code)
            for name, value in r.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 256  # the deliverer opens many connections at once
        daemon_threads = True

        def verify_request(self, *_: object) -> bool:
            r = state["r"]
            with r.arrived:
                r.connections += 1
            return True

    server = Server(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)

        def sni(_: object, name: str | None, __: object) -> None:
            state["r"].server_names.append(name)

        context.sni_callback = sni  # type: ignore[assignment]
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    state["r"] = Receiver(f"{scheme}://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["r"]
    finally:
        server.shutdown()
        server.server_close()
