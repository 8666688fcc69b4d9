"""`provisiond broker …`: keep the user's MQTT broker in step with the registry."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from provisiond.bootstrap import Container
from provisiond.cli import output
from provisiond.cli.common import Common, common_options, run
from provisiond.services.broker_keeper import broker_status

app = typer.Typer(
    help="The MQTT broker's device accounts (Mosquitto: its dynamic security "
    "plugin, or its password and ACL files) and, with EMQX's API, the "
    "sessions of credentials no longer active.",
    no_args_is_help=True,
)


@app.command("sync")
@common_options()
def sync(
    common: Common,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; change nothing.")
    ] = False,
    passwords: Annotated[
        bool,
        typer.Option(
            "--passwords",
            help="Set every account's password again (a broker restored from an old backup).",
        ),
    ] = False,
) -> None:
    """Make the broker's accounts (and roles) match the registry, and say what changed.

    Accounts named the old way (after broker__token_as_username changed) are moved to the
    new names. With EMQX: record every active credential's user name and end the sessions
    of the names no longer active. Safe to run at any time and as often as wanted: a second
    run changes nothing."""

    async def work(c: Container) -> dict[str, Any]:
        async with c.broker_sync() as broker:
            report = await broker.reconcile(dry_run=dry_run, passwords=passwords)
        return {"kind": c.settings.broker.kind.value, **report.as_dict()}

    report = run(common, work)
    if common.json:
        output.print_json(report)
    else:
        verb = "would be" if dry_run else "were"
        rows = [
            ("accounts the registry wants", report["accounts"]),
            (f"accounts that {verb} created", report["created"]),
            (f"accounts that {verb} updated", report["updated"]),
            (f"accounts that {verb} removed", report["deleted"]),
        ]
        if report["kind"] == "emqx":
            rows = [
                ("user names the registry answers for", report["accounts"]),
                (f"user names whose sessions {verb} ended", report["deleted"]),
            ]
        if report["kind"] == "mosquitto-dynsec":
            rows += [
                (f"roles that {verb} created", report["roles_created"]),
                (f"roles that {verb} corrected", report["roles_fixed"]),
                (f"roles that {verb} removed", report["roles_deleted"]),
            ]
        output.table(["", "count"], rows, title="broker sync" + (" (dry run)" if dry_run else ""))
        for error in report["errors"]:
            output.stderr.print(f"not in step: {error}", markup=False, highlight=False)
    if report["errors"]:
        raise typer.Exit(7)


@app.command("status")
@common_options()
def status(common: Common) -> None:
    """Devices waiting for their broker accounts, and the accounts provisiond made."""

    async def work(c: Container) -> dict[str, Any]:
        return {"kind": c.settings.broker.kind.value, **await broker_status(c.uow())}

    state = run(common, work)
    if common.json:
        output.print_json(state)
        return
    made = "user name(s) recorded" if state["kind"] == "emqx" else "account(s) made"
    output.stdout.print(
        f"broker: {state['kind']}; {state['accounts']} {made}; "
        f"{state['events_queued']} event(s) queued; "
        f"{len(state['pending'])} device(s) waiting",
        markup=False,
    )
    if state["pending"]:
        output.table(
            ["device id", "attempts", "next attempt", "last error"],
            [
                (p["device_id"], p["attempts"], p["next_attempt_at"] or "now", p["error"] or "")
                for p in state["pending"][:50]
            ],
        )
