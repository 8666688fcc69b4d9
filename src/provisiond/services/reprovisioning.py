"""A device that is provisioned already asks again: a lost answer, a factory reset — or
somebody holding the profile's secret (it is in every firmware image) and the serial (it is
on the label). Only a proof that the first requester alone can hold gets an answer; the
profile's reprovisioning policy says which proofs count.

``never`` (the default, ThingsBoard's contract): every repeat is answered ``FAILURE``
"Failed to provision device!".

``with-proof``: a repeat is answered with the credential the device already has when it
proves it is the first requester —

- ``retryKey``: the key its first request carried (services/retry_keys.py); the answer is
  that first answer, decrypted with the key;
- the same credential it chose (the same token; the same MQTT user name, password and
  client id; the same certificate, with its proof of possession);
- a CSR for the key of the certificate it was issued: the answer is that certificate.

Nothing is revoked or issued: a repeat can never kill a credential the device (or another
request in flight for it) already holds.

``factory-reset``: the same, and a device that proves itself gets *new* credentials, its
old ones revoked — with its retry key when the credential it protects is gone (revoked by
an operator) or the device asks for another type, or with ``reprovisionProof``: a signature
by the key of its current certificate (``currentCertificate``), for a device whose key
survives the reset (a secure element).

Every repeat, answered or refused, is one transaction with its audit event
(``device.provisioned`` with ``repeated``, or ``device.reprovision-refused`` with the reason).
"""

from __future__ import annotations

from typing import Any

from cryptography import x509

from provisiond.domain.credentials import CredentialType
from provisiond.domain.events import EventType
from provisiond.domain.profiles import ReprovisionPolicy
from provisiond.protocols import thingsboard as tb
from provisiond.services.certificate_proofs import verify_signature
from provisiond.services.certificates import (
    CheckedCsr,
    fingerprint,
    public_key_sha256,
)
from provisiond.services.credential_kinds import HANDLERS, make_credential
from provisiond.services.hashing import tokens_equal
from provisiond.services.issuing import (
    Job,
    ProvisionAnswer,
    Value,
    chose,
    job_event,
    provisioned,
    refuse,
    revoke_others,
    store_credential,
    succeed,
)
from provisiond.services.ratelimit import log_refused
from provisiond.services.retry_keys import hash_retry_key, open_answer
from provisiond.store.provision_writer import ProvisionState, ProvisionTx


def refuse_repeat(tx: ProvisionTx, job: Job, state: ProvisionState, reason: str) -> ProvisionAnswer:
    """ThingsBoard's answer to a name that exists, and the audit event saying why."""
    job_event(
        tx,
        job,
        EventType.DEVICE_REPROVISION_REFUSED,
        state.device_id,
        state.group_id,
        reason=reason,
    )
    log_refused("provisioning", f"device {job.serial} asked again: {reason}", source=job.source)
    return refuse(tb.FAILURE, tb.FAILED, job.serial)


def answer_repeat(tx: ProvisionTx, job: Job, state: ProvisionState) -> ProvisionAnswer:  # noqa: C901 - one branch per proof a repeated provisioning may bring (issue 19's policy)
    """The answer to a provisioning request for a device provisioned already."""
    policy = job.profile.reprovision
    if policy is ReprovisionPolicy.NEVER:
        return refuse_repeat(tx, job, state, "already provisioned")
    if state.profile_id != job.profile.id:
        return refuse_repeat(tx, job, state, "provisioned by another profile")
    request, current = job.request, state.credential
    held = current is not None and current.revoked_at is None and current.type is job.ctype
    if request.retry_key is not None and state.retry_hash is not None:
        if not tokens_equal(hash_retry_key(request.retry_key), state.retry_hash):
            return refuse_repeat(tx, job, state, "not its retry key")
        value = (
            open_answer(request.retry_key, state.device_id, state.answer_sealed or "")
            if held
            else None
        )
        if value is not None:
            return confirm_repeat(tx, job, state, value, "retry-key")
        if policy is ReprovisionPolicy.FACTORY_RESET:
            return replace_credentials(tx, job, state, "retry-key")
        return refuse_repeat(
            tx,
            job,
            state,
            "the credential its retry key protects was revoked, or another type is asked for",
        )
    if held and chose(request):
        chosen = HANDLERS[job.ctype]  # the same credential again, by its type's rule
        problem = chosen.reissue_problem(tx, job, state)
        if problem:
            return refuse_repeat(tx, job, state, problem)
        return confirm_repeat(tx, job, state, chosen.chosen_value(job, state), "same-credential")
    if held and isinstance(job.csr, CheckedCsr) and current is not None:
        pem = tx.certificate(current.id)
        if pem is not None and _same_key(pem, job.csr):
            return confirm_repeat(tx, job, state, pem, "same-key")
    if policy is ReprovisionPolicy.FACTORY_RESET and request.reprovision_proof is not None:
        problem = _current_certificate_problem(job, state)
        if problem:
            return refuse_repeat(tx, job, state, problem)
        return replace_credentials(tx, job, state, "current-certificate")
    return refuse_repeat(tx, job, state, "no proof that it is the first requester")


def _same_key(pem: str, csr: CheckedCsr) -> bool:
    """Whether a certificate holds the key of a CSR."""
    held = x509.load_pem_x509_certificate(pem.encode()).public_key()
    return public_key_sha256(held) == public_key_sha256(csr.public_key)  # type: ignore[arg-type]


def confirm_repeat(
    tx: ProvisionTx, job: Job, state: ProvisionState, value: Value, proof: str
) -> ProvisionAnswer:
    """The device proved it: the answer is the credential it already has."""
    job_event(
        tx,
        job,
        EventType.DEVICE_PROVISIONED,
        state.device_id,
        state.group_id,
        repeated=True,
        proof=proof,
    )
    return succeed(job, value)


def replace_credentials(
    tx: ProvisionTx, job: Job, state: ProvisionState, proof: str
) -> ProvisionAnswer:
    """A factory reset: new credentials, every other one revoked."""
    issued = make_credential(tx, job, state.device_id)
    if isinstance(issued, ProvisionAnswer):
        return issued
    store_credential(tx, job, issued, state.group_id)
    tx.mark_provisioned(
        state.device_id,
        provisioned(job, issued),
        replacing=state.credential.id if state.credential else None,
        now=job.now,
    )
    revoked = revoke_others(
        tx, job, state.device_id, state.group_id, keep=issued.credential.id, reason="factory reset"
    )
    job_event(
        tx,
        job,
        EventType.DEVICE_PROVISIONED,
        state.device_id,
        state.group_id,
        factory_reset=True,
        proof=proof,
        revoked_credential_ids=[str(c) for c in revoked],
    )
    return succeed(job, issued.value)


def _current_certificate_problem(job: Job, state: ProvisionState) -> str | None:
    """Why ``reprovisionProof`` does not prove the device holds its current certificate's
    key (None: it does)."""
    current, request = state.credential, job.request
    if current is None or current.revoked_at is not None or current.type is not CredentialType.X509:
        return "reprovisionProof needs an active certificate to prove"
    try:
        cert: Any = x509.load_pem_x509_certificate((request.current_certificate or "").encode())
    except ValueError:
        return "currentCertificate is not a PEM certificate"
    if fingerprint(cert) != state.credential_lookup:
        return "currentCertificate is not the device's certificate"
    message = tb.proof_message(
        tb.REPROVISION_PROOF, request.key, request.device_name, request.certificate
    )
    if not verify_signature(cert, request.reprovision_proof or "", message):
        return "reprovisionProof is not a signature by the current certificate's key"
    return None
