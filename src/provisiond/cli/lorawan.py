"""`provisiond lorawan …`: claimed LoRaWAN devices in The Things Stack."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from provisiond.bootstrap import Container
from provisiond.cli import output
from provisiond.cli.common import (
    OPERATOR,
    Common,
    actor,
    common_options,
    fail,
    run,
)
from provisiond.errors import InvalidInput, Problem
from provisiond.services.credentials import replace_lorawan_keys
from provisiond.services.tts import tts_status

app = typer.Typer(
    help="LoRaWAN devices in The Things Stack: sync, status, adopt, swapped hardware.",
    no_args_is_help=True,
)


@app.command("sync")
@common_options()
def sync(common: Common) -> None:
    """Register every claimed LoRaWAN device in The Things Stack and remove the ones no
    longer claimed, now; say what changed (safe to repeat)."""

    async def work(c: Container) -> dict[str, Any]:
        async with c.tts_sync() as tts:
            return (await tts.sync_all()).as_dict()

    report = run(common, work)
    if common.json:
        output.print_json(report)
    else:
        output.table(
            ["", "devices"],
            [
                ("registered", len(report["registered"])),
                ("removed", len(report["removed"])),
                ("not removed: not provisiond's", len(report["skipped"])),
                ("failed", len(report["failed"])),
                ("to retry", len(report["retrying"])),
                ("waiting for an operator", len(report["waiting"])),
            ],
            title="The Things Stack sync",
        )
        for device_id, error in {
            **report["failed"],
            **report["retrying"],
            **report["waiting"],
            **report["skipped"],
        }.items():
            output.stderr.print(f"{device_id}: {error}", markup=False, highlight=False)
    if report["failed"] or report["retrying"] or report["waiting"]:
        raise typer.Exit(7)


@app.command("status")
@common_options()
def status(common: Common) -> None:
    """What provisiond registered in The Things Stack, what failed, what waits for an
    operator (conflict: an end device provisiond did not create is in the way), what is
    queued."""

    state = run(common, lambda c: tts_status(c.uow()))
    if common.json:
        output.print_json(state)
        return
    output.table(
        ["serial", "end device", "application", "status", "origin"],
        [
            (
                d["serial"] or d["device_id"],
                d["end_device_id"],
                d["application_id"],
                d["status"],
                d["origin"],
            )
            for d in state["devices"]
        ],
        title="The Things Stack",
    )
    for d in state["devices"]:  # why it failed or waits, in full
        if d["error"]:
            output.stdout.print(
                f"{d['serial'] or d['device_id']} ({d['status']}): {d['error']}",
                markup=False,
                highlight=False,
            )
    if state["pending"]:
        output.table(
            ["serial", "attempts", "next attempt", "last error"],
            [
                (
                    p["serial"] or p["device_id"],
                    p["attempts"],
                    p["next_attempt_at"] or "now",
                    p["error"] or "",
                )
                for p in state["pending"]
            ],
            title="queued",
        )


@app.command("adopt")
@common_options()
def adopt(
    common: Common,
    serial: Annotated[str, typer.Argument(help="The device whose end device to take over.")],
) -> None:
    """Take over the end device in The Things Stack that holds this device's ID or DevEUI
    and that provisiond did not create (the device waits in conflict): provisiond marks it
    as its own, registers it with the device's keys and settings, and from then on removes
    it when the device is released or deleted. Recorded as a lorawan.adopted event."""

    async def work(c: Container) -> dict[str, Any]:
        async with c.tts_sync() as tts:
            return await tts.adopt(serial=serial, actor=actor())

    result = run(common, work)
    if common.json:
        output.print_json(result)
    elif result["status"] == "registered":
        output.success(
            f"{result['serial']}: adopted {result['end_device_id']} in "
            f"{result['application_id']}; registered as provisiond's"
        )
    else:
        output.stderr.print(
            f"{result['serial']}: adopted {result['end_device_id']}; "
            f"{result['status']}: {result['error']}",
            markup=False,
            highlight=False,
        )
    if result["status"] != "registered":
        raise typer.Exit(7)


@app.command("replace")
@common_options()
def replace(
    common: Common,
    serial: Annotated[str, typer.Argument(help="The device whose radio was swapped.")],
    dev_eui: Annotated[str, typer.Option("--dev-eui", help="The new DevEUI (16 hex digits).")],
    join_eui: Annotated[str, typer.Option("--join-eui", help="The new JoinEUI.")],
    app_key_stdin: Annotated[
        bool,
        typer.Option(
            "--app-key-stdin", help="Read the new AppKey (32 hex digits) from standard input."
        ),
    ] = False,
    nwk_key_stdin: Annotated[
        bool,
        typer.Option(
            "--nwk-key-stdin",
            help="LoRaWAN 1.1: read the new NwkKey (32 hex digits) from the "
            "next line of standard input, after the AppKey.",
        ),
    ] = False,
) -> None:
    """Swapped hardware: give the device a new DevEUI, JoinEUI and AppKey. The device keeps
    its serial and history; The Things Stack gets the new end device, the old one goes.

    A LoRaWAN 1.1 device's NwkKey follows the AppKey on standard input (--nwk-key-stdin).
    """
    if not app_key_stdin:
        fail(
            common,
            InvalidInput(
                "pass --app-key-stdin and the AppKey on standard input "
                "(keys are not taken on the command line)",
                problems=[Problem("is required", "--app-key-stdin")],
            ),
        )
    key = sys.stdin.readline().strip()
    nwk_key = sys.stdin.readline().strip() if nwk_key_stdin else None
    credential = run(
        common,
        lambda c: replace_lorawan_keys(
            c.uow(),
            scope=OPERATOR,
            serial=serial,
            dev_eui=dev_eui,
            join_eui=join_eui,
            app_key=key,
            nwk_key=nwk_key,
            actor=actor(),
            now=c.now(),
            sealer=c.sealer,
        ),
    )
    if common.json:
        output.print_json(
            {"serial": serial, "credential_id": str(credential.id), "type": credential.type.value}
        )
    else:
        output.success(f"{serial}: new LoRaWAN keys; The Things Stack follows")
