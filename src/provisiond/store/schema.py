"""The SQL schema (SQLAlchemy Core). Migrations in store/migrations create it; nothing else does."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from provisiond.store.types import UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Json = JSON().with_variant(JSONB(), "postgresql")
EventId = BigInteger().with_variant(Integer(), "sqlite")

groups = Table(
    "groups",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("parent_id", Uuid, ForeignKey("groups.id", ondelete="RESTRICT"), nullable=True),
    Column("name", String(64), nullable=False),
    Column("path", String(1040), nullable=False, unique=True),
    Column("depth", Integer, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "parent_id"),
)

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    # NULL: an operator-wide admin (every group, and the devices of none).
    Column("group_id", Uuid, ForeignKey("groups.id", ondelete="RESTRICT"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # Sign-in slow-down: wrong passwords from all addresses since the last sign-in, and while
    # they are too many, when the next check from an address not signed in from is allowed.
    Column("failed_logins", Integer, nullable=False, server_default=text("0")),
    Column("locked_until", UtcDateTime, nullable=True),
    # Disabled by an operator: sign-in refused, sessions ended (until enabled again).
    Column("disabled_at", UtcDateTime, nullable=True),
    CheckConstraint("role IN ('admin', 'installer', 'viewer')", name="role"),
    CheckConstraint("group_id IS NOT NULL OR role = 'admin'", name="operator_wide_admin"),
    Index(None, "group_id"),
)

device_models = Table(
    "device_models",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("description", String(500), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("serial", String(64), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("model_id", Uuid, ForeignKey("device_models.id", ondelete="RESTRICT"), nullable=True),
    Column("state", String(16), nullable=False),
    Column("group_id", Uuid, ForeignKey("groups.id", ondelete="RESTRICT"), nullable=True),
    Column("owner_user_id", Uuid, ForeignKey("users.id", ondelete="RESTRICT"), nullable=True),
    # The group that owns a device with no owning user, when it is not the group the device
    # sits in (group_id, its site): a claim for "my group" owns it by the claimer's group and
    # places it at a site below. NULL: the group it sits in owns it.
    Column("owner_group_id", Uuid, ForeignKey("groups.id", ondelete="RESTRICT"), nullable=True),
    Column("registered_event_id", EventId, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("claimed_at", UtcDateTime, nullable=True),
    # Self-provisioning: the profile the device provisioned with, when, and the credential it
    # was given then (pending until first used: see services/provisioning.py).
    Column(
        "profile_id", Uuid, ForeignKey("provision_profiles.id", ondelete="RESTRICT"), nullable=True
    ),
    Column("provisioned_at", UtcDateTime, nullable=True),
    Column("provision_credential_id", Uuid, nullable=True),
    # Claiming: the SHA-256 of the claim code printed on its label; the window a device opened
    # itself with a secret (ThingsBoard's device claiming); where its timeline starts after a
    # release that reset its history.
    Column("claim_code_hash", String(64), nullable=True),
    Column("claim_secret_hash", String(64), nullable=True),
    Column("claim_secret_expires_at", UtcDateTime, nullable=True),
    Column("history_since_event_id", EventId, nullable=True),
    # A retry of self-provisioning (services/provisioning.py): the hash of the retry key the
    # device sent with its first request, and that first answer's credential encrypted with
    # a key only the retry key gives (so a copy of the database cannot read it).
    Column("provision_retry_hash", String(64), nullable=True),
    Column("provision_answer_sealed", String(8192), nullable=True),
    CheckConstraint("state IN ('registered', 'claimed', 'released')", name="state"),
    CheckConstraint("(state = 'claimed') = (group_id IS NOT NULL)", name="claimed_has_group"),
    # Partial indexes: unclaimed stock (most devices at import time) costs them nothing.
    Index(
        None,
        "group_id",
        "serial",
        sqlite_where=text("group_id IS NOT NULL"),
        postgresql_where=text("group_id IS NOT NULL"),
    ),
    Index(None, "state", "serial"),
    Index(None, "model_id", "serial"),
    # the console's orders and its profile filter (0021)
    Index(None, "name", "serial"),
    Index(None, "created_at", "serial"),
    Index(None, "profile_id", "serial"),
    Index(
        None,
        "owner_user_id",
        sqlite_where=text("owner_user_id IS NOT NULL"),
        postgresql_where=text("owner_user_id IS NOT NULL"),
    ),
)

device_tags = Table(
    "device_tags",
    metadata,
    Column("device_id", Uuid, ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(64), primary_key=True),
    Column("value", String(256), nullable=False),
    # The device's serial, copied (serials never change): a tag filter then reads its index
    # range already in listing order (serial) and stops after one page.
    Column("serial", String(64), nullable=False),
    Index(None, "key", "value", "serial"),
)

credentials = Table(
    "credentials",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("device_id", Uuid, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("type", String(16), nullable=False),
    # Tokens provisiond issues are split: "<credential id>.<verifier>"; the id finds the row
    # and secret_hash is the verifier's SHA-256. What else a device presents to be found (an
    # MQTT user name, a certificate fingerprint, a device-chosen token's SHA-256) goes in
    # lookup, unique per type.
    Column("lookup", String(128), nullable=True),
    Column("secret_hash", String(255), nullable=True),
    Column("client_id", String(256), nullable=True),  # MQTT basic: the client id to use
    # A secret provisiond must hand on later (a LoRaWAN AppKey), sealed: services/sealing.py.
    Column("secret_sealed", String(512), nullable=True),
    # A LoRaWAN 1.1 device's NwkKey, sealed like its AppKey (None for 1.0.x devices).
    Column("nwk_key_sealed", String(512), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("first_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Index(
        None,
        "type",
        "lookup",
        unique=True,
        sqlite_where=text("lookup IS NOT NULL"),
        postgresql_where=text("lookup IS NOT NULL"),
    ),
    Index(None, "device_id"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    # Its scope: a role over a group's subtree (NULL: operator-wide), until expires_at.
    Column("role", String(16), nullable=False),
    Column("group_id", Uuid, ForeignKey("groups.id", ondelete="RESTRICT"), nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
    CheckConstraint("role IN ('admin', 'installer', 'viewer')", name="role"),
    Index(None, "group_id"),
)

certificate_authorities = Table(
    "certificate_authorities",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("certificate_pem", String(16384), nullable=False),
    # PKCS#8 PEM, encrypted with the ca_key_passphrase setting when one is set; NULL for a
    # manufacturer's CA registered by its certificate only (it vouches for device-brought
    # certificates, it signs nothing here).
    Column("private_key_pem", String(16384), nullable=True),
    Column("key_encrypted", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # The CA's current CRL (RFC 5280), shared by every instance: its number (monotonic),
    # PEM, and the time it was made and stops being valid.
    Column("crl_number", BigInteger, nullable=False, server_default=text("0")),
    Column("crl_pem", Text, nullable=True),
    Column("crl_this_update", UtcDateTime, nullable=True),
    Column("crl_next_update", UtcDateTime, nullable=True),
    # The same CRL with an Issuing Distribution Point naming the URL the certificates carry
    # (what that URL serves; EMQX needs the extension, OpenSSL refuses it for certificates
    # that name no or another point, so crl_pem has none: services/revocation.py).
    Column("crl_dp_pem", Text, nullable=True),
    # A new CRL is due when crl_requested > crl_covers: the outbox's consumer counts up
    # crl_requested when the register's revocations change; a CRL records the count it was
    # made after (so a revocation seen while one is being made asks for the next).
    Column("crl_requested", BigInteger, nullable=False, server_default=text("0")),
    Column("crl_covers", BigInteger, nullable=False, server_default=text("0")),
)

# Every certificate a CA of provisiond issued: the CA's own register, which the CRL and the
# OCSP responder answer from. No foreign keys: a deleted device's certificates stay listed
# (revoked) until they expire.
issued_certificates = Table(
    "issued_certificates",
    metadata,
    Column("ca_id", Uuid, primary_key=True),
    Column("serial_number", String(40), primary_key=True),  # hex, lower case
    Column("credential_id", Uuid, nullable=False, unique=True),
    Column("device_id", Uuid, nullable=False),
    Column("device_serial", String(64), nullable=False),
    Column("certificate_pem", String(8192), nullable=False),
    Column("not_before", UtcDateTime, nullable=False),
    Column("not_after", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("revocation_reason", String(32), nullable=True),  # RFC 5280 CRLReason name
    Index(None, "device_id"),
    Index(
        "ix_issued_certificates_revoked",
        "ca_id",
        "revoked_at",
        sqlite_where=text("revoked_at IS NOT NULL"),
        postgresql_where=text("revoked_at IS NOT NULL"),
    ),
)

provision_profiles = Table(
    "provision_profiles",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("key", String(128), nullable=False, unique=True),
    # services/hashing.py hash_profile_secret: not the HS256 key (that is jwt_key_sealed)
    Column("secret_hash", String(64), nullable=False),
    Column("strategy", String(16), nullable=False),
    Column("group_id", Uuid, ForeignKey("groups.id", ondelete="RESTRICT"), nullable=True),
    Column("model_id", Uuid, ForeignKey("device_models.id", ondelete="RESTRICT"), nullable=True),
    Column("credential_types", String(64), nullable=False),  # comma-separated, in order
    Column("rate_per_minute", Integer, nullable=False),
    Column("source_rate_per_minute", Integer, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("secret_rotated_at", UtcDateTime, nullable=False),
    # Signed-token registration: the manufacturer's ES256 public key (PEM), when registered.
    Column("jwt_public_key", String(1024), nullable=True),
    # X.509: the CA that signs device CSRs, and for how long its certificates last.
    Column(
        "ca_id", Uuid, ForeignKey("certificate_authorities.id", ondelete="RESTRICT"), nullable=True
    ),
    Column("certificate_days", Integer, nullable=False, server_default=text("365")),
    # Claiming by people: the proof a claim needs (NULL: the instance default), how long the
    # claim window lasts (NULL: the instance default), what a release keeps.
    Column("claim_proof", String(16), nullable=True),
    Column("claim_window_seconds", Integer, nullable=True),
    Column("release_policy", String(8), nullable=False, server_default=text("'keep'")),
    # The Things Stack settings of its devices (domain/tts.py NetworkSettings), or NULL.
    Column("lorawan", Json, nullable=True),
    # Identity integrity: whether and how a device already provisioned may provision again
    # (domain/profiles.py ReprovisionPolicy), the shortest token or MQTT password a device
    # may choose, and the manufacturer CA that vouches for certificates devices bring.
    Column("reprovision_policy", String(16), nullable=False, server_default=text("'never'")),
    Column("device_secret_min_length", Integer, nullable=False, server_default=text("16")),
    Column(
        "device_ca_id",
        Uuid,
        ForeignKey("certificate_authorities.id", ondelete="RESTRICT"),
        nullable=True,
    ),
    # Signed-token registration with HS256: the key, sealed (services/sealing.py), so that
    # nothing in a copy of the database verifies or mints a token.
    Column("jwt_key_sealed", String(512), nullable=True),
    CheckConstraint("strategy IN ('allow-create', 'pre-provisioned')", name="strategy"),
    CheckConstraint(
        "reprovision_policy IN ('never', 'with-proof', 'factory-reset')", name="reprovision_policy"
    ),
)

# The ids (jti) of registration tokens already used, so none is used twice; kept until the
# token expires.
registration_tokens = Table(
    "registration_tokens",
    metadata,
    Column(
        "profile_id",
        Uuid,
        ForeignKey("provision_profiles.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("jti", String(128), primary_key=True),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=False),
    Column("device_id", Uuid, nullable=True),
    Index(None, "expires_at"),
)

# A person's attempt to claim a device: started by a scan, proven, finished or not. At most
# one live claim (open or proven) per device: the partial unique index decides a race.
claims = Table(
    "claims",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("device_id", Uuid, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("target", String(8), nullable=False),
    Column("proof", String(16), nullable=False),
    Column("status", String(12), nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("proven_at", UtcDateTime, nullable=True),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("code_attempts", Integer, nullable=False, server_default=text("0")),
    Column("address", String(64), nullable=False),
    CheckConstraint("target IN ('me', 'group')", name="target"),
    CheckConstraint(
        "status IN ('open', 'proven', 'completed', 'expired', 'failed', 'cancelled')", name="status"
    ),
    Index(
        "uq_claims_live_device",
        "device_id",
        unique=True,
        sqlite_where=text("status IN ('open', 'proven')"),
        postgresql_where=text("status IN ('open', 'proven')"),
    ),
    Index(None, "device_id", "started_at"),
    Index(None, "user_id", "started_at"),
    Index(None, "status", "started_at"),  # the overview: live claims whose window closed (0020)
)

# The overview's daily summaries (migration 0020), kept by triggers on devices and claims in
# the transaction that changes one (the nil UUID stands for no group, no model):
# - device_days, per UTC day and group: the devices registered that day, how many of them
#   are provisioned and claimed now, the claimed ones by time-to-claim bucket
#   (domain/funnel.py DELAY_BOUNDS: b0 under the first bound … b18 past the last), and the
#   claims people of the group started that day that failed or expired, by reason
#   (domain/funnel.py REASONS);
# - funnel_days, the same per model: registered, provisioned, claimed; failed, expired.
DELAY_BUCKETS = 19
REASON_COLUMNS = (
    "failed_codes",
    "failed_secrets",
    "expired_button",
    "expired_code",
    "expired_secret",
    "expired_none",
    "expired_proven",
)


def _counter(name: str) -> Column[int]:
    return Column(name, BigInteger, nullable=False, server_default=text("0"))


funnel_days = Table(
    "funnel_days",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("group_key", Uuid, primary_key=True),
    Column("model_key", Uuid, primary_key=True),
    *(_counter(n) for n in ("registered", "provisioned", "claimed", "failed", "expired")),
    # The writer's own rows (PostgreSQL: its backend's process id; SQLite: 0), so concurrent
    # writers never wait on one summary row: readers sum over slots (migration 0020).
    Column("slot", Integer, primary_key=True, server_default=text("0")),
    sqlite_with_rowid=False,
)

device_days = Table(
    "device_days",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("group_key", Uuid, primary_key=True),
    *(_counter(n) for n in ("registered", "provisioned", "claimed")),
    *(_counter(f"b{i}") for i in range(DELAY_BUCKETS)),
    *(_counter(n) for n in REASON_COLUMNS),
    Column("slot", Integer, primary_key=True, server_default=text("0")),
    sqlite_with_rowid=False,
)

# Signed-in browsers. The cookie carries a random token; only its SHA-256 is stored.
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the cookie's token
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("address", String(64), nullable=False),
    Index(None, "user_id"),
    Index(None, "expires_at"),
)

# Sign-in lock-out per e-mail address typed and client address (known users or not, so a
# lock tells nothing about who exists): wrong passwords in a row and the lock they caused;
# when a sign-in last succeeded from it (an address the account is known at).
sign_in_addresses = Table(
    "sign_in_addresses",
    metadata,
    Column("email", String(254), primary_key=True),
    Column("address", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("locked_until", UtcDateTime, nullable=True),
    Column("signed_in_at", UtcDateTime, nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Index(None, "updated_at"),
)

events = Table(
    "events",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("type", String(64), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(300), nullable=False),
    # No foreign keys: the audit log outlives what it describes.
    Column("device_id", Uuid, nullable=True),
    Column("serial", String(64), nullable=True),
    Column("group_id", Uuid, nullable=True),
    Column("data", Json, nullable=False),
    # The subtree the event belongs to, as it was when it happened (migration 0015): who
    # may read it (GET /api/v1/events) and which webhooks receive it. NULL: no group
    # (operator-wide readers and webhooks only).
    Column("group_path", String(1040), nullable=True),
    Index(None, "device_id", "id"),
    Index(None, "type", "id"),
    Index(None, "at", "id"),  # replaced (at) in 0026: a period's page, newest first
    Index(None, "group_path", "id"),  # replaced (group_id, id) in 0015
    Index(None, "serial", "id"),  # a deleted device's history, by its serial
    Index(None, "actor", "id"),
)

# Events other parts must act on (broker accounts, webhooks), queued by a trigger on events in
# the transaction that wrote the event (migration 0008), and deleted once acted on.
OUTBOX_EVENT_TYPES = (
    "device.registered",
    "devices.imported",
    "device.provisioned",
    "device.deleted",
    "device.claimed",
    "device.released",
    "credentials.issued",
    "credentials.revoked",
    "claim.started",
    "claim.proven",
)
outbox = Table(
    "outbox",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("event_id", EventId, nullable=False),
)

# Devices an integration must bring in step ("broker": their broker accounts; "tts": their
# end device in The Things Stack), with the retry state of each.
pending_work = Table(
    "pending_work",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("device_id", Uuid, primary_key=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("last_error", String(500), nullable=True),
)

# The accounts provisiond has made on the broker, or (EMQX) the user names whose sessions it
# may have to end (no foreign key: a deleted device's accounts must still be found to be
# removed). A user name that is a token (broker__token_as_username) is kept sealed; others,
# not secrets, as "plain:<name>".
broker_accounts = Table(
    "broker_accounts",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("device_id", Uuid, nullable=False),
    Column("credential_id", Uuid, nullable=False),
    Column("username_sealed", String(512), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "device_id"),
)

# Background work that must run once per deployment, not once per instance.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Uuid, primary_key=True),
    # NULL: operator-wide (every event, and events of no group); only an operator-wide
    # caller may create one
    Column("group_id", Uuid, ForeignKey("groups.id", ondelete="CASCADE"), nullable=True),
    Column("url", String(2000), nullable=False),
    Column("secret_sealed", String(512), nullable=False),  # the HMAC key, shown once
    Column("event_types", Json, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", String(500), nullable=True),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("created_at", UtcDateTime, nullable=False),
    Index(None, "group_id"),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", EventId, primary_key=True, autoincrement=True),
    Column("webhook_id", Uuid, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event_id", EventId, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("body", Json, nullable=False),
    Column("status", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", UtcDateTime, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=True),
    CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
    # the deliverer's due deliveries; with webhook_id and attempts, the backlog's counts
    # per webhook read it alone (0026)
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at", "webhook_id", "attempts"),
    Index(None, "webhook_id", "id"),
    Index(None, "webhook_id", "status", "id"),  # a log's counts and its failed (0026)
)

# Devices provisiond registered in The Things Stack (no foreign key: a deleted device's end
# device must still be found to be removed), or failed to.
# status: registered; failed (why: last_error); conflict — an end device provisiond did not
# create holds the ID or the DevEUI (foreign_*: which one), and the device waits for an
# operator. origin: created by provisiond, adopted by an operator's decision, or legacy
# (registered before provisiond marked its end devices; migration 0012).
tts_devices = Table(
    "tts_devices",
    metadata,
    Column("device_id", Uuid, primary_key=True),
    Column("application_id", String(36), nullable=False),
    Column("end_device_id", String(64), nullable=False),
    Column("dev_eui", String(16), nullable=False),
    Column("status", String(12), nullable=False),
    Column("last_error", String(500), nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("serial", String(64), nullable=True),  # the device's, kept past its deletion
    Column("origin", String(8), nullable=False),
    Column("foreign_application_id", String(36), nullable=True),
    Column("foreign_end_device_id", String(64), nullable=True),
    CheckConstraint("status IN ('registered', 'failed', 'conflict')", name="status"),
    CheckConstraint("origin IN ('created', 'adopted', 'legacy')", name="origin"),
    Index(None, "status"),  # the failed and conflicts, counted at each metrics scrape
)

# One-time user-node association tokens (ESP RainMaker's user mapping): the host hands the
# device a user id and a secret while provisioning its Wi-Fi; when the device reports them,
# it is claimed for that user. Secrets stored hashed.
association_tokens = Table(
    "association_tokens",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Column("device_id", Uuid, nullable=True),
    Index(None, "user_id"),
)

# Invitation and password-reset links (domain/invitations.py): single use, expiring; the
# token is in the mail or on the admin's screen only, the SHA-256 of it here.
invitations = Table(
    "invitations",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("purpose", String(16), nullable=False),
    Column("email", String(254), nullable=False),
    Column("role", String(16), nullable=True),  # an invitation's
    Column("group_id", Uuid, ForeignKey("groups.id", ondelete="CASCADE"), nullable=True),
    Column("user_id", Uuid, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    CheckConstraint("purpose IN ('invitation', 'password-reset')", name="purpose"),
    CheckConstraint(
        "(purpose = 'invitation' AND role IS NOT NULL AND group_id IS NOT NULL)"
        " OR (purpose = 'password-reset' AND user_id IS NOT NULL)",
        name="target",
    ),
    Index(None, "email"),
    Index(None, "group_id"),
    Index(None, "user_id"),
)

# Azure DPS enrollments (services/dps.py): an enrollment group is a profile's (device_id
# NULL; a symmetric group key, or X.509 attestation by the profile's device CA); an
# individual enrollment is one registered device's, with its own symmetric key. Keys are
# sealed (services/sealing.py), so a copy of the database cannot sign as a device.
dps_enrollments = Table(
    "dps_enrollments",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "profile_id",
        Uuid,
        ForeignKey("provision_profiles.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("device_id", Uuid, ForeignKey("devices.id", ondelete="CASCADE"), nullable=True),
    Column("attestation", String(16), nullable=False),
    Column("key_sealed", String(1024), nullable=True),
    Column("assigned_hub", String(255), nullable=False),
    # DPS's custom allocation: a webhook that may name another host and a payload
    Column("allocation_webhook", String(2048), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint("attestation IN ('symmetric-key', 'x509')", name="attestation"),
    CheckConstraint("attestation = 'x509' OR key_sealed IS NOT NULL", name="key"),
    Index(None, "device_id", unique=True),
    Index(
        "ix_dps_enrollments_group",
        "profile_id",
        unique=True,
        sqlite_where=text("device_id IS NULL"),
        postgresql_where=text("device_id IS NULL"),
    ),
)

# AWS IoT fleet provisioning (transports/aws): a certificate CreateKeysAndCertificate or
# CreateCertificateFromCsr made, waiting for RegisterThing with its ownership token (kept as
# its SHA-256). RegisterThing takes the row (once) and registers the certificate in its CA's
# register; past expires_at the row is taken by the sweeper, which registers the certificate
# revoked (services/aws_fleet.py).
aws_pending_certificates = Table(
    "aws_pending_certificates",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("certificate_id", String(64), nullable=False, unique=True),  # SHA-256 of the DER
    Column("ca_id", Uuid, nullable=False),
    Column("serial_number", String(40), nullable=False),  # hex, lower case
    Column("certificate_pem", String(8192), nullable=False),
    Column("not_before", UtcDateTime, nullable=False),
    Column("not_after", UtcDateTime, nullable=False),
    # the SHA-256 of the certificate the asking session authenticated with: only it may
    # register this one
    Column("claim", String(64), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index(None, "expires_at"),
)
