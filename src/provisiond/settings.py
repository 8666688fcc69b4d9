"""The one settings object, and the only module that reads the environment.

Precedence, highest first: command-line flags (passed as keyword arguments), environment
variables (``PROVISIOND_*``, nested with ``__``), the TOML config file named by
``PROVISIOND_CONFIG_FILE`` (or ``--config``), then the defaults below. Every field is listed
in docs/configuration.md; a test keeps the two in step. Settings of one concern are grouped
(``claims``, ``sessions``, ``limits`` …: ``PROVISIOND_CLAIMS__WINDOW_SECONDS``, a ``[claims]``
table); the flat names they had before still work (``RENAMED``).
"""

from __future__ import annotations

import json
import logging
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, get_origin
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from provisiond.domain.broker import check_namespace, check_prefix_template
from provisiond.domain.claims import (
    CLAIM_WINDOW_MAX,
    CLAIM_WINDOW_MIN,
    CODE_LENGTH,
    ClaimProof,
)
from provisiond.domain.destinations import AllowList
from provisiond.domain.tts import NetworkSettings, parse_network_settings
from provisiond.errors import ConfigurationError, InvalidInput

CONFIG_FILE_ENV = "PROVISIOND_CONFIG_FILE"
logger = logging.getLogger(__name__)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class SqliteSynchronous(StrEnum):
    FULL = "FULL"
    NORMAL = "NORMAL"


class BrokerKind(StrEnum):
    NONE = "none"
    MOSQUITTO_DYNSEC = "mosquitto-dynsec"
    MOSQUITTO_FILES = "mosquitto-files"
    EMQX = "emqx"


class BrokerSettings(BaseModel):
    """The user's MQTT broker, whose device accounts provisiond keeps in step
    (``PROVISIOND_BROKER__KIND``, ``PROVISIOND_BROKER__URL`` …; ``[broker]`` in the file)."""

    model_config = ConfigDict(extra="forbid")

    kind: BrokerKind = Field(
        BrokerKind.NONE,
        description="`none`; `mosquitto-dynsec`: provisiond manages device accounts through "
        "Mosquitto's dynamic security plugin; `mosquitto-files`: provisiond "
        "writes device accounts into Mosquitto's password and ACL files and "
        "has it reload them; `emqx`: EMQX asks provisiond "
        "(`/hooks/emqx/authn`, `/hooks/emqx/authz`).",
    )
    url: SecretStr | None = Field(
        None,
        description="`mqtt://USER:PASSWORD@HOST:PORT` (or `mqtts://`) of the broker's "
        "administrative client (mosquitto-dynsec).",
    )
    topic_prefix: str = Field(
        "devices/{device_id}",
        description="The topic prefix a device may publish and subscribe under (`/#` is "
        "added); `{device_id}` is the device's id.",
    )
    namespace: str = Field(
        "",
        description="The registry's own part of a broker several provisiond registries "
        "share: its accounts, roles and file lines are marked with it, and it creates, "
        "syncs and deletes only those. Empty: the names of provisiond before namespaces.",
    )
    tls_ca_file: Path | None = Field(
        None, description="CA certificates to verify an `mqtts://` broker (default: the system's)."
    )
    tls_cert_file: Path | None = Field(
        None, description="Client certificate for an `mqtts://` broker that asks for one."
    )
    tls_key_file: Path | None = Field(None, description="Private key of tls_cert_file.")
    timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="How long one call to the broker may take."
    )
    sync_interval_seconds: float = Field(
        3600.0,
        ge=0,
        description="How often `serve` reconciles the broker with the registry "
        "(as `provisiond broker sync` does); 0: never.",
    )
    password_file: Path | None = Field(
        None,
        description="mosquitto-files: Mosquitto's `password_file`; provisiond writes "
        "the part after its marker line.",
    )
    acl_file: Path | None = Field(
        None,
        description="mosquitto-files: Mosquitto's `acl_file`; provisiond writes the "
        "part after its marker line.",
    )
    pid_file: Path | None = Field(
        None,
        description="Mosquitto's `pid_file`: the process provisiond sends SIGHUP to "
        "after writing its password and ACL files (mosquitto-files) or a "
        "CRL (`crl_dir`), so that it reads them again.",
    )
    reload_command: str | None = Field(
        None,
        description="A command that makes Mosquitto read its files again (e.g. "
        "`systemctl reload mosquitto`), instead of pid_file.",
    )
    reload_interval_seconds: float = Field(
        1.0,
        ge=0,
        le=3600,
        description="mosquitto-files: the least time between two writes "
        "of the files (and reloads of Mosquitto).",
    )
    hook_secret: SecretStr | None = Field(
        None,
        description="emqx: the bearer token EMQX sends to the hooks "
        "(`Authorization: Bearer …`); none: the hooks accept only loopback.",
    )
    token_as_username: bool = Field(
        False,
        description="ThingsBoard's convention, for firmware that can send nothing "
        "else: an access token is the MQTT user name (and the password). "
        "Default: the user name is the token's public half (the part "
        "before the dot; the serial for a token the device chose) and "
        "the token only the password.",
    )
    session_max_seconds: int = Field(
        86400,
        ge=60,
        le=30 * 86400,
        description="emqx: how long a device's session may last before it must "
        "authenticate again (the authentication answer's `expire_at`).",
    )
    emqx_api_url: str | None = Field(
        None,
        description="emqx: EMQX's REST API (e.g. `http://emqx:18083`), through which "
        "provisiond ends the sessions of revoked, rotated and deleted "
        "devices' credentials; none: sessions end at `expire_at`.",
    )
    emqx_api_key: str | None = Field(None, description="emqx: the API key for emqx_api_url.")
    emqx_api_secret: SecretStr | None = Field(None, description="emqx: the API key's secret key.")

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_prefix_template(value)

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return check_namespace(value)

    @field_validator("emqx_api_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")) or "@" in value:
            raise ValueError(
                "must look like http://HOST:18083 or https://…, without "
                "credentials (those are emqx_api_key and emqx_api_secret)"
            )
        return value.rstrip("/")

    @model_validator(mode="after")
    def _emqx_api(self) -> BrokerSettings:
        given = [self.emqx_api_url, self.emqx_api_key, self.emqx_api_secret]
        if any(v is not None for v in given):
            if self.kind is not BrokerKind.EMQX:
                raise ValueError(
                    "broker__emqx_api_url, broker__emqx_api_key and "
                    "broker__emqx_api_secret are for broker__kind=emqx"
                )
            if not all(v is not None for v in given):
                raise ValueError(
                    "broker__emqx_api_url needs broker__emqx_api_key and "
                    "broker__emqx_api_secret (an API key of EMQX's)"
                )
        return self

    @property
    def emqx_api(self) -> bool:
        """Whether provisiond ends EMQX sessions through its REST API."""
        return self.kind is BrokerKind.EMQX and self.emqx_api_url is not None

    @property
    def password_url(self) -> str | None:
        return self.url.get_secret_value() if self.url is not None else None


