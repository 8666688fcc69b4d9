"""`provisiond labels`: printable labels, one per device."""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import MofNCompleteColumn, Progress, SpinnerColumn, TimeElapsedColumn

from provisiond.cli import output
from provisiond.cli.common import (
    OPERATOR,
    Common,
    common_options,
    fail,
    parse_tag_options,
    run,
)
from provisiond.errors import InvalidInput, Problem, ProvisiondError
from provisiond.services import devices as device_service
from provisiond.services import labels as service


@common_options()
def labels(
    common: Common,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="labels.pdf; or label.svg / label.png for one device (--serial).",
            dir_okay=False,
        ),
    ],
    group: Annotated[str | None, typer.Option("--group", help="Only this group's subtree.")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="registered, claimed, released.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Only devices of this model.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", help="KEY=VALUE; repeat to require several.")
    ] = None,
    serial_prefix: Annotated[
        str | None, typer.Option("--serial-prefix", help="Only serials starting with this.")
    ] = None,
    serial: Annotated[
        str | None, typer.Option("--serial", help="One device (for an SVG or PNG label).")
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="What the QR carries: url (the device's provisiond URL), serial, "
            "lorawan (TR005; the serial is the DevEUI), esp (ESP provisioning "
            "QR) or matter (Matter setup payload); esp and matter need "
            "--secrets.",
        ),
    ] = "url",
    sheet: Annotated[
        str, typer.Option("--sheet", help="a4-3x8, letter-3x10 or single-62mm.")
    ] = "a4-3x8",
    codes: Annotated[
        Path | None,
        typer.Option(
            "--codes",
            help="An import's credentials file: print each device's claim code.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    secrets: Annotated[
        Path | None,
        typer.Option(
            "--secrets",
            help="esp, matter: the manufacturing file (CSV) with each device's "
            "secret, which provisiond does not store. esp: serial, pop "
            "[, name, transport, username]; matter: serial, passcode, discriminator, "
            "vendor_id, product_id [, flow, discovery].",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    join_eui: Annotated[
        str, typer.Option("--join-eui", help="lorawan: the JoinEUI.")
    ] = "0000000000000000",
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url", help="url: this service's address (default: the public_url setting)."
        ),
    ] = None,
) -> None:
    """Print labels: the QR code, the serial, the model and the claim code of each device."""
    code_format = fmt.strip().lower()
    try:
        tags = parse_tag_options(tag)
        claim_codes = service.read_claim_codes(codes) if codes else None
        device_codes = service.read_device_secrets(secrets, code_format) if secrets else None
        settings = common.settings()
    except ProvisiondError as err:  # bad input, or bad settings
        fail(common, err)
    options = service.LabelOptions(
        sheet=sheet,
        code_format=code_format,
        public_url=(base_url or settings.public_url),
        join_eui=join_eui,
        claim_codes=claim_codes,
        device_codes=device_codes,
    )
    suffix = out.suffix.lower()
    if suffix in (".svg", ".png"):
        if serial is None:
            problem = Problem(
                "an SVG or PNG label is for one device: give --serial", field="--serial"
            )
            fail(common, InvalidInput(str(problem), problems=[problem]))
        device = run(
            common, lambda c: device_service.get_device(c.uow(), scope=OPERATOR, serial=serial)
        )
        run(common, lambda _c: _single(device, options, out))
        _report(common, 1, out)
        return
    if suffix != ".pdf":
        problem = Problem("write labels to a .pdf (or one label to .svg or .png)", field="--out")
        fail(common, InvalidInput(str(problem), problems=[problem]))
    prefix = serial_prefix if serial is None else serial
    show = not common.json and output.stderr.is_terminal
    directory = out.resolve().parent
    if not directory.is_dir():
        problem = Problem(f"directory {directory} does not exist", field="--out")
        fail(common, InvalidInput(str(problem), problems=[problem]))
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f, _Progress(show) as advance, _encoders() as executor:
            count = run(
                common,
                lambda c: service.write_labels(
                    c.uow,
                    f,
                    options,
                    scope=OPERATOR,
                    group=group,
                    state=state,
                    model=model,
                    tags=tags,
                    serial_prefix=prefix,
                    progress=advance,
                    executor=executor,
                ),
            )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _report(common, count, out)


@contextmanager
def _encoders() -> Iterator[Executor | None]:
    """Worker processes that encode QR codes while this one draws. They are forked now,
    before the database connection's thread exists (forking a threaded process is unsafe);
    without fork (or with one core) the codes are encoded here."""
    workers = min(4, os.cpu_count() or 1)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield None
        return
    executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    try:
        executor.submit(int).result()  # start the workers now
        yield executor
    finally:
        executor.shutdown(cancel_futures=True)


async def _single(device: Any, options: service.LabelOptions, out: Path) -> None:
    service.check_options(options)
    service.single_label_image(device, options, out)


def _report(common: Common, count: int, out: Path) -> None:
    if common.json:
        output.print_json({"labels": count, "file": str(out)})
    else:
        output.success(f"{count:,} labels written to {out}")


class _Progress:
    def __init__(self, enabled: bool) -> None:
        self.progress = (
            Progress(
                SpinnerColumn(),
                "[progress.description]{task.description}",
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=output.stderr,
                transient=True,
            )
            if enabled
            else None
        )
        self.task = self.progress.add_task("labels", total=None) if self.progress else None

    def __enter__(self) -> Any:
        if self.progress is None or self.task is None:
            return None
        self.progress.start()
        progress, task = self.progress, self.task
        return lambda n: progress.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
