"""`provisiond backup OUT` and `provisiond restore IN`: the registry copied whole and put back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from provisiond.cli import output
from provisiond.cli.common import Common, actor, common_options, fail, guard
from provisiond.errors import ProvisiondError
from provisiond.services import backup as service

ForceOpt = Annotated[bool, typer.Option("--force", help="Replace what is there.")]


@common_options()
def backup(
    common: Common,
    out: Annotated[Path, typer.Argument(help="The backup file to write (mode 0600).")],
    force: ForceOpt = False,
) -> None:
    """Back up the database to OUT while `serve` runs: SQLite's online backup (one
    consistent snapshot), or pg_dump --format=custom for PostgreSQL.

    The backup's sealed secrets open only with the same device_key_passphrase."""
    settings = guard(common, common.settings)
    done = guard(common, lambda: service.back_up(settings.effective_database_url, out, force=force))
    encrypts = settings.device_key_passphrase is not None
    warning = service.SEALED_WARNING if encrypts else service.UNSEALED_WARNING
    output.stderr.print(f"warning: {warning}", markup=False, highlight=False)
    if common.json:
        output.print_json(
            {
                "path": str(done.path),
                "backend": done.backend,
                "bytes": done.size,
                "needs_passphrase": encrypts,
            }
        )
        return
    output.success(f"backed up the {done.backend} database to {done.path} ({done.size} bytes)")


@common_options()
def restore(
    common: Common,
    backup_file: Annotated[
        Path, typer.Argument(metavar="IN", help="A file `provisiond backup` wrote.")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replace the database that is there now.")
    ] = False,
) -> None:
    """Put a backup in place of the configured database (stop `serve` first).

    Checked before anything is replaced: a provisiond database, intact, of a schema this
    provisiond knows (an older one is migrated), whose sealed secrets the configured
    device_key_passphrase opens. The restored database records a database.restored event."""
    settings = guard(common, common.settings)
    passphrase = (
        settings.device_key_passphrase.get_secret_value()
        if settings.device_key_passphrase is not None
        else None
    )
    try:
        done = asyncio.run(
            service.restore(
                settings.effective_database_url,
                backup_file,
                passphrase=passphrase,
                force=force,
                actor=actor(),
                now=datetime.now(UTC),
            )
        )
    except ProvisiondError as err:
        fail(common, err)
    if common.json:
        output.print_json(
            {
                "database": done.database,
                "revision": done.revision,
                "head": done.head,
                "sealed_checked": done.sealed_checked,
            }
        )
        return
    migrated = f", migrated from {done.revision}" if done.revision != done.head else ""
    output.success(
        f"restored {backup_file} into {done.database} (schema {done.head}{migrated}); "
        "run `provisiond broker sync` if a broker is kept in step"
    )
