"""`provisiond devices …`: import, export, list, show, create, rotate, revoke, delete."""

from __future__ import annotations

import io
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Annotated, Any

import orjson
import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from provisiond.bootstrap import Container
from provisiond.cli import output
from provisiond.cli.common import (
    OPERATOR,
    Common,
    actor,
    collect_pages,
    common_options,
    fail,
    parse_tag_options,
    run,
)
from provisiond.domain.broker import topic_prefix
from provisiond.domain.credentials import CredentialType
from provisiond.domain.device import DeviceSpec
from provisiond.domain.rendering import device_fields
from provisiond.errors import InvalidInput, Problem
from provisiond.protocols.csv_cells import csv_line
from provisiond.services import devices as device_service
from provisiond.services.credentials import revoke_credentials, rotate_credentials
from provisiond.services.import_formats import ImportFormat, read_import
from provisiond.services.lorawan_import import peek_is_lorawan, register_lorawan
from provisiond.services.registration import (
    SECRET_COLUMNS,
    ImportOptions,
    SecretRow,
    credential_csv,
    register_devices,
)
from provisiond.services.sealing import how_secrets_are_kept
from provisiond.services.tts import tts_registration

app = typer.Typer(
    help="Register, list, show, export and delete devices; rotate and revoke their credentials.",
    no_args_is_help=True,
)

GroupFilter = Annotated[str | None, typer.Option("--group", help="Only this group's subtree.")]
StateFilter = Annotated[str | None, typer.Option("--state", help="registered, claimed, released.")]
ModelFilter = Annotated[str | None, typer.Option("--model", help="Only devices of this model.")]
TagFilter = Annotated[
    list[str] | None, typer.Option("--tag", help="KEY=VALUE; repeat to require several.")
]


