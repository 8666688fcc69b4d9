"""The profile pages' forms, read: posted fields into the ``ProfileSpec`` and
``ProfileChanges`` the CLI and the API build too, and the services' refusals back onto the
fields they concern. No rule is decided here: a field the form cannot even read (a number
that is not one, a file that is not text) is reported on its field; every other check is the
service's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData, UploadFile

from provisiond.domain.claims import CLAIM_WINDOW_MAX, CLAIM_WINDOW_MIN, ClaimProof, ReleasePolicy
from provisiond.domain.credentials import PROVISIONABLE
from provisiond.domain.limits import DEVICE_SECRET_MIN_LENGTH_DEFAULT, DEVICE_SECRET_MIN_LENGTH_MAX
from provisiond.domain.profiles import (
    DEFAULT_RATE_PER_MINUTE,
    DEFAULT_SOURCE_RATE_PER_MINUTE,
    Profile,
    ProfileChanges,
    ProfileSpec,
    ReprovisionPolicy,
    Strategy,
)
from provisiond.domain.tts import MAC_VERSIONS, PHY_VERSIONS
from provisiond.errors import (
    CaNotFound,
    Forbidden,
    GroupNotFound,
    InvalidInput,
    ModelNotFound,
    Problem,
    ProfileExists,
    ProvisiondError,
)
from provisiond.web.pages.rendering import field_errors

# A PEM public key is a few hundred bytes; a file much larger is not one.
PEM_FILE_MAX = 16 * 1024

#: The create form's text fields, as posted (and shown again when refused).
CREATE_FIELDS = (
    "name",
    "strategy",
    "group",
    "model",
    "default_credential",
    "key",
    "rate_per_minute",
    "source_rate_per_minute",
    "reprovision",
    "device_secret_min_length",
    "jwt_public_key",
    "ca",
    "certificate_days",
    "device_ca",
    "claim_proof",
    "claim_window",
    "release_policy",
    "tts_application",
    "frequency_plan",
    "lorawan_version",
    "lorawan_phy_version",
    "class_b",
    "class_c",
)

CREATE_DEFAULTS: dict[str, Any] = {
    "strategy": Strategy.ALLOW_CREATE.value,
    "default_credential": PROVISIONABLE[0].value,
    "credentials": [],
    "rate_per_minute": str(DEFAULT_RATE_PER_MINUTE),
    "source_rate_per_minute": str(DEFAULT_SOURCE_RATE_PER_MINUTE),
    "reprovision": ReprovisionPolicy.NEVER.value,
    "device_secret_min_length": str(DEVICE_SECRET_MIN_LENGTH_DEFAULT),
    "certificate_days": "365",
    "release_policy": ReleasePolicy.KEEP.value,
}

_STRATEGIES = [
    (Strategy.ALLOW_CREATE.value, "allow-create (new devices are created)"),
    (Strategy.PRE_PROVISIONED.value, "pre-provisioned (registered devices only)"),
]
_REPROVISION = [
    (ReprovisionPolicy.NEVER.value, "never (a device provisions once)"),
    (ReprovisionPolicy.WITH_PROOF.value, "with-proof (a proven repeat)"),
    (ReprovisionPolicy.FACTORY_RESET.value, "factory-reset (new credentials, proven)"),
]
_PROOFS = [p.value for p in ClaimProof]
_PROOF_HELP = (
    "How people prove they hold a device to claim it. none: they name and place it at once; "
    "button: a press on the device; code: the code printed on the label; device-secret: "
    "a window the device opens with a secret."
)
_RELEASE = [
    (ReleasePolicy.KEEP.value, "keep"),
    (ReleasePolicy.RESET.value, "reset"),
]
_TRISTATE = [("", "the instance's setting"), ("yes", "yes"), ("no", "no")]


@dataclass(frozen=True, slots=True)
class Choices:
    """What the profile forms offer: the admin's groups, the catalogue, the CAs."""

    groups: list[str]
    models: list[tuple[str, str]]
    signing_cas: list[str]  # CAs whose key provisiond holds (they sign CSRs)
    cas: list[str]  # every CA (a device CA vouches for certificates devices bring)
    default_proof: str
    default_window: int

    def options(self) -> dict[str, Any]:
        none = [("", "none")]
        return {
            "groups": [(g, g) for g in self.groups],
            "models": [("", "none"), *self.models],
            "strategies": _STRATEGIES,
            "credential_types": [t.value for t in PROVISIONABLE],
            "credential_pairs": [(t.value, t.value) for t in PROVISIONABLE],
            "reprovision": _REPROVISION,
            "signing_cas": none + [(n, n) for n in self.signing_cas],
            "cas": none + [(n, n) for n in self.cas],
            "proofs": [("", f"the default ({self.default_proof})")] + [(p, p) for p in _PROOFS],
            "proof_help": _PROOF_HELP,
            "release": _RELEASE,
            "mac_versions": [("", "the instance's setting")] + [(v, v) for v in MAC_VERSIONS],
            "phy_versions": [("", "the instance's setting")] + [(v, v) for v in PHY_VERSIONS],
            "tristate": _TRISTATE,
            "window_min": CLAIM_WINDOW_MIN,
            "window_max": CLAIM_WINDOW_MAX,
            "default_window": self.default_window,
            "secret_min_max": DEVICE_SECRET_MIN_LENGTH_MAX,
        }


