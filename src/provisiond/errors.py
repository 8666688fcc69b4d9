"""The one exception hierarchy of provisiond.

Every expected failure is a :class:`ProvisiondError` subclass with a stable ``code``
(kebab-case, listed in docs/api.md), an HTTP ``status``, a CLI ``exit_code`` and a
``retryable`` flag. Adapters render the same exception three ways: an RFC 9457 problem
document over HTTP, a compatible payload on device transports, and a one-line message with a
documented exit code in the CLI. A registry refuses two classes with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

#: code -> class, filled by ``ProvisiondError.__init_subclass__``.
REGISTRY: dict[str, type[ProvisiondError]] = {}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where (line and/or field) and what."""

    message: str
    field: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(self.field)
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.field is not None:
            out["field"] = self.field
        if self.line is not None:
            out["line"] = self.line
        return out


class ProvisiondError(Exception):
    """Base of every expected failure. Subclasses set ``code`` and ``title``."""

    code: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"
    status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    retryable: ClassVar[bool] = False

    def __init__(self, detail: str, *, problems: list[Problem] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems: list[Problem] = list(problems or [])
        self.extra = extra

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if code is None:
            return  # an abstract grouping class: inherits its parent's code, not registered
        if code in REGISTRY:
            raise TypeError(
                f"error code {code!r} of {cls.__qualname__} is already used by "
                f"{REGISTRY[code].__qualname__}"
            )
        REGISTRY[code] = cls

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        doc: dict[str, Any] = {
            "type": f"urn:provisiond:error:{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            "retryable": self.retryable,
        }
        if instance is not None:
            doc["instance"] = instance
        if self.problems:
            doc["errors"] = [p.as_dict() for p in self.problems]
        doc.update(self.extra)
        return doc


REGISTRY[ProvisiondError.code] = ProvisiondError

# ----------------------------------------------------------------------------- bad input


class InvalidInput(ProvisiondError):
    code = "invalid-input"
    title = "Invalid input"
    status = 422
    exit_code = 2


class ImportInvalid(InvalidInput):
    code = "import-invalid"
    title = "The import file has problems; nothing was imported"


class InvalidCursor(InvalidInput):
    code = "invalid-cursor"
    title = "Invalid page cursor"


# ----------------------------------------------------------------------------- not found
# "Not found" and "not allowed" look the same from outside: callers raise these for both.


class NotFound(ProvisiondError):
    status = 404
    exit_code = 4


class DeviceNotFound(NotFound):
    code = "device-not-found"
    title = "No such device"


class GroupNotFound(NotFound):
    code = "group-not-found"
    title = "No such group"


class UserNotFound(NotFound):
    code = "user-not-found"
    title = "No such user"


class ModelNotFound(NotFound):
    code = "model-not-found"
    title = "No such device model"


class TokenNotFound(NotFound):
    code = "token-not-found"
    title = "No such API token"


class ProfileNotFound(NotFound):
    code = "profile-not-found"
    title = "No such provisioning profile"


class ClaimNotFound(NotFound):
    code = "claim-not-found"
    title = "No such claim"


class CaNotFound(NotFound):
    code = "ca-not-found"
    title = "No such certificate authority"


class WebhookNotFound(NotFound):
    code = "webhook-not-found"
    title = "Webhook not found"


class DeliveryNotFound(NotFound):
    code = "delivery-not-found"
    title = "Webhook delivery not found"


class RouteNotFound(NotFound):
    code = "not-found"
    title = "Not found"


class LinkNotValid(NotFound):
    """An invitation or password-reset link that was used, expired, was replaced by a newer
    one, or never existed: the same answer for each."""

    code = "link-not-valid"
    title = "The link was used, has expired or does not exist"


# ----------------------------------------------------------------------------- conflicts


class Conflict(ProvisiondError):
    status = 409
    exit_code = 5


class DeviceExists(Conflict):
    code = "device-exists"
    title = "A device with this serial is already registered"


class DeliveryDelivered(Conflict):
    code = "delivery-delivered"
    title = "The webhook delivery was delivered: only failed deliveries are sent again"


class EnrollmentExists(Conflict):
    code = "enrollment-exists"
    title = "The profile or device already has a DPS enrollment"


class GroupExists(Conflict):
    code = "group-exists"
    title = "The group already exists"


class GroupNotEmpty(Conflict):
    code = "group-not-empty"
    title = "The group still has subgroups, users, devices or profiles"


class UserExists(Conflict):
    code = "user-exists"
    title = "A user with this e-mail already exists"


class ModelExists(Conflict):
    code = "model-exists"
    title = "The device model already exists"


class ModelInUse(Conflict):
    code = "model-in-use"
    title = "Devices or provisioning profiles still use this model"


class TokenExists(Conflict):
    code = "token-exists"
    title = "An API token with this name already exists"


class ProfileExists(Conflict):
    code = "profile-exists"
    title = "A provisioning profile with this name or key already exists"


class CaExists(Conflict):
    code = "ca-exists"
    title = "A certificate authority with this name already exists"


class InvalidTransition(Conflict):
    code = "invalid-transition"
    title = "The device cannot do that in its current state"


class ClaimInProgress(Conflict):
    code = "claim-in-progress"
    title = "Someone else is claiming this device"
    retryable = True


class ClaimClosed(Conflict):
    code = "claim-closed"
    title = "The claim is no longer open"


class DeviceAlreadyClaimed(Conflict):
    code = "device-already-claimed"
    title = "The device is claimed already"


class NothingToAdopt(Conflict):
    code = "nothing-to-adopt"
    title = "There is no end device of someone else's to adopt"


class AdoptionRefused(Conflict):
    code = "adoption-refused"
    title = "This end device cannot be adopted"


class ProfileSecretChanged(Conflict):
    code = "profile-secret-changed"
    title = "The profile's secret was changed meanwhile"


# ----------------------------------------------------------------------------- access


class Unauthenticated(ProvisiondError):
    code = "unauthenticated"
    title = "Authentication required"
    status = 401
    exit_code = 6


class RegistrationRefused(ProvisiondError):
    code = "registration-refused"
    title = "The registration token is not accepted"
    status = 401
    exit_code = 6


class Forbidden(ProvisiondError):
    code = "forbidden"
    title = "Not allowed"
    status = 403
    exit_code = 6


class MethodNotAllowed(ProvisiondError):
    code = "method-not-allowed"
    title = "Method not allowed"
    status = 405
    exit_code = 2


class TooManyRequests(ProvisiondError):
    code = "too-many-requests"
    title = "Too many requests"
    status = 429
    exit_code = 7
    retryable = True


class PayloadTooLarge(ProvisiondError):
    code = "payload-too-large"
    title = "The request body is too large"
    status = 413
    exit_code = 2


class HeadersTooLarge(ProvisiondError):
    code = "headers-too-large"
    title = "The request line and headers are too large"
    status = 431
    exit_code = 2


class UnsupportedMediaType(ProvisiondError):
    code = "unsupported-media-type"
    title = "Unsupported content type"
    status = 415
    exit_code = 2


# ----------------------------------------------------------------------------- environment


class Unavailable(ProvisiondError):
    code = "unavailable"
    title = "A service provisiond depends on is unavailable"
    status = 503
    exit_code = 7
    retryable = True


class BrokerUnavailable(Unavailable):
    code = "broker-unavailable"
    title = "The MQTT broker is unreachable or refused the change"


class TtsUnavailable(Unavailable):
    code = "tts-unavailable"
    title = "The Things Stack is unreachable or refused the change"


class ConfigurationError(ProvisiondError):
    code = "configuration-error"
    title = "Invalid configuration"
    status = 500
    exit_code = 3


class SchemaOutdated(ConfigurationError):
    code = "schema-outdated"
    title = "The database schema is not at the version this provisiond needs"


class PassphraseMismatch(ConfigurationError):
    code = "passphrase-mismatch"
    title = "device_key_passphrase does not open the backup's sealed secrets"


class BackupInvalid(ProvisiondError):
    code = "backup-invalid"
    title = "The file is not a provisiond backup this provisiond can restore"
    status = 422
    exit_code = 2


class TargetExists(Conflict):
    code = "target-exists"
    title = "The file or database to write exists already (--force replaces it)"


class DatabaseInUse(Conflict):
    code = "database-in-use"
    title = "A provisiond server is using the database"


class BrokerNotConfigured(ConfigurationError):
    code = "broker-not-configured"
    title = "No broker is configured"


class TtsNotConfigured(ConfigurationError):
    code = "tts-not-configured"
    title = "The Things Stack is not configured"


class PublicUrlNotConfigured(ConfigurationError):
    """A code or label that carries this service's URL, and no ``public_url`` to put in it."""

    code = "public-url-not-configured"
    title = "public_url is not set: device URLs would point nowhere"


class WifiProvisioningFailed(ProvisiondError):
    """What failed, and in ``hint`` what to try."""

    code = "wifi-provisioning-failed"
    title = "The device could not be put on the Wi-Fi network"
    status = 502
    exit_code = 8

    def __init__(
        self, detail: str, hint: str = "", *, problems: list[Problem] | None = None
    ) -> None:
        extra = {"hint": hint} if hint else {}
        super().__init__(detail + (f" — try: {hint}" if hint else ""), problems=problems, **extra)
        self.hint = hint
