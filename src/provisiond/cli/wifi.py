"""`provisiond wifi …`: put ESP32 devices on Wi-Fi (ESP unified provisioning), and emulate one."""

from __future__ import annotations

import asyncio
import getpass
import json as jsonlib
import sys
import webbrowser
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from provisiond.bootstrap import (
    run_wifi_emulator,
    wifi_browser_hand_over,
    wifi_client,
    wifi_emulator_config,
)
from provisiond.cli import output
from provisiond.cli.common import (
    Common,
    actor,
    common_options,
    fail,
    run,
)
from provisiond.errors import InvalidInput, Problem, ProvisiondError, WifiProvisioningFailed
from provisiond.protocols.codes.base import PayloadError
from provisiond.protocols.codes.esp import EspProvCode
from provisiond.services.claims.associations import issue_association

app = typer.Typer(
    help="Wi-Fi for ESP devices: provision one over its soft access point, or emulate one.",
    no_args_is_help=True,
)
DEFAULT_DEVICE = "192.168.4.1:80"


def _failed(common: Common, message: str, hint: str = "") -> NoReturn:
    fail(common, WifiProvisioningFailed(message, hint))


@app.command("provision")
@common_options()
def provision(
    common: Common,
    pop: Annotated[
        str | None,
        typer.Argument(
            help="The proof of possession on the device's label (security 1), or its SRP "
            "password (security 2)."
        ),
    ] = None,
    device: Annotated[
        str,
        typer.Option(
            "--device", help="HOST:PORT of the device's provisioning server (its soft AP)."
        ),
    ] = DEFAULT_DEVICE,
    ble: Annotated[
        str | None,
        typer.Option(
            "--ble",
            help="Provision over Bluetooth LE instead, to the device advertising this "
            "name (PROV_…); needs bleak and a Bluetooth adapter.",
        ),
    ] = None,
    qr: Annotated[
        str | None,
        typer.Option(
            "--qr",
            help="The device's ESP provisioning QR payload (name, PoP, transport, security).",
        ),
    ] = None,
    ssid: Annotated[
        str | None, typer.Option("--ssid", help="The network to join (default: scan and choose).")
    ] = None,
    passphrase_stdin: Annotated[
        bool,
        typer.Option(
            "--passphrase-stdin", help="Read the network's passphrase from standard input."
        ),
    ] = False,
    sec: Annotated[
        int | None,
        typer.Option(
            "--sec", min=0, max=2, help="Security 0, 1 or 2 (default: what the device says)."
        ),
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", help="Security 2: the SRP user name.")
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1, help="Seconds the device has to join the network.")
    ] = 60.0,
    request_timeout: Annotated[
        float,
        typer.Option(
            "--request-timeout", min=1, help="Seconds one request to the device may take."
        ),
    ] = 10.0,
    claim: Annotated[
        str | None,
        typer.Option(
            "--claim",
            help="Claim the device for this user (e-mail): a one-time association "
            "token goes to the device, which reports it to provisiond once on "
            "Wi-Fi (ESP RainMaker's user-node mapping).",
        ),
    ] = None,
    browser: Annotated[
        bool,
        typer.Option(
            "--browser",
            help="Choose the network and type the passphrase in a local web page "
            "(its address is printed, and opened when there is a browser).",
        ),
    ] = False,
) -> None:
    """Send a network name and passphrase to an ESP32 in provisioning mode, apply them and
    follow it until it has joined (or say what went wrong and what to try)."""
    if qr:
        try:
            code = EspProvCode.parse(qr)
        except PayloadError as err:
            fail(common, InvalidInput(f"--qr: {err}", problems=[Problem(str(err), "--qr")]))
        if code.transport == "ble":
            ble = ble or code.name
        elif code.transport != "softap":
            fail(
                common,
                InvalidInput(
                    f"transport {code.transport!r} is neither softap nor ble",
                    problems=[Problem("transport must be softap or ble", "--qr")],
                ),
            )
        pop = pop or code.pop or None
        username = username or code.username or None
        if sec is None and code.security.isdigit():
            sec = int(code.security)
    association = None  # issued once the arguments are known good: it is used once
    if claim:
        association = run(
            common, lambda c: issue_association(c.uow(), email=claim, actor=actor(), now=c.now())
        )
    passphrase: str | None = None
    if passphrase_stdin:
        passphrase = sys.stdin.readline().rstrip("\n")

    try:
        result = asyncio.run(
            _provision(
                common,
                device,
                pop,
                ssid,
                passphrase,
                sec,
                username,
                timeout,
                request_timeout,
                browser,
                association,
                ble,
            )
        )
    except ProvisiondError as err:
        fail(common, err)
    if common.json:
        output.print_json(result)
    else:
        output.success(
            f"{result['ssid']}: connected, address {result['ip4']} ({result['seconds']:.1f} s)"
        )