class _Reader:
    """Reads a posted form's fields. A field it cannot read (a number that is not one, a
    file that is not text) gets its message here and a value the service refuses in any
    case (0 for a number, a PEM that is none), so the service still checks every other
    field and reports them all at once, and writes nothing."""

    UNREADABLE = 0
    NOT_A_PEM = "-----BEGIN PUBLIC KEY-----\n(unreadable)\n-----END PUBLIC KEY-----"

    def __init__(self, form: FormData) -> None:
        self.form = form
        self.unread: dict[str, str] = {}

    def text(self, name: str) -> str:
        value = self.form.get(name, "")
        return value if isinstance(value, str) else ""

    def optional(self, name: str) -> str | None:
        return self.text(name).strip() or None

    def number(self, name: str, *, optional: bool = False) -> int | None:
        text = self.text(name).strip()
        if not text and optional:
            return None
        try:
            return int(text)
        except ValueError:
            self.unread[name] = f"{text[:40]!r} is not a whole number" if text else "is empty"
            return self.UNREADABLE

    def count(self, name: str) -> int:
        return self.number(name) or self.UNREADABLE

    def tristate(self, name: str) -> bool | None:
        return {"yes": True, "no": False}.get(self.text(name))

    async def pem(self, name: str, file_name: str) -> str | None:
        """A PEM pasted in ``name`` or uploaded as ``file_name`` (not both)."""
        pasted = self.text(name).strip()
        upload = self.form.get(file_name)
        uploaded = ""
        if isinstance(upload, UploadFile) and upload.filename:
            raw = await upload.read(PEM_FILE_MAX + 1)
            if len(raw) > PEM_FILE_MAX:
                self.unread[name] = "the file is too large for a public key"
            else:
                try:
                    uploaded = raw.decode("ascii").strip()
                except UnicodeDecodeError:
                    self.unread[name] = "the file is not a PEM text file"
        if pasted and uploaded:
            self.unread[name] = "paste a key or choose a file, not both"
        if name in self.unread:
            return self.NOT_A_PEM
        return pasted or uploaded or None


def posted_values(form: FormData, names: tuple[str, ...]) -> dict[str, Any]:
    """The form's text fields (to show again when refused); never a secret."""
    values: dict[str, Any] = {n: str(v) for n in names if isinstance(v := form.get(n, ""), str)}
    values["credentials"] = [str(v) for v in form.getlist("credentials")]
    return values


async def spec_of(form: FormData) -> tuple[ProfileSpec, dict[str, str]]:
    """The create form as a ``ProfileSpec``, and the messages of the fields it could not
    read (the service refuses the spec then: put them over its own)."""
    read = _Reader(form)
    default = read.text("default_credential")
    extra = [str(v) for v in form.getlist("credentials") if str(v) != default]
    spec = ProfileSpec(
        name=read.text("name"),
        strategy=read.text("strategy"),
        key=read.optional("key"),
        secret=read.optional("secret"),
        group=read.optional("group"),
        model=read.optional("model"),
        credentials=[default, *extra] if default else extra,
        rate_per_minute=read.count("rate_per_minute"),
        source_rate_per_minute=read.count("source_rate_per_minute"),
        jwt_public_key=await read.pem("jwt_public_key", "jwt_public_key_file"),
        ca=read.optional("ca"),
        certificate_days=read.count("certificate_days"),
        claim_proof=read.optional("claim_proof"),
        claim_window=read.number("claim_window", optional=True),
        release_policy=read.text("release_policy"),
        lorawan={
            "application_id": read.optional("tts_application"),
            "frequency_plan_id": read.optional("frequency_plan"),
            "lorawan_version": read.optional("lorawan_version"),
            "lorawan_phy_version": read.optional("lorawan_phy_version"),
            "supports_class_b": read.tristate("class_b"),
            "supports_class_c": read.tristate("class_c"),
        },
        reprovision=read.text("reprovision"),
        device_secret_min_length=read.count("device_secret_min_length"),
        device_ca=read.optional("device_ca"),
    )
    return spec, read.unread