class TtsSettings(BaseModel):
    """The Things Stack, where claimed LoRaWAN devices are registered
    (``PROVISIOND_TTS__URL``, ``PROVISIOND_TTS__API_KEY`` …; ``[tts]`` in the file)."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(
        None,
        description="Base URL of The Things Stack, e.g. "
        "`https://eu1.cloud.thethings.network`; none: not used.",
    )
    api_key: SecretStr | None = Field(
        None,
        description="An API key of the application(s) with the rights to view and "
        "edit devices and their keys.",
    )
    application_id: str | None = Field(
        None,
        description="The application devices are registered in, unless their "
        "profile names another.",
    )
    network_server_address: str | None = Field(
        None, description="Host of the Network Server (default: the URL's host)."
    )
    application_server_address: str | None = Field(
        None, description="Host of the Application Server (default: the URL's host)."
    )
    join_server_address: str | None = Field(
        None, description="Host of the Join Server (default: the URL's host)."
    )
    frequency_plan_id: str | None = Field(
        None, description="Frequency plan, e.g. `EU_863_870_TTN`, unless the profile says."
    )
    lorawan_version: str = Field("MAC_V1_0_3", description="LoRaWAN MAC version.")
    lorawan_phy_version: str = Field(
        "RP001_V1_0_3_REV_A", description="Regional parameters version."
    )
    supports_class_b: bool = Field(False, description="Devices support class B.")
    supports_class_c: bool = Field(False, description="Devices support class C.")
    timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="How long one API call may take."
    )

    @model_validator(mode="after")
    def _checked(self) -> TtsSettings:
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("tts__url must be an http:// or https:// URL")
            if self.api_key is None:
                raise ValueError("tts__url needs tts__api_key")
        try:
            parse_network_settings(
                application_id=self.application_id,
                frequency_plan_id=self.frequency_plan_id,
                lorawan_version=self.lorawan_version,
                lorawan_phy_version=self.lorawan_phy_version,
            )
        except InvalidInput as err:
            raise ValueError(str(err)) from None
        return self

    @property
    def enabled(self) -> bool:
        return self.url is not None

    def address(self, component: str | None) -> str:
        return component or urlsplit(self.url or "").netloc

    @property
    def network(self) -> NetworkSettings:
        return NetworkSettings(
            self.application_id,
            self.frequency_plan_id,
            self.lorawan_version,
            self.lorawan_phy_version,
            self.supports_class_b,
            self.supports_class_c,
        )


class ProvisioningSettings(BaseModel):
    """How devices reach provisiond to provision: the MQTT listener, CoAP, and the throttle
    of unknown sources (``PROVISIOND_PROVISIONING__MQTT_PORT`` …; ``[provisioning]`` in the
    file)."""

    model_config = ConfigDict(extra="forbid")

    mqtt_enabled: bool = Field(True, description="Serve the MQTT provisioning listener.")
    mqtt_port: int = Field(
        1884, ge=0, le=65535, description="TCP port of the MQTT provisioning listener (0: any)."
    )
    mqtt_tls_cert: Path | None = Field(
        None,
        description="PEM certificate (chain) for MQTT over TLS, and for the mutual-TLS "
        "device API (device_tls_port); with mqtt_tls_key.",
    )
    mqtt_tls_key: Path | None = Field(None, description="PEM private key for MQTT over TLS.")
    mqtt_client_certificates: bool = Field(
        False,
        description="Ask devices connecting to the MQTT listener over TLS for a client "
        "certificate: one signed by a profile's device CA provisions with no secret "
        "(certificate-chain attestation); one chaining to no such CA fails the handshake; "
        "devices sending none provision with a secret as before. Needs mqtt_tls_cert.",
    )
    device_tls_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="TCP port of the mutual-TLS device API (`serve --device-tls-port`): "
        "HTTPS `POST /api/v1/provision`, attested by the client certificate, with the "
        "server certificate of mqtt_tls_cert and mqtt_tls_key. None: not served.",
    )
    device_ca_refresh_seconds: float = Field(
        30.0,
        gt=0,
        description="How often the TLS listeners that attest client certificates reload "
        "the profiles' device CAs (a CA given to a profile is trusted at most this long "
        "after; one taken away is refused at once).",
    )
    mqtt_session_seconds: float = Field(
        60.0, gt=0, description="Longest a provisioning session may stay connected."
    )
    coap_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="UDP port of the CoAP device API (5683 is CoAP's); none: no CoAP.",
    )
    unknown_source_rate_per_minute: int = Field(
        60,
        ge=1,
        description="Provision requests per minute one address may make with "
        "unknown or wrong profile credentials.",
    )


class DpsSettings(BaseModel):
    """Azure Device Provisioning Service's device API (transports/azure/): devices running
    Azure IoT firmware register with provisiond unchanged but for the provisioning host and
    the server's CA (``PROVISIOND_DPS__ID_SCOPE`` …; ``[dps]`` in the file; docs/cloud-
    migration.md)."""

    model_config = ConfigDict(extra="forbid")

    id_scope: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9]{1,64}$",
        description="The id scope devices send (Azure's `0ne…`): it names this instance's "
        "enrollments, every profile with a DPS enrollment group. None: DPS is not served.",
    )
    mqtt_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="TCP port of DPS over MQTT and TLS (`serve --dps-port`; Azure's is 8883, "
        "fixed in its SDKs). None: not served.",
    )
    https_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="TCP port of DPS's HTTPS REST API (`serve --dps-https-port`; Azure's is "
        "443). None: not served.",
    )
    tls_cert: Path | None = Field(
        None,
        description="PEM certificate (chain) of both DPS listeners, for the provisioning host "
        "devices are given; with tls_key. Required to serve DPS.",
    )
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")
    https_requests_per_connection: int = Field(
        16,
        ge=1,
        le=100_000,
        description="Most requests one connection to DPS's HTTPS API may make (a "
        "registration is a PUT and a status GET) before it is closed.",
    )
    operation_seconds: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="How long a registration's operation id can be polled for its status.",
    )
    allocation_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="How long an enrollment's custom allocation webhook has to answer; "
        "past it the registration is answered failed.",
    )
    ca_refresh_seconds: float = Field(
        30.0,
        gt=0,
        description="How often the listeners reload the CAs of X.509 enrollment groups (a "
        "new group's devices are accepted at most this long after it is made).",
    )


class AwsTemplate(BaseModel):
    """One AWS IoT provisioning template, mapped onto a profile (``[aws.templates.NAME]``
    in the file): which RegisterThing parameters fill the device, and what its answer
    says. ``{serial}`` and ``{ParameterName}`` in thing_name and device_configuration's
    values are replaced by the serial and the parameters."""

    model_config = ConfigDict(extra="forbid")

    profile: str | None = Field(None, description="The profile's name (default: the template's).")
    serial: str = Field("SerialNumber", description="The parameter holding the device's serial.")
    name: str | None = Field(None, description="The parameter holding its name (default: serial).")
    model: str | None = Field(
        None,
        description="The parameter naming its model, one of the catalogue's "
        "(default: the profile's).",
    )
    group: str | None = Field(
        None,
        description="The parameter holding its group's path below the profile's group "
        "(default: the profile's group).",
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="Tag key -> the parameter holding its value."
    )
    thing_name: str = Field("{serial}", description="The answer's thingName.")
    device_configuration: dict[str, str] = Field(
        default_factory=dict, description="The answer's deviceConfiguration."
    )
    pre_provisioning_hook: str | None = Field(
        None,
        description="URL POSTed each RegisterThing before the device is created (AWS's "
        "pre-provisioning Lambda): it answers allowProvisioning and parameterOverrides.",
    )


class AwsSettings(BaseModel):
    """AWS IoT fleet provisioning (transports/aws): its mutual-TLS listener, ownership tokens
    and templates (``PROVISIOND_AWS__PORT`` …; ``[aws]`` in the file)."""

    model_config = ConfigDict(extra="forbid")

    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="TCP port of the AWS IoT fleet-provisioning listener (8883 is AWS's; "
        "0: any); none: not served.",
    )
    tls_cert: Path | None = Field(
        None, description="PEM server certificate (chain) of the AWS listener (required)."
    )
    tls_key: Path | None = Field(None, description="PEM private key of aws__tls_cert.")
    token_seconds: int = Field(
        3600,
        ge=10,
        le=86_400,
        description="How long a certificate ownership token lasts; a certificate not "
        "registered by RegisterThing by then is revoked.",
    )
    session_seconds: float = Field(
        120.0, gt=0, description="Longest an AWS provisioning session may stay connected."
    )
    trust_refresh_seconds: float = Field(
        5.0,
        gt=0,
        description="How often the listener reloads the CAs it accepts client certificates from.",
    )
    max_requests_per_session: int = Field(
        16,
        ge=2,
        le=100_000,
        description="Most requests (CreateKeysAndCertificate, RegisterThing …) one AWS "
        "provisioning session may make before it is closed; a gateway provisioning many "
        "devices over one connection may need more.",
    )
    hook_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="How long a pre-provisioning hook has to answer (AWS's Lambda: 5 s).",
    )
    hook_secret: SecretStr | None = Field(
        None,
        description="Signs each pre-provisioning hook request: X-Provisiond-Signature "
        "sha256=HMAC-SHA256 of the body.",
    )
    templates: dict[str, AwsTemplate] = Field(
        default_factory=dict,
        description="Provisioning templates by name; a name not listed is a profile's name "
        "with the defaults.",
    )


class ClaimSettings(BaseModel):
    """Claiming defaults and throttles (``PROVISIOND_CLAIMS__WINDOW_SECONDS`` …; ``[claims]``
    in the file)."""

    model_config = ConfigDict(extra="forbid")

    proof: ClaimProof = Field(
        ClaimProof.NONE,
        description="The proof of possession a claim needs when the device's profile does "
        "not say (or it has none): `none`, `button`, `code` or `device-secret`.",
    )
    window_seconds: int = Field(
        300,
        ge=CLAIM_WINDOW_MIN,
        le=CLAIM_WINDOW_MAX,
        description="How long a claim stays open for its proof and finish, when the "
        "device's profile does not say.",
    )
    code_length: int = Field(
        CODE_LENGTH,
        ge=8,
        le=24,
        description="Characters of the claim codes an import generates, check character "
        "included (each other one carries 4.95 bits: 12 give 54 bits).",
    )
    rate_per_minute: int = Field(
        20, ge=1, description="Claims one user may start per minute, and one address."
    )
    code_attempts_per_minute: int = Field(
        10, ge=1, description="Claim codes or device secrets one user may try per minute."
    )
    device_lookup_rate_per_minute: int = Field(
        30,
        ge=1,
        description="Device pages one user may ask for per minute that find "
        "nothing (a missing serial, or another customer's device).",
    )


class SessionSettings(BaseModel):
    """Sign-in sessions of the pages and the sign-in throttles
    (``PROVISIOND_SESSIONS__HOURS`` …; ``[sessions]`` in the file)."""

    model_config = ConfigDict(extra="forbid")

    hours: float = Field(12.0, gt=0, le=24 * 30, description="How long a sign-in lasts.")
    idle_minutes: float = Field(120.0, gt=0, description="A session unused this long ends.")
    cookie_secure: bool | None = Field(
        None,
        description="Mark the session cookie Secure (HTTPS only). Default: yes in "
        "production, no in development (plain HTTP on localhost).",
    )
    login_failures_before_lockout: int = Field(
        5,
        ge=1,
        description="Wrong passwords in a row, for one account from one address, "
        "that lock that address out of that account.",
    )
    login_lockout_minutes: float = Field(
        15.0, gt=0, description="How long such a lock lasts (and how long failures count)."
    )
    login_rate_per_minute: int = Field(
        10, ge=1, description="Sign-in attempts one address may make per minute."
    )
    login_account_failures_before_slowdown: int = Field(
        20,
        ge=1,
        description="Wrong passwords for one account, from all addresses together, "
        "after which it is slowed down (docs/security.md).",
    )
    login_account_slowdown_seconds: float = Field(
        60.0,
        gt=0,
        le=86400,
        description="A slowed-down account checks one password per this many seconds from "
        "addresses it has not been signed in from.",
    )


class WebhookSettings(BaseModel):
    """Webhook deliveries and where they may go (``PROVISIOND_WEBHOOKS__TIMEOUT_SECONDS`` …;
    ``[webhooks]`` in the file)."""

    model_config = ConfigDict(extra="forbid")

    timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="How long a webhook receiver has to answer."
    )
    max_attempts: int = Field(
        12,
        ge=1,
        le=100,
        description="Deliveries of one event tried before it is marked failed (backoff "
        "doubles from 1 s to at most 1 h).",
    )
    disable_after: int = Field(
        50, ge=1, description="Failed deliveries in a row after which a webhook is disabled."
    )
    log_days: int = Field(
        14, ge=1, description="How long finished deliveries stay in a webhook's log."
    )
    allow_networks: list[str] = Field(
        default_factory=list,
        description="Networks (CIDR, e.g. `10.20.0.0/16`, or single addresses) webhooks may "
        "reach although they are not public: intranet receivers. Default: none "
        "(only public addresses).",
    )
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Host names webhooks may reach whatever they resolve to (`*.corp.example`"
        ": every name under it). Default: none.",
    )

    @field_validator("allow_networks")
    @classmethod
    def _allow_networks(cls, value: list[str]) -> list[str]:
        AllowList.parse(networks=value)
        return value

    @field_validator("allow_hosts")
    @classmethod
    def _allow_hosts(cls, value: list[str]) -> list[str]:
        AllowList.parse(hosts=value)
        return value

    @property
    def allow_list(self) -> AllowList:
        return AllowList.parse(self.allow_networks, self.allow_hosts)


class MetricsSettings(BaseModel):
    """Who may read ``/metrics`` and where (``PROVISIOND_METRICS__TOKEN`` …; ``[metrics]`` in
    the file; docs/operations.md lists the metrics)."""

    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = Field(
        None,
        min_length=16,
        description="A bearer token `/metrics` asks for (`Authorization: Bearer TOKEN`, "
        "compared in constant time). None: anyone who reaches `/metrics` may read it.",
    )
    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve `/metrics` on this port only (a listener of its own, on "
        "metrics__host), not on the HTTP server's port. None: on the HTTP server's port.",
    )
    host: str | None = Field(
        None, description="Address the metrics listener binds to. Default: `host`."
    )


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


class SmtpSettings(BaseModel):
    """The mail server invitations and password-reset links are sent through
    (``PROVISIOND_SMTP__HOST`` …; ``[smtp]`` in the file). No host: the console shows the
    link to the admin, who sends it themselves."""

    model_config = ConfigDict(extra="forbid")

    host: str | None = Field(
        None,
        description="Host name of the SMTP server. None: no e-mail is sent; the console "
        "shows each invitation or reset link to the admin to copy.",
    )
    port: int = Field(587, ge=1, le=65535, description="Port of the SMTP server.")
    security: SmtpSecurity = Field(
        SmtpSecurity.STARTTLS,
        description="`starttls` (upgrade a plain connection, port 587), `tls` (TLS from "
        "the first byte, port 465) or `none` (plain text: a relay on localhost only).",
    )
    username: str | None = Field(
        None, description="User name to authenticate with (None: no authentication)."
    )
    password: SecretStr | None = Field(None, description="Password of smtp__username.")
    from_address: str | None = Field(
        None,
        description="The From address of the mails provisiond sends, e.g. "
        "`provisiond@example.com` (required with smtp__host).",
    )
    timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="How long one exchange with the SMTP server may take."
    )

    @model_validator(mode="after")
    def _from_with_host(self) -> SmtpSettings:
        if self.host and not self.from_address:
            raise ValueError("smtp__host needs smtp__from_address (the mails' From)")
        return self


class InvitationSettings(BaseModel):
    """Invitation and password-reset links (``PROVISIOND_INVITATIONS__HOURS``;
    ``[invitations]`` in the file)."""

    model_config = ConfigDict(extra="forbid")

    hours: float = Field(
        72.0,
        gt=0,
        le=24 * 30,
        description="How long an invitation or password-reset link works (once).",
    )


class LimitSettings(BaseModel):
    """Caps: nothing unauthenticated holds unbounded sockets, memory or time
    (docs/security.md#caps; ``PROVISIOND_LIMITS__HTTP_MAX_CONNECTIONS`` …; ``[limits]`` in the
    file). `serve` lowers the connection caps to fit its descriptor limit."""

    model_config = ConfigDict(extra="forbid")

    api_max_body_bytes: int = Field(
        2 * 1024**3, ge=1024, description="Largest request body the API accepts (imports)."
    )
    http_max_connections: int = Field(
        4096,
        ge=16,
        description="HTTP connections open at once; at the cap a new one takes "
        "the place of the one idle longest, or is refused (503).",
    )
    http_reserved_connections: int = Field(
        16,
        ge=0,
        description="Connections past http_max_connections kept for /healthz, "
        "/readyz and /metrics (anything else there is answered 503).",
    )
    http_header_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Time a client has to send a request's headers."
    )
    http_max_header_bytes: int = Field(
        32 * 1024,
        ge=1024,
        le=1024**2,
        description="Largest request line and headers (431 past it).",
    )
    http_body_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Longest pause within a request body; the body "
        "must also average http_body_min_rate after it.",
    )
    http_body_min_rate: int = Field(
        1024,
        ge=0,
        description="Bytes per second a request body must average once "
        "http_body_timeout_seconds have passed (0: no minimum).",
    )
    http_public_max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest request body of routes open without an "
        "operator token (device API, hooks, OCSP, pages).",
    )
    http_max_body_bytes: int = Field(
        1024**2,
        ge=1024,
        description="Largest request body of the operator API, the bulk "
        "import excepted (api_max_body_bytes).",
    )
    event_streams_per_user: int = Field(
        8,
        ge=1,
        description="Claim-page event streams one user may hold open at once (per instance).",
    )
    mqtt_connect_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Time a new MQTT connection has to send CONNECT."
    )
    mqtt_idle_seconds: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="Longest an MQTT session may stay silent while it "
        "is owed nothing, whatever its keep-alive (0 too).",
    )
    mqtt_max_sessions: int = Field(
        4096,
        ge=16,
        description="MQTT provisioning sessions open at once; at the cap a new "
        "one takes the place of the one idle longest, or is closed.",
    )
    mqtt_max_sessions_per_address: int = Field(
        256, ge=1, description="MQTT sessions open at once from one address (IPv6: one /64)."
    )


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "provisiond"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PROVISIOND_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    environment: Environment = Field(
        Environment.DEVELOPMENT,
        description=(
            "`development` or `production`. Production refuses settings that can lose "
            "committed data (`sqlite_synchronous=NORMAL`)."
        ),
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the default SQLite database lives.",
    )
    database_url: str | None = Field(
        None,
        description=(
            "SQLAlchemy URL of the database: `sqlite:///PATH` or "
            "`postgresql://USER@HOST:PORT/DB`. Default: `provisiond.db` in the data directory."
        ),
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    public_url: str | None = Field(
        None,
        description="The address people, labels and brokers reach this service at "
        "(device URLs on labels; the CRL and OCSP addresses written into "
        "every device certificate), e.g. `https://provision.example.com`. "
        "Unset, device URLs (labels, `codes make`) are refused, and certificates "
        "get `http://HOST:PORT`.",
    )
    port: int = Field(8000, ge=0, le=65535, description="Port of the HTTP server.")
    provisioning: ProvisioningSettings = Field(
        default_factory=ProvisioningSettings,
        description="Device provisioning (`provisioning__*` below).",
    )
    aws: AwsSettings = Field(
        default_factory=AwsSettings,
        description="AWS IoT fleet provisioning (`aws__*` below).",
    )
    log_level: str = Field("info", description="`debug`, `info`, `warning` or `error`.")
    log_format: LogFormat = Field(
        LogFormat.TEXT, description="`text` for people, `json` for log collectors."
    )
    sqlite_synchronous: SqliteSynchronous = Field(
        SqliteSynchronous.FULL,
        description="SQLite `synchronous` pragma. FULL survives power loss; NORMAL is faster.",
    )
    sqlite_busy_timeout_ms: int = Field(
        10_000, ge=0, description="How long an SQLite writer waits for the lock, in ms."
    )
    sqlite_page_size: int = Field(
        4096,
        description="Page size, in bytes, of an SQLite file `db upgrade` creates (a file "
        "keeps the size it was made with). Larger pages import faster and provision slower.",
    )
    database_pool_size: int = Field(
        10, ge=1, description="Connections kept open to PostgreSQL per process."
    )
    import_batch_size: int = Field(
        20_000, ge=1, le=100_000, description="Rows written per statement during bulk import."
    )
    import_max_problems: int = Field(
        1_000, ge=1, description="Problems listed by a failed import before summarising."
    )
    ca_key_passphrase: SecretStr | None = Field(
        None,
        description="Encrypts the private keys of certificate authorities in the "
        "database (required in production to create or import one).",
    )
    crl_dir: Path | None = Field(
        None,
        description="A directory where `serve` writes each CA's CRL (PEM) for the "
        "broker: `NAME.crl.pem`, and every CA's in `crls.pem` (Mosquitto's "
        "`crlfile`); it then makes Mosquitto read it (broker__pid_file or "
        "broker__reload_command). None: no files (the CRLs are still "
        "served over HTTP).",
    )
    crl_validity_hours: float = Field(
        168.0,
        ge=1,
        le=24 * 366,
        description="How long a CRL is valid (its nextUpdate): a broker holding a CRL past "
        "then refuses every certificate of its CA.",
    )
    crl_refresh_hours: float = Field(
        24.0,
        gt=0,
        description="A CA's CRL is made again this long after the last one even "
        "when nothing was revoked (at most half of "
        "crl_validity_hours), so it never expires while provisiond "
        "runs.",
    )
    ocsp_validity_seconds: int = Field(
        300,
        ge=10,
        le=7 * 86_400,
        description="How long an OCSP answer is valid (its nextUpdate): how long a client "
        "may cache it.",
    )
    claims: ClaimSettings = Field(
        default_factory=ClaimSettings, description="Claiming (`claims__*` below)."
    )
    sessions: SessionSettings = Field(
        default_factory=SessionSettings, description="Sign-in sessions (`sessions__*` below)."
    )
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks (CIDR) of the proxies and load balancers in front "
        "of provisiond, whose X-Forwarded-For names the client; none: the header "
        "is ignored and the connection's address is the client's.",
    )
    device_key_passphrase: SecretStr | None = Field(
        None,
        description="Encrypts device keys provisiond keeps to hand on later (LoRaWAN "
        "AppKeys); required in production to import them.",
    )
    broker: BrokerSettings = Field(
        default_factory=BrokerSettings, description="The user's MQTT broker (`broker__*` below)."
    )
    tts: TtsSettings = Field(
        default_factory=TtsSettings, description="The Things Stack (`tts__*` below)."
    )
    webhooks: WebhookSettings = Field(
        default_factory=WebhookSettings, description="Webhooks (`webhooks__*` below)."
    )
    limits: LimitSettings = Field(
        default_factory=LimitSettings, description="Caps (`limits__*` below)."
    )
    dps: DpsSettings = Field(
        default_factory=DpsSettings,
        description="Azure DPS's device API (`dps__*` below).",
    )
    metrics: MetricsSettings = Field(
        default_factory=MetricsSettings,
        description="Who may read `/metrics`, and where (`metrics__*` below).",
    )
    smtp: SmtpSettings = Field(
        default_factory=SmtpSettings,
        description="The mail server invitations are sent through (`smtp__*` below).",
    )
    invitations: InvitationSettings = Field(
        default_factory=InvitationSettings,
        description="Invitation and password-reset links (`invitations__*` below).",
    )

    @field_validator("sqlite_page_size")
    @classmethod
    def _page_size(cls, value: int) -> int:
        if value not in {4096, 8192, 16384, 32768, 65536}:
            raise ValueError("must be 4096, 8192, 16384, 32768 or 65536")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: Any) -> Any:
        if isinstance(value, str):  # an environment variable: "10.0.0.0/8, 192.0.2.7"
            parts = value.strip().removeprefix("[").removesuffix("]").split(",")
            return [p.strip().strip('"') for p in parts if p.strip()]
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.lower()
        if level not in {"debug", "info", "warning", "error"}:
            raise ValueError("must be one of debug, info, warning, error")
        return level

    @model_validator(mode="after")
    def _safe_in_production(self) -> Settings:
        if self.broker.kind is BrokerKind.MOSQUITTO_DYNSEC and self.broker.url is None:
            raise ValueError(
                "broker__kind=mosquitto-dynsec needs broker__url (mqtt://USER:PASSWORD@HOST:PORT)"
            )
        if self.broker.kind is BrokerKind.MOSQUITTO_FILES:
            if self.broker.password_file is None or self.broker.acl_file is None:
                raise ValueError(
                    "broker__kind=mosquitto-files needs broker__password_file "
                    "and broker__acl_file (the files Mosquitto's password_file "
                    "and acl_file name)"
                )
            if self.broker.pid_file is None and not self.broker.reload_command:
                raise ValueError(
                    "broker__kind=mosquitto-files needs broker__pid_file "
                    "(Mosquitto's pid_file) or broker__reload_command, so that "
                    "Mosquitto reads the files again"
                )
        if self.crl_refresh_hours > self.crl_validity_hours / 2:
            raise ValueError(
                "crl_refresh_hours must be at most half of crl_validity_hours, "
                "so that a CRL is made again well before it expires"
            )
        if (
            self.environment is Environment.PRODUCTION
            and self.sqlite_synchronous is SqliteSynchronous.NORMAL
        ):
            raise ValueError(
                "sqlite_synchronous=NORMAL can lose committed data on power loss; "
                "production needs FULL"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [
            _Renamed(settings_cls, init_settings, where="arguments"),
            _Renamed(settings_cls, env_settings, where="environment", environment=True),
        ]
        config_file = os.environ.get(CONFIG_FILE_ENV)
        if config_file:
            toml = TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file))
            sources.append(_Renamed(settings_cls, toml, where=config_file))
        return tuple(sources)

    @property
    def production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def secure_cookies(self) -> bool:
        secure = self.sessions.cookie_secure
        return self.production if secure is None else secure

    @property
    def ca_passphrase(self) -> str | None:
        """The CA key passphrase in clear, for the code that encrypts and decrypts keys."""
        return self.ca_key_passphrase.get_secret_value() if self.ca_key_passphrase else None

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'provisiond.db'}"

    def masked(self) -> dict[str, Any]:
        """The effective settings with secrets (passwords in URLs) masked, for display."""
        out = self.model_dump(mode="json")
        out["database_url"] = mask_url(self.effective_database_url)
        for name in ("ca_key_passphrase", "device_key_passphrase"):
            if getattr(self, name) is not None:
                out[name] = "***"
        if self.broker.url is not None:
            out["broker"]["url"] = mask_url(self.broker.url.get_secret_value())
        if self.broker.hook_secret is not None:
            out["broker"]["hook_secret"] = "***"  # noqa: S105 (a mask)
        if self.broker.emqx_api_secret is not None:
            out["broker"]["emqx_api_secret"] = "***"  # noqa: S105 (a mask)
        if self.tts.api_key is not None:
            out["tts"]["api_key"] = "***"
        if self.metrics.token is not None:
            out["metrics"]["token"] = "***"  # noqa: S105 (a mask)
        if self.smtp.password is not None:
            out["smtp"]["password"] = "***"  # noqa: S105 (a mask)
        return out


# Settings that moved into a group: old flat name -> (group, field). The old names keep
# working from every source (keyword arguments, PROVISIOND_OLD_NAME, a config file's
# `old_name = …`); the environment and the config file log a deprecation warning, once per
# name, naming the new one. Old and new name both given in one source is an error naming
# both; across sources the usual precedence holds (arguments > environment > file).
RENAMED: dict[str, tuple[str, str]] = {
    "mqtt_enabled": ("provisioning", "mqtt_enabled"),
    "mqtt_port": ("provisioning", "mqtt_port"),
    "mqtt_tls_cert": ("provisioning", "mqtt_tls_cert"),
    "mqtt_tls_key": ("provisioning", "mqtt_tls_key"),
    "mqtt_session_seconds": ("provisioning", "mqtt_session_seconds"),
    "coap_port": ("provisioning", "coap_port"),
    "provision_unknown_source_rate_per_minute": ("provisioning", "unknown_source_rate_per_minute"),
    "claim_proof": ("claims", "proof"),
    "claim_window_seconds": ("claims", "window_seconds"),
    "claim_code_length": ("claims", "code_length"),
    "claim_rate_per_minute": ("claims", "rate_per_minute"),
    "claim_code_attempts_per_minute": ("claims", "code_attempts_per_minute"),
    "device_lookup_rate_per_minute": ("claims", "device_lookup_rate_per_minute"),
    "session_hours": ("sessions", "hours"),
    "session_idle_minutes": ("sessions", "idle_minutes"),
    "cookie_secure": ("sessions", "cookie_secure"),
    "login_failures_before_lockout": ("sessions", "login_failures_before_lockout"),
    "login_lockout_minutes": ("sessions", "login_lockout_minutes"),
    "login_rate_per_minute": ("sessions", "login_rate_per_minute"),
    "login_account_failures_before_slowdown": (
        "sessions",
        "login_account_failures_before_slowdown",
    ),
    "login_account_slowdown_seconds": ("sessions", "login_account_slowdown_seconds"),
    "webhook_timeout_seconds": ("webhooks", "timeout_seconds"),
    "webhook_max_attempts": ("webhooks", "max_attempts"),
    "webhook_disable_after": ("webhooks", "disable_after"),
    "webhook_log_days": ("webhooks", "log_days"),
    "webhook_allow_networks": ("webhooks", "allow_networks"),
    "webhook_allow_hosts": ("webhooks", "allow_hosts"),
    "api_max_body_bytes": ("limits", "api_max_body_bytes"),
    "http_max_connections": ("limits", "http_max_connections"),
    "http_reserved_connections": ("limits", "http_reserved_connections"),
    "http_header_timeout_seconds": ("limits", "http_header_timeout_seconds"),
    "http_max_header_bytes": ("limits", "http_max_header_bytes"),
    "http_body_timeout_seconds": ("limits", "http_body_timeout_seconds"),
    "http_body_min_rate": ("limits", "http_body_min_rate"),
    "http_public_max_body_bytes": ("limits", "http_public_max_body_bytes"),
    "http_max_body_bytes": ("limits", "http_max_body_bytes"),
    "event_streams_per_user": ("limits", "event_streams_per_user"),
    "mqtt_connect_timeout_seconds": ("limits", "mqtt_connect_timeout_seconds"),
    "mqtt_idle_seconds": ("limits", "mqtt_idle_seconds"),
    "mqtt_max_sessions": ("limits", "mqtt_max_sessions"),
    "mqtt_max_sessions_per_address": ("limits", "mqtt_max_sessions_per_address"),
}
_warned: set[str] = set()


def _old_environment() -> dict[str, Any]:
    """``PROVISIOND_<OLD_NAME>`` variables (the environment source reads only fields)."""
    found: dict[str, Any] = {}
    for key, value in os.environ.items():
        name = key.lower().removeprefix("provisiond_")
        if key.lower().startswith("provisiond_") and name in RENAMED:
            group, field = RENAMED[name]
            model: type[BaseModel] = Settings.model_fields[group].annotation  # type: ignore[assignment]
            complex_value = get_origin(model.model_fields[field].annotation) is list
            found[name] = json.loads(value) if complex_value else value
    return found


def moved(values: dict[str, Any], *, where: str, warn: bool) -> dict[str, Any]:
    """*values* (one source's) with old flat names and ``group__field`` keys put in their
    group; raises ConfigurationError when a setting is given under both names."""
    out = dict(values)
    for key in list(out):
        if key in RENAMED:
            group, field = RENAMED[key]
        elif "__" in key:
            group, _, field = key.partition("__")
        else:
            continue
        value = out.pop(key)
        target = out.get(group, {})
        if isinstance(target, BaseModel):
            target = target.model_dump(exclude_unset=True)
        target = out[group] = dict(target)
        new = f"{group}__{field}"
        if field in target:
            raise ConfigurationError(f"{where}: {key} and {new} are the same setting: give one")
        target[field] = value
        if warn and key in RENAMED and key not in _warned:
            _warned.add(key)
            logger.warning(
                "setting %s is deprecated: it is now %s (environment PROVISIOND_%s, or %s "
                "in the config file's [%s] table)",
                key,
                new,
                new.upper(),
                field,
                group,
            )
    return out


class _Renamed(PydanticBaseSettingsSource):
    """A settings source with the moved settings (RENAMED) put where they now live."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        source: PydanticBaseSettingsSource,
        *,
        where: str,
        environment: bool = False,
    ) -> None:
        super().__init__(settings_cls)
        self.source = source
        self.where = where  # for messages: "arguments", "environment" or the file's name
        self.environment = environment

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.source.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        values = self.source()
        if self.environment:
            values = {**_old_environment(), **values}
        return moved(values, where=self.where, warn=self.where != "arguments")


def mask_url(url: str) -> str:
    """Hide the password of a URL: ``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user, colon, _ = creds.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings once (called by the composition root and the CLI)."""
    if config_file is not None:
        os.environ[CONFIG_FILE_ENV] = str(config_file)
    clean = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**clean)