async def _provision(
    common: Common,
    device: str,
    pop: str | None,
    ssid: str | None,
    passphrase: str | None,
    sec: int | None,
    username: str | None,
    join_limit: float,
    request_timeout: float,
    browser: bool = False,
    association: Any = None,
    ble: str | None = None,
) -> dict[str, Any]:
    async with wifi_client(device, timeout=request_timeout, ble_name=ble) as client:
        version = await client.read_version()
        if not common.json:
            output.stderr.print(
                f"device at {device}: provisioning {version.version}, security {version.security}",
                highlight=False,
            )
        await client.open_session(client.choose_security(sec, pop, username, pop))
        node_id = None
        if association is not None:
            node_id = await client.associate_user(association.user_id, association.secret_key)
            if not common.json:
                output.stderr.print(
                    f"device {node_id} will be claimed for you once on Wi-Fi", highlight=False
                )
        if browser:

            def opened(url: str) -> None:
                output.stderr.print(
                    f"choose the network in your browser: {url}", markup=False, highlight=False
                )
                webbrowser.open(url)

            done = await wifi_browser_hand_over(client, limit=join_limit, opened=opened)
            return {"device": device, "node_id": node_id, **done}
        if ssid is None:
            ssid = await _choose_network(common, client)
        if passphrase is None:
            passphrase = getpass.getpass(f"passphrase for {ssid}: ") if sys.stdin.isatty() else ""
        await client.configure(ssid, passphrase)

        def progress(status: Any, seconds: float) -> None:
            if not common.json:
                output.stderr.print(f"  {seconds:4.1f} s  {status.state.value}", highlight=False)

        outcome = await client.wait_connected(limit=join_limit, progress=progress)
    return {
        "device": device,
        "node_id": node_id,
        "ssid": ssid,
        "state": outcome.status.state.value,
        "ip4": outcome.status.ip4,
        "seconds": round(outcome.seconds, 2),
    }


async def _choose_network(common: Common, client: Any) -> str:
    if not sys.stdin.isatty() or common.json:
        _failed(common, "no network chosen", "pass --ssid (and --passphrase-stdin)")
    networks = await client.scan()
    if not networks:
        _failed(common, "the device sees no network", "is it in range of one?")
    output.table(
        ["#", "network", "signal", "security", "channel"],
        [
            (str(i + 1), n.ssid, f"{n.rssi} dBm", n.auth_name, str(n.channel))
            for i, n in enumerate(networks)
        ],
        title="networks the device sees",
    )
    choice = typer.prompt("network number", type=int)
    if not 1 <= choice <= len(networks):
        _failed(common, f"there is no network {choice}")
    return str(networks[choice - 1].ssid)


@app.command("emulate")
@common_options(database=False, config=False, json=False)
def emulate(
    common: Common,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")
    ] = 8080,
    sec: Annotated[int, typer.Option("--sec", min=0, max=2, help="Security level.")] = 1,
    pop: Annotated[
        str | None,
        typer.Option(
            "--pop", help="Security 1: the proof of possession (none: the no_pop capability)."
        ),
    ] = "abcd1234",
    username: Annotated[
        str, typer.Option("--username", help="Security 2: SRP user name.")
    ] = "wifiprov",
    password: Annotated[
        str, typer.Option("--password", help="Security 2: SRP password.")
    ] = "abcd1234",  # noqa: S107 (ESP's example default)
    networks: Annotated[
        Path | None,
        typer.Option(
            "--networks",
            exists=True,
            dir_okay=False,
            help="JSON list of networks: ssid, passphrase, channel, rssi, auth, reachable.",
        ),
    ] = None,
    delay_scale: Annotated[
        float,
        typer.Option("--delay-scale", min=0, help="Scale the realistic scan and join delays."),
    ] = 1.0,
    outcome: Annotated[
        str,
        typer.Option(
            "--outcome",
            help="auto (what the settings deserve), connected, auth-error or "
            "network-not-found, whatever is sent.",
        ),
    ] = "auto",
    report_to: Annotated[
        str | None,
        typer.Option(
            "--report-to",
            help="provisiond's URL: once on Wi-Fi, report the user mapping there "
            "(with --device-token), so the device is claimed.",
        ),
    ] = None,
    device_token: Annotated[
        str | None,
        typer.Option("--device-token", help="The emulated device's access token in provisiond."),
    ] = None,
) -> None:
    """Run an emulated ESP32 in provisioning mode (HTTP, like its soft access point), for
    demos, tests and firmware teams. It prints its QR payload; Ctrl-C stops it."""
    if outcome not in ("auto", "connected", "auth-error", "network-not-found"):
        fail(
            common,
            InvalidInput(
                f"--outcome {outcome!r}: auto, connected, auth-error or network-not-found",
                problems=[Problem("auto, connected, auth-error or network-not-found", "--outcome")],
            ),
        )
    try:
        cfg = wifi_emulator_config(
            security=sec,
            pop=pop or None,
            username=username,
            password=password,
            networks=networks,
            delay_scale=delay_scale,
            report_to=report_to,
            device_token=device_token,
            outcome=outcome,
        )
    except (ValueError, jsonlib.JSONDecodeError) as err:
        fail(common, InvalidInput(f"--networks: {err}", problems=[Problem(str(err), "--networks")]))

    def started(bound: int) -> None:
        secret = (pop or "") if sec < 2 else password
        code = EspProvCode(
            EspProvCode.default_name(cfg.node_id),
            "softap",
            secret,
            username if sec == 2 else "",
            "v1",
            str(sec),
        )
        output.stdout.print(
            f"emulated ESP32 on http://{host}:{bound} (security {sec})", highlight=False
        )
        output.stdout.print(f"QR payload: {code.render()}", markup=False, highlight=False)
        output.stdout.print(
            f"provision it: provisiond wifi provision --device {host}:{bound}"
            f" --qr '{code.render()}'",
            markup=False,
            highlight=False,
        )

    try:
        asyncio.run(run_wifi_emulator(cfg, host, port, started))
    except KeyboardInterrupt:
        output.success("stopped")
