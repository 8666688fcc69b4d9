"""The I/O-bound half of each credential type, keyed by domain/credentials.py's table.

A handler says, for its type, how provisioning checks a request and issues the credential,
how a repeated provisioning that chose it proves it is the same, how ``devices rotate``
makes a fresh one, and how a client the broker asks about is matched to it. What a type's
row says it does not do (LoRaWAN keys are never provisioned nor rotated, a certificate has
no broker account) its handler leaves to the base class, which refuses or answers no;
tests/unit/test_credential_kinds.py checks every row has a handler with what it needs.
"""

# Every handler implements one interface; a type need not use every argument it is given.
# ruff: noqa: ARG002

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, NoReturn

from provisiond.domain.credentials import (
    KINDS,
    BrokerLogin,
    Credential,
    CredentialKind,
    CredentialType,
    kind_of,
    mqtt_username,
    token_selector,
)
from provisiond.domain.profiles import Profile
from provisiond.protocols import thingsboard as tb
from provisiond.services.certificate_proofs import check_possession
from provisiond.services.certificates import (
    CertificateRefused,
    device_certificate,
    fingerprint,
    is_csr,
)
from provisiond.services.hashing import hash_token, new_split_token, split_token, tokens_equal
from provisiond.services.ids import new_id
from provisiond.services.issuing import (
    Issued,
    Job,
    ProvisionAnswer,
    Value,
    issue_certificate,
    random_text,
    refuse,
)
from provisiond.services.sealing import Sealer
from provisiond.store.integrations import BrokerCredential
from provisiond.store.provision_writer import ProvisionState, ProvisionTx
from provisiond.store.uow import UnitOfWork