class CredentialsFile:
    """The credentials CSV of an import: written to a private temporary file beside the
    target, made durable before the import commits, renamed into place after."""

    def __init__(self, target: Path, *, overwrite: bool) -> None:
        if target.exists() and not overwrite:
            problem = Problem(
                f"{target} exists; its secrets would be lost. Choose another "
                "name, or pass --overwrite",
                field="--credentials-out",
            )
            raise InvalidInput(str(problem), problems=[problem])
        directory = target.resolve().parent
        if not directory.is_dir():
            problem = Problem(f"directory {directory} does not exist", "--credentials-out")
            raise InvalidInput(str(problem), problems=[problem])
        self.target = target
        self.committed = False
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
        self.tmp = Path(name)
        self._file = os.fdopen(fd, "w", newline="", encoding="utf-8")
        self._file.write(credential_csv([SECRET_COLUMNS]))

    def add_rows(self, rows: Sequence[SecretRow]) -> None:
        self._file.write(credential_csv(rows))

    def prepare(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def commit(self) -> None:
        self._file.close()
        os.replace(self.tmp, self.target)
        self.committed = True

    def discard(self) -> None:
        """Remove the secrets of an import that did not commit (after commit: nothing)."""
        self._file.close()
        if not self.committed:
            self.tmp.unlink(missing_ok=True)


class _Counting(io.RawIOBase):
    """A raw stream that reports how many bytes were read (for the progress bar)."""

    def __init__(self, raw: IO[bytes], on_read: Any) -> None:
        self._raw = raw
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self._on_read(n)
        return int(n or 0)


def _open_input(path: str) -> tuple[IO[bytes], int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    file = Path(path)
    if not file.is_file():
        problem = Problem(f"{path} is not a readable file", field="FILE")
        raise InvalidInput(str(problem), problems=[problem])
    return file.open("rb"), file.stat().st_size


@app.command("import")
@common_options()
def import_(
    common: Common,
    file: Annotated[str, typer.Argument(help="CSV or JSON-lines file; - reads standard input.")],
    credentials_out: Annotated[
        Path,
        typer.Option("--credentials-out", help="Where to write each device's secret (shown once)."),
    ],
    group: Annotated[
        str | None,
        typer.Option(
            "--group", help="Claim every device without a group/owner column for this group."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model of every device without a model column.")
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Profile of every device without a profile column: how people "
            "claim it (its claim proof, window and release policy).",
        ),
    ] = None,
    skip_existing: Annotated[
        bool,
        typer.Option(
            "--skip-existing", help="Skip serials already registered (makes reruns idempotent)."
        ),
    ] = False,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or jsonl (default: from the file name).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing credentials file.")
    ] = False,
) -> None:
    """Register devices in bulk from a spreadsheet: all of them, or none when anything is wrong."""
    try:
        import_format = ImportFormat.parse(fmt) if fmt else ImportFormat.guess(file)
        stream, size = _open_input(file)
        sink = CredentialsFile(credentials_out, overwrite=overwrite)
    except InvalidInput as err:
        fail(common, err)
    show_progress = not common.json and output.stderr.is_terminal
    kept: list[str] = []  # how the secrets are kept, in this configuration
    started = time.perf_counter()
    try:
        with _progress(show_progress, size) as advance:
            source = io.BufferedReader(_Counting(stream, advance), 1 << 20)
            lorawan = import_format is ImportFormat.CSV and peek_is_lorawan(
                source.peek(65536).splitlines()[:1]
            )

            async def work(c: Container) -> Any:
                if lorawan:  # Blynk-style static tokens: Device EUI, Join EUI, AppKey
                    kept.append(how_secrets_are_kept(c.sealer, hashed=False))
                    return await register_lorawan(
                        c.uow(),
                        stream=source,
                        sealer=c.sealer,
                        sink=sink,
                        actor=actor(),
                        now=c.now(),
                        group=group,
                        model=model,
                        profile=profile,
                        source=Path(file).name if file != "-" else "stdin",
                    )
                options = ImportOptions(
                    group=group,
                    model=model,
                    profile=profile,
                    skip_existing=skip_existing,
                    default_claim_proof=c.settings.claims.proof,
                    claim_code_length=c.settings.claims.code_length,
                    source=Path(file).name if file != "-" else "stdin",
                    batch_size=c.settings.import_batch_size,
                    max_problems=c.settings.import_max_problems,
                    broker_sealer=c.broker_sealer,
                )
                kept.append(how_secrets_are_kept(c.broker_sealer))
                return await register_devices(
                    c.uow(),
                    scope=OPERATOR,
                    items=read_import(source, import_format),
                    options=options,
                    sink=sink,
                    actor=actor(),
                    now=c.now(),
                )

            result = run(common, work)
    except BaseException:
        sink.discard()
        raise
    finally:
        stream.close()
    _report_import(common, result, credentials_out, time.perf_counter() - started, kept[-1])


class _NoProgress:
    def __enter__(self) -> Any:
        return lambda _n: None

    def __exit__(self, *exc: object) -> None:
        return None


class _Bar:
    def __init__(self, total: int | None) -> None:
        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TimeRemainingColumn(),
            console=output.stderr,
            transient=True,
        )
        self.task = self.progress.add_task("importing", total=total)

    def __enter__(self) -> Any:
        self.progress.start()
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _progress(enabled: bool, total: int | None) -> Any:
    return _Bar(total) if enabled else _NoProgress()


def _report_import(common: Common, result: Any, creds: Path, seconds: float, kept: str) -> None:
    if common.json:
        output.print_json(
            {
                "imported": result.imported,
                "claimed": result.claimed,
                "skipped": result.skipped,
                "event_id": result.event_id,
                "credentials_file": str(creds),
                "seconds": round(seconds, 3),
            }
        )
        return
    output.success(
        f"imported {result.imported:,} devices ({result.claimed:,} claimed, "
        f"{result.skipped:,} skipped) in {seconds:.1f} s"
    )
    output.success(f"credentials: {creds} — keep it safe: {kept}, and cannot be shown again")


