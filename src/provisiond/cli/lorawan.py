"""`provisiond lorawan …`: claimed LoRaWAN devices in The Things Stack."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from provisiond.bootstrap import Container
from provisiond.cli import output
from provisiond.cli.common import (
    Common,
    ConfigOpt,
    DatabaseOpt,
    DebugOpt,
    JsonOpt,
    actor,
    fail,
    run,
)
from provisiond.errors import InvalidInput, Problem
from provisiond.services.credentials import replace_lorawan_keys
from provisiond.services.tts import tts_status

app = typer.Typer(help="LoRaWAN devices in The Things Stack: sync, status, swapped hardware.",
                  no_args_is_help=True)


@app.command("sync")
def sync(database: DatabaseOpt = None, config: ConfigOpt = None, json: JsonOpt = False,
         debug: DebugOpt = False) -> None:
    """Register every claimed LoRaWAN device in The Things Stack and remove the ones no
    longer claimed, now; say what changed (safe to repeat)."""
    common = Common(database, config, json, debug)

    async def work(c: Container) -> dict[str, Any]:
        async with c.tts_sync() as tts:
            return (await tts.sync_all()).as_dict()

    report = run(common, work)
    if json:
        output.print_json(report)
    else:
        output.table(["", "devices"], [("registered", len(report["registered"])),
                                       ("removed", len(report["removed"])),
                                       ("failed", len(report["failed"])),
                                       ("to retry", len(report["retrying"]))],
                     title="The Things Stack sync")
        for device_id, error in {**report["failed"], **report["retrying"]}.items():
            output.stderr.print(f"{device_id}: {error}", markup=False, highlight=False)
    if report["failed"] or report["retrying"]:
        raise typer.Exit(7)


@app.command("status")
def status(database: DatabaseOpt = None, config: ConfigOpt = None, json: JsonOpt = False,
           debug: DebugOpt = False) -> None:
    """What provisiond registered in The Things Stack, what failed, what waits."""
    common = Common(database, config, json, debug)

    state = run(common, lambda c: tts_status(c.uow()))
    if json:
        output.print_json(state)
        return
    output.table(["end device", "application", "status", "error"],
                 [(d["end_device_id"], d["application_id"], d["status"], d["error"] or "")
                  for d in state["devices"]], title="The Things Stack")
    if state["pending"]:
        output.table(["device id", "attempts", "next attempt", "last error"],
                      [(p["device_id"], p["attempts"], p["next_attempt_at"] or "now",
                        p["error"] or "") for p in state["pending"]], title="waiting")


@app.command("replace")
def replace(
    serial: Annotated[str, typer.Argument(help="The device whose radio was swapped.")],
    dev_eui: Annotated[str, typer.Option("--dev-eui", help="The new DevEUI (16 hex digits).")],
    join_eui: Annotated[str, typer.Option("--join-eui", help="The new JoinEUI.")],
    app_key_stdin: Annotated[bool, typer.Option(
        "--app-key-stdin", help="Read the new AppKey (32 hex digits) from standard input.")
    ] = False,
    database: DatabaseOpt = None, config: ConfigOpt = None, json: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Swapped hardware: give the device a new DevEUI, JoinEUI and AppKey. The device keeps
    its serial and history; The Things Stack gets the new end device, the old one goes."""
    common = Common(database, config, json, debug)
    if not app_key_stdin:
        fail(common, InvalidInput("pass --app-key-stdin and the AppKey on standard input "
                                  "(keys are not taken on the command line)",
                                  problems=[Problem("is required", "--app-key-stdin")]))
    key = sys.stdin.readline().strip()
    credential = run(common, lambda c: replace_lorawan_keys(
        c.uow(), serial=serial, dev_eui=dev_eui, join_eui=join_eui, app_key=key,
        actor=actor(), now=c.now(), sealer=c.sealer))
    if json:
        output.print_json({"serial": serial, "credential_id": str(credential.id),
                           "type": credential.type.value})
    else:
        output.success(f"{serial}: new LoRaWAN keys; The Things Stack follows")
