"""`provisiond wifi provision --browser`: the choice handed to a browser.

A one-page local web interface on 127.0.0.1: the networks the device sees, with their
signal; the passphrase; then the device's progress, live (server-sent events). Only this
computer can reach it, and only with the secret in the printed URL (a page elsewhere in the
browser cannot drive it: the token is checked on every request, and so is the Host
header, against DNS rebinding).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from provisiond.errors import WifiProvisioningFailed
from provisiond.wifi.client import ProvisioningClient

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Wi-Fi for {device}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 32rem; margin: 2rem auto;
       padding: 0 1rem; color: #1d2430; }}
h1 {{ font-size: 1.4rem; }} .muted {{ color: #5b6473; }}
ul {{ list-style: none; padding: 0; }}
li label {{ display: flex; justify-content: space-between; padding: .6rem .8rem;
           border: 1px solid #d5dae1; border-radius: .5rem; margin: .4rem 0;
           cursor: pointer; }}
li input {{ margin-right: .6rem; }}
input[type=password], button {{ font-size: 1rem; padding: .6rem; width: 100%;
                                box-sizing: border-box; margin-top: .5rem; }}
button {{ background: #1f6feb; color: white; border: 0; border-radius: .5rem; }}
#progress {{ margin-top: 1rem; }} .ok {{ color: #1a7f37; }} .bad {{ color: #cf222e; }}
</style></head>
<body>
<h1>Wi-Fi for {device}</h1>
<p class="muted">Choose the network the device should join. It sees:</p>
<form id="form">
<ul id="networks"><li class="muted">scanning…</li></ul>
<label for="passphrase">Passphrase</label>
<input type="password" id="passphrase" name="passphrase" autocomplete="off">
<button type="submit" id="connect">Connect the device</button>
</form>
<div id="progress" aria-live="polite"></div>
<script src="app.js?t={token}"></script>
</body></html>
"""

SCRIPT = """
const token = new URLSearchParams(location.search).get("t");
const q = (path) => `${path}?t=${encodeURIComponent(token)}`;
const list = document.getElementById("networks");
const progress = document.getElementById("progress");
fetch(q("networks")).then((r) => r.json()).then((nets) => {
  list.replaceChildren(...nets.map((n, i) => {
    const li = document.createElement("li");
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio"; radio.name = "ssid"; radio.value = n.ssid; radio.checked = i === 0;
    const name = document.createElement("span");
    name.append(radio, n.ssid);
    const info = document.createElement("span");
    info.className = "muted";
    info.textContent = `${n.rssi} dBm · ${n.security} · ch ${n.channel}`;
    label.append(name, info); li.append(label); return li;
  }));
}).catch(() => { list.textContent = "The device did not answer the scan."; });
document.getElementById("form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const ssid = (document.querySelector("input[name=ssid]:checked") || {}).value;
  if (!ssid) { progress.textContent = "Choose a network."; return; }
  document.getElementById("connect").disabled = true;
  progress.textContent = "Sending the settings…";
  const events = new EventSource(q("events"));
  events.onmessage = (m) => {
    const s = JSON.parse(m.data);
    if (s.state === "connected") {
      progress.innerHTML = "";
      const p = document.createElement("p"); p.className = "ok";
      p.textContent = `Connected to ${s.ssid}, address ${s.ip4}. You can close this page.`;
      progress.append(p); events.close();
    } else if (s.state === "failed") {
      progress.innerHTML = "";
      const p = document.createElement("p"); p.className = "bad";
      p.textContent = `${s.message}`;
      const hint = document.createElement("p"); hint.textContent = s.hint ? `Try: ${s.hint}` : "";
      progress.append(p, hint); events.close();
      document.getElementById("connect").disabled = false;
    } else {
      progress.textContent = `${s.state}… ${s.seconds.toFixed(1)} s`;
    }
  };
  await fetch(q("provision"), {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({ssid, passphrase: document.getElementById("passphrase").value})});
});
"""