#: The edit form's fields, as posted (and shown again when refused).
EDIT_FIELDS = (
    "reprovision",
    "device_secret_min_length",
    "device_ca",
    "ca",
    "certificate_days",
    "claim_proof",
    "claim_window",
    "release_policy",
)


def changes_of(form: FormData, profile: Profile) -> tuple[ProfileChanges, dict[str, str]]:
    """The edit form as ``ProfileChanges`` — an empty CA removes it, an empty claim proof
    or window returns it to the instance's default — and the messages of the fields it
    could not read (as :func:`spec_of`)."""
    read = _Reader(form)
    device_ca, ca = read.optional("device_ca"), read.optional("ca")
    proof, window = read.optional("claim_proof"), read.number("claim_window", optional=True)
    changes = ProfileChanges(
        reprovision=read.text("reprovision"),
        device_secret_min_length=read.count("device_secret_min_length"),
        device_ca=device_ca,
        clear_device_ca=device_ca is None and profile.device_ca_name is not None,
        ca=ca,
        clear_ca=ca is None and profile.ca_name is not None,
        certificate_days=read.count("certificate_days"),
        claim_proof=proof,
        clear_claim_proof=proof is None and profile.claim_proof is not None,
        claim_window=window,
        clear_claim_window=window is None and profile.claim_window_seconds is not None,
        release_policy=read.text("release_policy"),
    )
    return changes, read.unread


async def jwt_key_of(form: FormData) -> str | None:
    """The registration-token key form: the PEM given, or None to remove it."""
    read = _Reader(form)
    if read.text("remove") == "yes":
        return None
    pem = await read.pem("jwt_public_key", "jwt_public_key_file")
    if read.unread or pem is None:
        message = read.unread.get("jwt_public_key", "paste a PEM public key or choose its file")
        problem = Problem(message, field="jwt_public_key")
        raise InvalidInput(str(problem), problems=[problem])
    return pem


# What an unreadable confirmation replaces: a time no secret was set at.
_NO_SECRET_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def replacing_of(form: FormData) -> datetime:
    """When the secret that the rotation form was shown with was set (its ``rotated_at``);
    an unreadable one matches no secret (the rotation is refused as made meanwhile)."""
    text = form.get("rotated_at", "")
    try:
        found = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        found = None
    return found if found is not None and found.tzinfo is not None else _NO_SECRET_TIME


def errors_of(err: ProvisiondError) -> dict[str, str]:
    """The messages of a refused profile form by field: the services' problems name their
    fields; what they refuse by name (a taken name or key, a group, model or CA not found)
    is put on the field that named it."""
    field: str | None = None
    if isinstance(err, ProfileExists):
        field = str(err.extra.get("field", "name"))
    elif isinstance(err, GroupNotFound | Forbidden):
        field = "group"  # the only thing an admin's profile form may be refused for
    elif isinstance(err, ModelNotFound):
        field = "model"
    elif isinstance(err, CaNotFound):
        field = "device_ca" if "(device_ca)" in err.detail else "ca"
    if field is None:
        return field_errors(err)
    return {field: err.detail}


def values_of(profile: Profile) -> dict[str, Any]:
    """The edit form's values: the profile's own."""
    return {
        "reprovision": profile.reprovision.value,
        "device_secret_min_length": str(profile.device_secret_min_length),
        "device_ca": profile.device_ca_name or "",
        "ca": profile.ca_name or "",
        "certificate_days": str(profile.certificate_days),
        "claim_proof": profile.claim_proof.value if profile.claim_proof else "",
        "claim_window": str(profile.claim_window_seconds or ""),
        "release_policy": profile.release_policy.value,
    }
