"""The operator's command line: `provisiond …`. Parses, calls one use case, renders."""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from provisiond import __version__
from provisiond.bootstrap import (
    Container,
    check_database,
    check_serving,
    configure_process_logging,
    create_app,
    database_revision,
    downgrade_database,
    http_server_options,
    server_log_config,
    upgrade_database,
)
from provisiond.cli import output
from provisiond.cli import people as _people  # noqa: F401 (adds users invite … and groups move …)
from provisiond.cli.backup import backup as backup_command
from provisiond.cli.backup import restore as restore_command
from provisiond.cli.broker import app as broker_app
from provisiond.cli.cas import app as ca_app
from provisiond.cli.codes import app as codes_app
from provisiond.cli.common import (
    Common,
    actor,
    common_options,
    guard,
    run,
)
from provisiond.cli.devices import app as devices_app
from provisiond.cli.directory import groups, models, tokens, users
from provisiond.cli.dps import app as dps_app
from provisiond.cli.events import app as events_app
from provisiond.cli.labels import labels as labels_command
from provisiond.cli.lorawan import app as lorawan_app
from provisiond.cli.profiles import app as profiles_app
from provisiond.cli.webhooks import app as webhooks_app
from provisiond.cli.wifi import app as wifi_app
from provisiond.protocols.csv_cells import csv_lines
from provisiond.services import demo, profiles, summaries
from provisiond.services.registration import CREDENTIALS_LINE_END
from provisiond.settings import LogFormat, Settings