@dataclass
class BrowserSession:
    """One hand-over: the updates for the page, and how it ended."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    updates: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    shown: asyncio.Event = field(default_factory=asyncio.Event)  # the page got the end
    result: dict[str, Any] | None = None
    busy: bool = False


def build_app(  # noqa: C901 - the hand-over page's routes, defined as closures over one session
    client: ProvisioningClient, session: BrowserSession, *, limit: float, port_of: Any
) -> web.Application:
    app = web.Application()

    def check(request: web.Request) -> None:
        if request.query.get("t") != session.token:
            raise web.HTTPForbidden(text="open the address provisiond printed")
        if request.host not in (f"127.0.0.1:{port_of()}", f"localhost:{port_of()}"):
            raise web.HTTPForbidden(text="wrong host")

    async def page(request: web.Request) -> web.Response:
        check(request)
        html = PAGE.format(device=client.device, token=session.token)
        return web.Response(
            text=html,
            content_type="text/html",
            headers={
                "Content-Security-Policy": "default-src 'self'; style-src 'unsafe-inline'",
                "Cache-Control": "no-store",
            },
        )

    async def script(request: web.Request) -> web.Response:
        check(request)
        return web.Response(text=SCRIPT, content_type="application/javascript")

    async def networks(request: web.Request) -> web.Response:
        check(request)
        try:
            found = await client.scan()
        except WifiProvisioningFailed as err:
            return web.json_response({"error": str(err)}, status=502)
        return web.json_response(
            [
                {"ssid": n.ssid, "rssi": n.rssi, "channel": n.channel, "security": n.auth_name}
                for n in found
            ]
        )

    async def provision(request: web.Request) -> web.Response:
        check(request)
        body = await request.json()
        if session.busy:
            return web.json_response({"error": "already provisioning"}, status=409)
        session.busy = True
        asyncio.get_running_loop().create_task(
            _provision(
                client, session, str(body.get("ssid", "")), str(body.get("passphrase", "")), limit
            )
        )
        return web.json_response({"started": True}, status=202)

    async def events(request: web.Request) -> web.StreamResponse:
        check(request)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        async for update in _updates(session):
            await response.write(f"data: {json.dumps(update)}\n\n".encode())
            if update["state"] == "connected":
                session.shown.set()
        return response

    app.router.add_get("/", page)
    app.router.add_get("/app.js", script)
    app.router.add_get("/networks", networks)
    app.router.add_post("/provision", provision)
    app.router.add_get("/events", events)
    return app


async def _updates(session: BrowserSession) -> AsyncIterator[dict[str, Any]]:
    while True:
        update = await session.updates.get()
        yield update
        if update["state"] in ("connected", "failed"):
            return


async def _provision(
    client: ProvisioningClient, session: BrowserSession, ssid: str, passphrase: str, limit: float
) -> None:
    try:
        await client.configure(ssid, passphrase)

        def progress(status: Any, seconds: float) -> None:
            if status.state.value not in ("connected", "failed"):  # the end comes below
                session.updates.put_nowait({"state": status.state.value, "seconds": seconds})

        outcome = await client.wait_connected(limit=limit, progress=progress)
        result: dict[str, Any] = {
            "state": "connected",
            "ssid": ssid,
            "ip4": outcome.status.ip4,
            "seconds": outcome.seconds,
        }
    except WifiProvisioningFailed as err:
        message = str(err).split(" — try: ", 1)[0]
        result = {"state": "failed", "message": message, "hint": err.hint, "seconds": 0.0}
    session.busy = False
    await session.updates.put(result)
    if result["state"] == "connected":
        session.result = result
        session.done.set()


async def hand_over(client: ProvisioningClient, *, limit: float, opened: Any) -> dict[str, Any]:
    """Serve the page until the device has joined; ``opened(url)`` is told where."""
    session = BrowserSession()
    holder: dict[str, int] = {}
    runner = web.AppRunner(
        build_app(client, session, limit=limit, port_of=lambda: holder["port"]), access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = getattr(site, "_server", None)
    holder["port"] = int(server.sockets[0].getsockname()[1]) if server else 0
    try:
        opened(f"http://127.0.0.1:{holder['port']}/?t={session.token}")
        await session.done.wait()
        # the page shows the end before the server goes (if a page is open at all)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.shown.wait(), 5)
        return session.result or {}
    finally:
        await runner.cleanup()