@app.command("list")
@common_options()
def list_(
    common: Common,
    group: GroupFilter = None,
    state: StateFilter = None,
    model: ModelFilter = None,
    tag: TagFilter = None,
    serial_prefix: Annotated[str | None, typer.Option("--serial-prefix")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Devices per page (1-500).")] = 50,
    cursor: Annotated[str | None, typer.Option("--cursor", help="Continue after a page.")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Every page, not just one.")] = False,
) -> None:
    """List devices in serial order, filtered by group subtree, state, model and tags."""
    tags = parse_tag_options(tag)

    async def work(c: Container) -> tuple[list[Any], str | None]:
        return await collect_pages(
            lambda after: device_service.list_devices(
                c.uow(),
                scope=OPERATOR,
                group=group,
                state=state,
                model=model,
                tags=tags,
                serial_prefix=serial_prefix,
                cursor=after,
                limit=limit,
            ),
            cursor,
            all_pages,
        )

    devices, next_cursor = run(common, work)
    if common.json:
        output.print_json(
            {"items": [device_fields(d) for d in devices], "next_cursor": next_cursor}
        )
        return
    output.table(
        ["serial", "name", "model", "state", "owner", "group", "tags"],
        [
            (
                d.serial,
                d.name,
                d.model,
                d.state,
                d.owner_email or "",
                d.group_path,
                " ".join(f"{k}={v}" for k, v in d.tags.items()),
            )
            for d in devices
        ],
    )
    if next_cursor:
        output.success(f"more: --cursor {next_cursor}   (or --all)")


@app.command("show")
@common_options()
def show(
    common: Common,
    serial: Annotated[str, typer.Argument(help="The device's serial (normalised).")],
) -> None:
    """One device: fields, tags, credentials (never their secrets) and its timeline."""

    async def work(c: Container) -> tuple[Any, Any, Any, str, Any]:
        device, creds, events = await device_service.get_device_detail(
            c.uow(), scope=OPERATOR, serial=serial
        )
        network = await tts_registration(c.uow(), device.id)
        return (
            device,
            creds,
            events,
            topic_prefix(c.settings.broker.topic_prefix, device.id),
            network,
        )

    device, creds, events, prefix, network = run(common, work)
    tts = (
        {
            k: network[k]
            for k in (
                "application_id",
                "end_device_id",
                "dev_eui",
                "status",
                "origin",
                "error",
                "foreign_end_device",
            )
        }
        if network
        else None
    )
    if common.json:
        out = device_fields(device)
        out["topic_prefix"] = prefix
        out["the_things_stack"] = tts
        out["credentials"] = [output.credential_dict(cr) for cr in creds]
        out["events"] = [output.event_dict(e) for e in events]
        output.print_json(out)
        return
    d = device_fields(device)
    output.table(
        ["field", "value"],
        [(k, v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items() if k != "tags"],
        title=f"device {device.serial}",
    )
    if device.tags:
        output.table(["tag", "value"], sorted(device.tags.items()))
    if tts:
        output.table(["The Things Stack", ""], [(k, str(v or "")) for k, v in tts.items()])
    output.table(
        ["credential", "created", "revoked"],
        [
            (cr.type, output.short_time(cr.created_at), output.short_time(cr.revoked_at))
            for cr in creds
        ],
    )
    output.table(
        ["when", "event", "by"],
        [(output.short_time(e.at), e.type, e.actor) for e in events],
        title="timeline",
    )


@app.command("create")
@common_options()
def create(
    common: Common,
    serial: Annotated[str, typer.Argument(help="The serial printed on the device.")],
    name: Annotated[str | None, typer.Option("--name")] = None,
    model: Annotated[str | None, typer.Option("--model")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Claim it for this group.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Claim it for this user.")] = None,
    tag: TagFilter = None,
) -> None:
    """Register one device and print its access token (shown once)."""
    tags = parse_tag_options(tag)
    kept: list[str] = []

    async def work(c: Container) -> Any:
        kept.append(how_secrets_are_kept(c.broker_sealer, one=True))
        return await device_service.create_device(
            c.uow(),
            scope=OPERATOR,
            spec=DeviceSpec(serial, name, model, group, owner, tags),
            actor=actor(),
            now=c.now(),
            sealer=c.broker_sealer,
        )

    device, issued = run(common, work)
    if common.json:
        out = device_fields(device)
        out["credential"] = {"type": issued.credential.type.value, "secret": issued.secret}
        output.print_json(out)
        return
    output.success(f"registered {device.serial} ({device.state})")
    output.stdout.print(f"access token: {issued.secret}", markup=False, highlight=False)
    output.success(f"shown once: {kept[-1]}")


@app.command("rotate")
@common_options()
def rotate(
    common: Common,
    serial: Annotated[str, typer.Argument()],
    kind: Annotated[
        str | None,
        typer.Option(
            "--type", help="access-token or mqtt-basic (default: the kind the device has)."
        ),
    ] = None,
) -> None:
    """Issue the device a new credential and revoke the one it replaces (shown once)."""
    try:
        ctype = CredentialType(kind) if kind else None
    except ValueError:
        fail(
            common,
            InvalidInput(
                f"--type: {kind!r} is not access-token or mqtt-basic",
                problems=[Problem("access-token or mqtt-basic", "--type")],
            ),
        )
    kept: list[str] = []

    async def work(c: Container) -> Any:
        kept.append(how_secrets_are_kept(c.broker_sealer, one=True))
        return await rotate_credentials(
            c.uow(),
            scope=OPERATOR,
            serial=serial,
            kind=ctype,
            actor=actor(),
            now=c.now(),
            sealer=c.broker_sealer,
        )

    done = run(common, work)
    if common.json:
        output.print_json({"serial": done.serial, **done.as_dict()})
        return
    output.success(f"{done.serial}: new {done.credential.type} credential; the old one is revoked")
    for key, value in done.as_dict().items():
        if key not in ("type", "credential_id"):
            output.stdout.print(f"{key}: {value}", markup=False, highlight=False)
    output.success(f"shown once: {kept[-1]}")


@app.command("revoke")
@common_options()
def revoke(
    common: Common,
    serial: Annotated[str, typer.Argument()],
) -> None:
    """Revoke every credential the device connects with (its broker accounts go too)."""
    revoked = run(
        common,
        lambda c: revoke_credentials(
            c.uow(), scope=OPERATOR, serial=serial, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(
            {"serial": serial, "revoked": [output.credential_dict(cr) for cr in revoked]}
        )
        return
    output.success(
        f"revoked {len(revoked)} credential(s)" if revoked else "no active credential to revoke"
    )


@app.command("delete")
@common_options()
def delete(
    common: Common,
    serial: Annotated[str, typer.Argument()],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a device and its credentials. Its history stays in the audit log."""
    if not yes and not typer.confirm(f"delete device {serial} and its credentials?"):
        raise typer.Exit(1)
    device = run(
        common,
        lambda c: device_service.delete_device(
            c.uow(), scope=OPERATOR, serial=serial, actor=actor(), now=c.now()
        ),
    )
    if common.json:
        output.print_json(device_fields(device))
    else:
        output.success(f"deleted {device.serial}")


@app.command("export")
@common_options(json=False)
def export(
    common: Common,
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default: stdout).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv (re-importable) or jsonl.")] = "csv",
    group: GroupFilter = None,
    state: StateFilter = None,
    model: ModelFilter = None,
    tag: TagFilter = None,
) -> None:
    """Write devices (never secrets) as CSV in the import format, or as JSON lines."""
    tags = parse_tag_options(tag)
    try:
        export_format = ImportFormat.parse(fmt)
    except InvalidInput as err:
        fail(common, err)
    target = out.open("w", newline="", encoding="utf-8") if out else sys.stdout

    async def work(c: Container) -> int:
        keys = await device_service.list_tag_keys(c.uow())
        writer = _ExportWriter(target, export_format, keys)
        cursor: str | None = None
        count = 0
        while True:
            page = await device_service.list_devices(
                c.uow(),
                scope=OPERATOR,
                group=group,
                state=state,
                model=model,
                tags=tags,
                cursor=cursor,
                limit=500,
            )
            for device in page.items:
                writer.write(device)
            count += len(page.items)
            if page.next_cursor is None:
                return count
            cursor = page.next_cursor

    try:
        count = run(common, work)
    finally:
        if out:
            target.close()
    if out:
        output.success(f"exported {count:,} devices to {out}")


class _ExportWriter:
    def __init__(self, target: IO[str], fmt: ImportFormat, tag_keys: list[str]) -> None:
        self.target = target
        self.fmt = fmt
        self.keys = tag_keys
        if fmt is ImportFormat.CSV:
            target.write(csv_line(["serial", "name", "model", "group", "owner", *tag_keys]))

    def write(self, device: Any) -> None:
        if self.fmt is ImportFormat.JSONL:
            self.target.write(orjson.dumps(device_fields(device)).decode() + "\n")
            return
        owner = device.owner_email or ""
        group = device.group_path if not owner and device.group_path else ""
        self.target.write(
            csv_line(
                [
                    device.serial,
                    device.name,
                    device.model or "",
                    group,
                    owner,
                    *(device.tags.get(k, "") for k in self.keys),
                ]
            )
        )
