"""The provisioning writer's reads for certificate-chain attestation
(services/attestation.py): which profiles a device CA vouches for. Run by a writer job,
inside its batch's transaction (store/provision_writer.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from provisiond.domain.profiles import Profile
from provisiond.store.profiles import StoredCa
from provisiond.store.provision_writer import ProvisionTx

_TX_DEVICE_CA_PROFILES = (
    "SELECT key FROM provision_profiles WHERE device_ca_id IS NOT NULL AND enabled = ?"
    " ORDER BY name"
)


@dataclass(frozen=True, slots=True)
class DeviceCa:
    """A CA that is the device CA of one or more enabled profiles (in name order)."""

    ca: StoredCa
    profiles: tuple[Profile, ...]


def tx_device_cas(tx: ProvisionTx) -> list[DeviceCa]:
    """Every device CA of an enabled profile, with its profiles (read once per batch)."""
    memo = ("device-cas",)
    if memo not in tx.memo:
        by_ca: dict[uuid.UUID, list[Profile]] = {}
        for (key,) in tx._cur.execute(tx._sql(_TX_DEVICE_CA_PROFILES), (True,)).fetchall():
            found = tx.profile_by_key(key)
            if found is not None and found[0].device_ca_id is not None:
                by_ca.setdefault(found[0].device_ca_id, []).append(found[0])
        tx.memo[memo] = [
            DeviceCa(ca, tuple(profiles))
            for ca_id, profiles in by_ca.items()
            if (ca := tx.ca(ca_id)) is not None
        ]
    cas: list[DeviceCa] = tx.memo[memo]
    return cas
