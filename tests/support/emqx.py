"""A stand-in for EMQX 5, for the tests: EMQX cannot run here.

Built from EMQX's published documentation and API (emqx/emqx
``apps/emqx_management/src/emqx_mgmt_api_clients.erl``; docs ``access-control/authn/http``,
``admin/api``):

- the REST API on a loopback port, HTTP Basic with an API key and its secret key (``401
  BAD_API_KEY_OR_SECRET`` otherwise): ``GET /api/v5/clients`` filtered by ``username`` and
  ``clientid`` (each repeatable), paged by ``page`` and ``limit`` (default 100), answering
  ``{"data": [client…], "meta": {"page", "limit", "count", "hasnext"}}``; ``DELETE
  /api/v5/clients/{clientid}`` kicks the client and discards its session (``204``, or
  ``404 CLIENTID_NOT_FOUND``);
- the HTTP authenticator, as a client's connection makes EMQX call it: the body template's
  ``${username}``, ``${password}``, ``${clientid}`` filled in, POSTed with its headers;
  ``200``/``204`` answer with the body's ``result``, any other status is ``ignore`` — and
  with provisiond the last authenticator of the chain, ``ignore`` refuses the connection. An
  allowed client gets a session (one with the same client id is taken over), which EMQX
  ends at the answer's ``expire_at`` (:meth:`EmqxStandIn.expire`).
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from tests.support.mosquitto import free_port

AUTHN_BODY = {"username": "${username}", "password": "${password}", "clientid": "${clientid}"}


@dataclass
class Session:
    clientid: str
    username: str
    connected_at: datetime
    expire_at: int | None = None
    client_attrs: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        at = self.connected_at.isoformat(timespec="milliseconds")
        return {
            "clientid": self.clientid,
            "username": self.username,
            "connected": True,
            "node": "emqx@127.0.0.1",
            "proto_name": "MQTT",
            "proto_ver": 5,
            "ip_address": "127.0.0.1",
            "port": 50000,
            "clean_start": True,
            "created_at": at,
            "connected_at": at,
            "keepalive": 60,
            "client_attrs": self.client_attrs,
        }


class EmqxStandIn:
    def __init__(
        self,
        *,
        key: str = "provisiond",
        secret: str = "an EMQX secret key 01",  # noqa: S107 (the tests' own)
    ) -> None:
        self.key, self.secret = key, secret
        self.port = free_port()
        self.hook_url = ""  # provisiond's URL: set once its server runs
        self.hook_headers: dict[str, str] = {}
        self.authn_body: dict[str, str] = dict(AUTHN_BODY)
        self.sessions: dict[str, Session] = {}
        self.api_calls: list[tuple[str, str]] = []  # (method, path) answered
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------- the REST API

    def start(self) -> None:
        """Serve the REST API (again, after :meth:`stop`: EMQX is back)."""
        stand_in = self

        class Handler(_ApiHandler):
            emqx = stand_in

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """EMQX's API goes away (connections are refused)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    # --------------------------------------------------------------- the device's side

    def connect(self, clientid: str, username: str, password: str) -> str:
        """A client connects: EMQX asks provisiond's authenticator. The outcome: "allow"
        (a session now exists), "deny", or "ignore" (refused too: nothing after)."""
        values = {"${username}": username, "${password}": password, "${clientid}": clientid}
        body = {k: values.get(v, v) for k, v in self.authn_body.items()}
        answer = httpx.post(
            f"{self.hook_url}/hooks/emqx/authn", json=body, headers=self.hook_headers, timeout=30
        )
        if answer.status_code not in (200, 204):
            return "ignore"
        result = answer.json().get("result", "ignore") if answer.status_code == 200 else "allow"
        if result == "allow":
            document = answer.json() if answer.status_code == 200 else {}
            with self.lock:  # a client id already connected is taken over
                self.sessions[clientid] = Session(
                    clientid,
                    username,
                    datetime.now(UTC),
                    document.get("expire_at"),
                    document.get("client_attrs") or {},
                )
        return str(result)

    def online(self, clientid: str) -> bool:
        with self.lock:
            return clientid in self.sessions

    def username_of(self, clientid: str) -> str | None:
        with self.lock:
            session = self.sessions.get(clientid)
            return session.username if session else None

    def expire(self, now: int) -> list[str]:
        """EMQX ends the sessions whose authentication expired; their client ids."""
        with self.lock:
            gone = [
                c
                for c, s in self.sessions.items()
                if s.expire_at is not None and s.expire_at <= now
            ]
            for clientid in gone:
                del self.sessions[clientid]
        return gone


class _ApiHandler(BaseHTTPRequestHandler):
    emqx: EmqxStandIn

    def log_message(self, *_: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        expected = base64.b64encode(f"{self.emqx.key}:{self.emqx.secret}".encode()).decode()
        if scheme != "Basic" or given != expected:
            self._send(
                401, {"code": "BAD_API_KEY_OR_SECRET", "message": "Check api_key/api_secret"}
            )
            return False
        return True

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if not self._authorised():
            return
        if parts.path != "/api/v5/clients":
            self._send(404, {"code": "NOT_FOUND", "message": "Request Path Not Found"})
            return
        query = parse_qs(parts.query)
        try:
            page = int(query.get("page", ["1"])[0])
            limit = int(query.get("limit", ["100"])[0])
        except ValueError:
            self._send(400, {"code": "INVALID_PARAMETER", "message": "page_limit_invalid"})
            return
        with self.emqx.lock:
            self.emqx.api_calls.append(("GET", parts.path))
            found = [
                s.as_json()
                for s in self.emqx.sessions.values()
                if ("username" not in query or s.username in query["username"])
                and ("clientid" not in query or s.clientid in query["clientid"])
            ]
        chunk = found[(page - 1) * limit : page * limit]
        self._send(
            200,
            {
                "data": chunk,
                "meta": {
                    "page": page,
                    "limit": limit,
                    "count": len(found),
                    "hasnext": page * limit < len(found),
                },
            },
        )

    def do_DELETE(self) -> None:
        parts = urlsplit(self.path)
        if not self._authorised():
            return
        prefix = "/api/v5/clients/"
        if not parts.path.startswith(prefix):
            self._send(404, {"code": "NOT_FOUND", "message": "Request Path Not Found"})
            return
        clientid = unquote(parts.path[len(prefix) :])
        with self.emqx.lock:
            self.emqx.api_calls.append(("DELETE", parts.path))
            session = self.emqx.sessions.pop(clientid, None)
        if session is None:
            self._send(404, {"code": "CLIENTID_NOT_FOUND", "message": "Client ID not found"})
        else:
            self._send(204)