app = typer.Typer(
    name="provisiond",
    help="provisiond: register devices, let people claim them, put them on the network.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db = typer.Typer(help="The database schema (migrations).", no_args_is_help=True)
config_app = typer.Typer(help="The effective settings.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
app.add_typer(groups, name="groups")
app.add_typer(users, name="users")
app.add_typer(models, name="models")
app.add_typer(tokens, name="tokens")
app.add_typer(profiles_app, name="profiles")
app.add_typer(ca_app, name="ca")
app.add_typer(codes_app, name="codes")
app.add_typer(broker_app, name="broker")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(events_app, name="events")
app.add_typer(lorawan_app, name="lorawan")
app.add_typer(dps_app, name="dps")
app.add_typer(wifi_app, name="wifi")
app.command("labels")(labels_command)
app.command("backup")(backup_command)
app.command("restore")(restore_command)
app.add_typer(db, name="db")
app.add_typer(config_app, name="config")


def _version(value: bool) -> None:
    if value:
        output.stdout.print(f"provisiond {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """provisiond: register devices, let people claim them, put them on the network."""


HostOpt = Annotated[
    str | None,
    typer.Option("--host", envvar="PROVISIOND_HOST", help="Address to bind (default 127.0.0.1)."),
]
PortOpt = Annotated[
    int | None, typer.Option("--port", envvar="PROVISIOND_PORT", help="HTTP port (default 8000).")
]


def _serve(common: Common, settings: Settings) -> None:
    import uvicorn

    application = guard(common, lambda: create_app(settings))
    extra = (
        f", MQTT provisioning on {settings.host}:{settings.provisioning.mqtt_port}"
        if settings.provisioning.mqtt_enabled
        else ""
    )
    extra += (
        f", CoAP on coap://{settings.host}:{settings.provisioning.coap_port}"
        if settings.provisioning.coap_port is not None
        else ""
    )
    if settings.provisioning.device_tls_port is not None:
        extra += (
            f", the mutual-TLS device API on https://{settings.host}:"
            f"{settings.provisioning.device_tls_port}"
        )
    for what, dps_port in (
        ("DPS (MQTT)", settings.dps.mqtt_port),
        ("DPS (HTTPS)", settings.dps.https_port),
    ):
        if dps_port is not None:
            extra += f", Azure {what} on {settings.host}:{dps_port}"
    if settings.aws.port is not None:
        extra += f", AWS IoT fleet provisioning on {settings.host}:{settings.aws.port} (mTLS)"
    if settings.metrics.port is not None:
        extra += f", metrics on http://{settings.metrics.host or settings.host}"
        extra += f":{settings.metrics.port}/metrics"
    banner = (
        f"provisiond {__version__} on http://{settings.host}:{settings.port}{extra} "
        f"(database {settings.masked()['database_url']})"
    )
    if settings.log_format is LogFormat.JSON:  # every line of the log is JSON
        logging.getLogger("provisiond").info(banner)
    else:
        output.success(banner)
    # Everything imported so far lives as long as the process: frozen, the collector's full
    # passes skip it. Unfrozen, each scanned it all, stopping every request for 20-100 ms.
    gc.collect()
    gc.freeze()
    # proxy_headers off: the app finds the client behind `trusted_proxies` itself
    # (web/client_address.py); uvicorn's own rule trusted any X-Forwarded-For from 127.0.0.1
    uvicorn.run(
        application,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_config=server_log_config(settings),
        **http_server_options(settings),
    )


@app.command()
@common_options(json=False)
def serve(
    common: Common,
    host: HostOpt = None,
    port: PortOpt = None,
    log_level: Annotated[str | None, typer.Option("--log-level")] = None,
    migrate: Annotated[
        bool, typer.Option("--migrate", help="Upgrade the database schema first.")
    ] = False,
    mqtt_port: Annotated[
        int | None,
        typer.Option(
            "--mqtt-port",
            envvar="PROVISIOND_PROVISIONING__MQTT_PORT",
            help="TCP port of the MQTT provisioning listener (default 1884).",
        ),
    ] = None,
    mqtt: Annotated[
        bool | None,
        typer.Option(
            "--mqtt/--no-mqtt", help="Serve the MQTT provisioning listener (default: yes)."
        ),
    ] = None,
    coap_port: Annotated[
        int | None,
        typer.Option(
            "--coap-port",
            envvar="PROVISIOND_PROVISIONING__COAP_PORT",
            help="Also serve the CoAP device API on this UDP port (CoAP's is 5683).",
        ),
    ] = None,
    device_tls_port: Annotated[
        int | None,
        typer.Option(
            "--device-tls-port",
            envvar="PROVISIOND_PROVISIONING__DEVICE_TLS_PORT",
            help="Serve the mutual-TLS device API (HTTPS POST /api/v1/provision, devices "
            "attested by their client certificate) on this TCP port (provisioning__mqtt_tls_cert "
            "and provisioning__mqtt_tls_key).",
        ),
    ] = None,
    dps_port: Annotated[
        int | None,
        typer.Option(
            "--dps-port",
            envvar="PROVISIOND_DPS__MQTT_PORT",
            help="Serve Azure DPS over MQTT and TLS on this port (Azure's is 8883; "
            "dps__id_scope, dps__tls_cert and dps__tls_key).",
        ),
    ] = None,
    dps_https_port: Annotated[
        int | None,
        typer.Option(
            "--dps-https-port",
            envvar="PROVISIOND_DPS__HTTPS_PORT",
            help="Serve Azure DPS's HTTPS REST API on this port (Azure's is 443).",
        ),
    ] = None,
    aws_port: Annotated[
        int | None,
        typer.Option(
            "--aws-port",
            envvar="PROVISIOND_AWS__PORT",
            help="Serve AWS IoT fleet provisioning (MQTT over mutual TLS) on this TCP port "
            "(AWS's is 8883; needs aws__tls_cert and aws__tls_key).",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            envvar="PROVISIOND_METRICS__PORT",
            help="Serve /metrics on this port only, not on the HTTP port (metrics__port).",
        ),
    ] = None,
) -> None:
    """Serve the REST API, the device API, health and metrics (HTTP; CoAP when asked)."""
    settings = guard(
        common,
        lambda: common.settings(
            host=host,
            port=port,
            log_level=log_level,
            provisioning__coap_port=coap_port,
            provisioning__mqtt_port=mqtt_port,
            provisioning__mqtt_enabled=mqtt,
            provisioning__device_tls_port=device_tls_port,
            aws__port=aws_port,
            metrics__port=metrics_port,
            dps__mqtt_port=dps_port,
            dps__https_port=dps_https_port,
        ),
    )
    configure_process_logging(settings)  # before anything logs (the migration does)
    guard(common, lambda: check_serving(settings))
    guard(common, lambda: (upgrade_database if migrate else check_database)(settings))
    _serve(common, settings)


@app.command("demo")
@common_options(json=False)
def demo_command(
    common: Common,
    host: HostOpt = None,
    port: PortOpt = None,
    no_serve: Annotated[bool, typer.Option("--no-serve", help="Seed only, do not serve.")] = False,
) -> None:
    """Set up the database with a small demo organisation, then serve it."""
    settings = guard(common, lambda: common.settings(host=host, port=port))
    if not no_serve:
        configure_process_logging(settings)
        guard(common, lambda: check_serving(settings))
    guard(common, lambda: upgrade_database(settings))

    async def work(c: Container) -> demo.DemoSeed | None:
        if not await demo.is_empty(c.uow()):
            return None
        return await demo.seed_demo(c.uow, actor=actor(), now=c.now())

    seed = run(common, work)
    if seed is None:
        output.success("the database already has data: serving it as it is")
    else:
        _print_seed(seed, settings.data_dir, f"http://{settings.host}:{settings.port}")
    if not no_serve:
        _serve(common, settings)


def _print_seed(seed: demo.DemoSeed, data_dir: Path, base_url: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    creds = data_dir / "demo-credentials.csv"
    fd = os.open(creds, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", newline="") as f:
        f.write(csv_lines([("serial", "secret"), *seed.credentials], CREDENTIALS_LINE_END))
    output.table(
        ["who", "secret (shown once)"],
        [("API token 'demo'", seed.token), *((email, pw) for email, pw in seed.passwords.items())],
        title="demo organisation Kanarra: 4 sites, 3 users, 24 devices",
    )
    output.success(f"device access tokens: {creds}")
    output.success(f"try:  curl -H 'Authorization: Bearer <token>' {base_url}/api/v1/devices")
    output.success(
        f"claim: open {base_url}/provision on a phone or browser, sign in as "
        "tech@sadler-isberg.example and enter KAN-GW-0011 (claimed at once) or "
        "KAN-GW-0001 (then press its button: curl -X POST "
        f"{base_url}/api/v1/<its access token>/claim/button)"
    )


# ----------------------------------------------------------------------------- db


@db.command("upgrade")
@common_options(json=False)
def db_upgrade(
    common: Common,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Create or upgrade the schema (safe to run again)."""
    settings = guard(common, common.settings)
    guard(common, lambda: upgrade_database(settings, revision))
    current, head = guard(common, lambda: database_revision(settings))
    if current == head and settings.device_key_passphrase is not None:
        sealed = run(common, lambda c: profiles.seal_registration_keys(c.uow(), c.sealer))
        if sealed:
            output.success(
                f"sealed the registration keys of {sealed} profile(s) with device_key_passphrase"
            )
    output.success(f"database at revision {current}: {settings.masked()['database_url']}")


@db.command("downgrade")
@common_options(json=False)
def db_downgrade(
    common: Common,
    revision: Annotated[str, typer.Argument(help="Target revision ('base' drops everything).")],
    yes: Annotated[bool, typer.Option("--yes", "-y")] = False,
) -> None:
    """Downgrade the schema. Data of dropped tables is lost."""
    if not yes and not typer.confirm(f"downgrade to {revision}? data may be lost"):
        raise typer.Exit(1)
    settings = guard(common, common.settings)
    guard(common, lambda: downgrade_database(settings, revision))
    output.success(f"database downgraded to {revision}")


@db.command("current")
@common_options()
def db_current(common: Common) -> None:
    """The schema revision of the database, and the one this provisiond needs."""
    current, head = guard(common, lambda: database_revision(common.settings()))
    if common.json:
        output.print_json({"current": current, "head": head, "up_to_date": current == head})
    else:
        output.stdout.print(
            f"current: {current or 'none'}  head: {head}"
            + ("" if current == head else "  (run `provisiond db upgrade`)")
        )


@db.command("compact")
@common_options()
def db_compact(common: Common) -> None:
    """Fold the overview's per-connection summary rows into one row per day and key
    (PostgreSQL; `serve` does it every minute; safe while provisiond runs)."""

    async def compact(c: Container) -> tuple[int, int]:
        folded = await summaries.compact_summaries(c.uow)
        return folded, await summaries.summary_spread(c.uow())

    folded, left = run(common, compact)
    if common.json:
        output.print_json({"folded": folded, "left": left})
    else:
        output.success(
            f"folded {folded} summary row(s)"
            + (f"; {left} held by writers wait for the next run" if left else "")
        )


# ----------------------------------------------------------------------------- config


@config_app.command("show")
@common_options()
def config_show(common: Common) -> None:
    """Print the effective settings, secrets masked."""
    masked = guard(common, lambda: common.settings().masked())
    if common.json:
        output.print_json(masked)
    else:
        output.table(["setting", "value"], sorted(_setting_rows(masked)))


def _setting_rows(masked: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """One row per setting: a group's (``claims``, ``broker`` …) as ``claims.window_seconds``,
    the names of its ``[claims]`` table in the configuration file."""
    rows: list[tuple[str, Any]] = []
    for name, value in masked.items():
        if isinstance(value, dict):
            rows.extend(_setting_rows(value, f"{prefix}{name}."))
        else:
            rows.append((f"{prefix}{name}", value))
    return rows


def main() -> None:
    app()