@dataclass(frozen=True, slots=True)
class Rotated:
    """The new credential with its secret: the only time it exists in clear."""

    credential: Credential
    serial: str
    secret: str  # the access token, or the MQTT password
    username: str | None = None  # MQTT basic
    client_id: str | None = None  # MQTT basic

    def as_dict(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {
            "type": self.credential.type.value,
            "credential_id": str(self.credential.id),
        }
        if kind_of(self.credential.type).broker_account is BrokerLogin.BASIC:
            out |= {"client_id": self.client_id, "username": self.username, "password": self.secret}
        else:
            out["secret"] = self.secret
        return out


def new_mqtt_login(serial: str) -> tuple[str, str]:
    """A generated MQTT-basic user name and password: provisioning and rotation alike."""
    return mqtt_username(serial, random_text(8)), secrets.token_urlsafe(24)


def _length_rule(shortest: int) -> str:
    return f"at least {shortest} characters (this profile's device_secret_min_length)"


def _token_is(c: BrokerCredential, token: str) -> bool:
    """Whether ``token`` is the token provisiond issued as this credential (constant time)."""
    parts = split_token(token)
    return (
        parts is not None
        and parts[0] == c.credential_id
        and c.secret_hash is not None
        and tokens_equal(c.secret_hash, hash_token(parts[1]))
    )


class CredentialHandler:
    """What a credential type does that needs more than its row: the base refuses."""

    type: ClassVar[CredentialType]

    @property
    def kind(self) -> CredentialKind:
        return KINDS[self.type]

    def _unsupported(self, what: str) -> NoReturn:
        raise TypeError(f"{self.type.value} credentials are not {what}")

    def request_problem(self, profile: Profile, request: tb.ProvisionRequest) -> str | None:
        """Why a provision request for this type cannot be answered (None: it can)."""
        return None

    def issue(self, tx: ProvisionTx, job: Job, credential: Credential) -> Issued | ProvisionAnswer:
        """The credential provisioning issues (nothing written yet), or the refusal."""
        self._unsupported("issued by provisioning")

    def reissue_problem(self, tx: ProvisionTx, job: Job, state: ProvisionState) -> str | None:
        """Why the credential a repeat chose is not the one the device holds (None: it is)."""
        self._unsupported("issued by provisioning")

    def chosen_value(self, job: Job, state: ProvisionState) -> Value:
        """What a repeat that chose its credential is answered: that credential."""
        self._unsupported("issued by provisioning")

    async def rotate(
        self,
        uow: UnitOfWork,
        *,
        credential: Credential,
        serial: str,
        active: Sequence[Credential],
        sealer: Sealer | None,
    ) -> Rotated:
        """Add ``credential`` with a fresh secret (``active``: what the device holds now)."""
        self._unsupported("rotated")

    def answers_to(self, c: BrokerCredential, name: str, *, token_as_username: bool) -> bool:
        """Whether the credential's broker account has this user name."""
        return False

    def secret_matches(
        self, c: BrokerCredential, password: str | None, *, token_as_username: bool
    ) -> bool:
        """Whether ``password`` is the credential's secret (constant time); the name was
        checked already."""
        return False


class AccessTokenHandler(CredentialHandler):
    type = CredentialType.ACCESS_TOKEN

    def request_problem(self, profile: Profile, request: tb.ProvisionRequest) -> str | None:
        shortest = profile.device_secret_min_length
        if request.token and len(request.token) < shortest:
            return f"token must be {_length_rule(shortest)}"
        return None

    def issue(self, tx: ProvisionTx, job: Job, credential: Credential) -> Issued | ProvisionAnswer:
        token = job.request.token
        if token:
            lookup = hash_token(token)
            if tx.lookup_taken(job.ctype, lookup):
                return refuse(tb.FAILURE, "this token is in use by another device", job.serial)
            return Issued(credential, token, lookup, None, broker_secret=token)
        token, verifier_hash = new_split_token(credential.id)
        return Issued(credential, token, None, verifier_hash, broker_secret=token)

    def reissue_problem(self, tx: ProvisionTx, job: Job, state: ProvisionState) -> str | None:
        token = job.request.token
        same = (
            token is not None
            and state.credential_lookup is not None
            and tokens_equal(hash_token(token), state.credential_lookup)
        )
        return None if same else self.kind.reissue

    def chosen_value(self, job: Job, state: ProvisionState) -> Value:
        return job.request.token or ""

    async def rotate(
        self,
        uow: UnitOfWork,
        *,
        credential: Credential,
        serial: str,
        active: Sequence[Credential],
        sealer: Sealer | None,
    ) -> Rotated:
        secret, verifier_hash = new_split_token(credential.id)
        await uow.credentials.add(
            credential,
            lookup=None,
            secret_hash=verifier_hash,
            secret_sealed=sealer.seal(secret) if sealer else None,
        )
        return Rotated(credential, serial, secret)

    def answers_to(self, c: BrokerCredential, name: str, *, token_as_username: bool) -> bool:
        if not token_as_username:
            return (
                c.serial == name
                if c.lookup is not None
                else token_selector(c.credential_id) == name
            )
        if c.lookup is not None:  # a token the device chose: found by its hash
            return tokens_equal(c.lookup, hash_token(name))
        return _token_is(c, name)

    def secret_matches(
        self, c: BrokerCredential, password: str | None, *, token_as_username: bool
    ) -> bool:
        if token_as_username:
            return True  # the name was the token, checked already; any password (ThingsBoard)
        if password is None:
            return False
        if c.lookup is not None:  # a token the device chose
            return tokens_equal(c.lookup, hash_token(password))
        return _token_is(c, password)


class MqttBasicHandler(CredentialHandler):
    type = CredentialType.MQTT_BASIC

    def request_problem(self, profile: Profile, request: tb.ProvisionRequest) -> str | None:
        if not (request.username or request.password or request.client_id):
            return None
        if not request.username or not request.password:
            return "MQTT_BASIC credentials chosen by the device need username and password"
        shortest = profile.device_secret_min_length
        if len(request.password) < shortest:
            return f"password must be {_length_rule(shortest)}"
        return None

    def issue(self, tx: ProvisionTx, job: Job, credential: Credential) -> Issued | ProvisionAnswer:
        request, serial = job.request, job.serial
        if request.username and request.password:
            username, password = request.username, request.password
            # another device's serial is the broker user name of a token that device chose
            if tx.lookup_taken(job.ctype, username) or (
                username != serial and tx.serial_taken(username)
            ):
                return refuse(tb.FAILURE, "this MQTT user name is in use by another device", serial)
        else:
            username, password = new_mqtt_login(serial)
        client_id = request.client_id or serial
        return Issued(
            credential,
            {"clientId": client_id, "userName": username, "password": password},
            username,
            hash_token(password),
            client_id,
            broker_secret=password,
        )

    def reissue_problem(self, tx: ProvisionTx, job: Job, state: ProvisionState) -> str | None:
        request = job.request
        same = (
            request.username is not None
            and request.password is not None
            and request.username == state.credential_lookup
            and state.credential_secret_hash is not None
            and tokens_equal(hash_token(request.password), state.credential_secret_hash)
            and (request.client_id or job.serial) == state.credential_client_id
        )
        return None if same else self.kind.reissue

    def chosen_value(self, job: Job, state: ProvisionState) -> Value:
        return {
            "clientId": state.credential_client_id,
            "userName": job.request.username,
            "password": job.request.password,
        }

    async def rotate(
        self,
        uow: UnitOfWork,
        *,
        credential: Credential,
        serial: str,
        active: Sequence[Credential],
        sealer: Sealer | None,
    ) -> Rotated:
        """A new user name and password, bound to the client id the device had."""
        old = next((c for c in reversed(active) if c.type is self.type), None)
        client_id = (await uow.credentials.client_id(old.id) if old else None) or serial
        username, password = new_mqtt_login(serial)
        await uow.credentials.add(
            credential,
            lookup=username,
            secret_hash=hash_token(password),
            client_id=client_id,
            secret_sealed=sealer.seal(password) if sealer else None,
        )
        return Rotated(credential, serial, password, username, client_id)

    def answers_to(self, c: BrokerCredential, name: str, *, token_as_username: bool) -> bool:
        return c.lookup == name

    def secret_matches(
        self, c: BrokerCredential, password: str | None, *, token_as_username: bool
    ) -> bool:
        if password is None:
            return False
        return c.secret_hash is not None and tokens_equal(c.secret_hash, hash_token(password))


class X509Handler(CredentialHandler):
    type = CredentialType.X509

    def request_problem(self, profile: Profile, request: tb.ProvisionRequest) -> str | None:
        if not request.certificate:
            return "X509_CERTIFICATE needs a CSR or a certificate (PEM) in hash"
        if is_csr(request.certificate) and profile.ca_id is None:
            return (
                "this profile has no certificate authority to sign CSRs; send a certificate instead"
            )
        return None

    def issue(self, tx: ProvisionTx, job: Job, credential: Credential) -> Issued | ProvisionAnswer:
        return issue_certificate(tx, job, credential)

    def reissue_problem(self, tx: ProvisionTx, job: Job, state: ProvisionState) -> str | None:
        """A certificate needs its proof of possession again: it is public."""
        request, profile = job.request, job.profile
        try:
            cert = device_certificate(request.certificate or "", now=job.now)
            if fingerprint(cert) != state.credential_lookup:
                return self.kind.reissue
            check_possession(
                cert,
                request,
                serial=job.serial,
                now=job.now,
                device_ca=tx.ca(profile.device_ca_id) if profile.device_ca_id else None,
            )
        except CertificateRefused as err:
            return str(err)
        return None

    def chosen_value(self, job: Job, state: ProvisionState) -> Value:
        return job.request.certificate or ""


class LorawanHandler(CredentialHandler):
    """Root keys come from an import or a key replacement (services/lorawan_import.py,
    services/credentials.py), not from provisioning, and have no broker account."""

    type = CredentialType.LORAWAN


HANDLERS: Mapping[CredentialType, CredentialHandler] = {
    h.type: h for h in (AccessTokenHandler(), MqttBasicHandler(), X509Handler(), LorawanHandler())
}


def handler(ctype: CredentialType | str) -> CredentialHandler:
    """The handler of a type (or of its stored value)."""
    return HANDLERS[CredentialType(ctype)]


def make_credential(tx: ProvisionTx, job: Job, device_id: uuid.UUID) -> Issued | ProvisionAnswer:
    """The credential provisioning issues the device (nothing written yet), or the refusal."""
    credential = Credential(new_id(), device_id, job.ctype, job.now)
    return HANDLERS[job.ctype].issue(tx, job, credential)
