"""Which stored credentials answer to an MQTT user name.

The naming rule is domain/broker.py's; this applies it to the credentials in the registry,
for the account keepers (which credentials want the names a round of accounts wants) and for
EMQX's hooks (which credential a connecting client names). Several credentials may answer to
one name: the one issued first holds it (:func:`holder`), everywhere alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from provisiond.domain.credentials import selector_credential
from provisiond.domain.serials import serial_problem
from provisiond.services.credential_kinds import handler
from provisiond.services.hashing import hash_token, split_token
from provisiond.store.integrations import BrokerCredential, NameKeys


def name_keys(names: Iterable[str], *, token_as_username: bool) -> NameKeys:
    """What finds, by index, every active credential that may answer to one of ``names``."""
    names = list(dict.fromkeys(names))
    ids: list[uuid.UUID] = []
    hashes: list[str] = []
    serials: list[str] = []
    for name in names:
        if token_as_username:
            parts = split_token(name)
            if parts is not None:
                ids.append(parts[0])
            hashes.append(hash_token(name))
        else:
            credential_id = selector_credential(name)
            if credential_id is not None:
                ids.append(credential_id)
            if serial_problem(name) is None:
                serials.append(name)
    return NameKeys(ids, names, hashes, serials)


def answers_to(c: BrokerCredential, name: str, *, token_as_username: bool) -> bool:
    """Whether the credential's account has this user name (its type's rule,
    services/credential_kinds.py). With ``token_as_username`` a token's name is the token
    itself, so this checks the token (in constant time)."""
    return handler(c.type).answers_to(c, name, token_as_username=token_as_username)


def rank(c: BrokerCredential) -> tuple[datetime, uuid.UUID]:
    """Issued first holds the name; the smaller id breaks a tie."""
    return (c.created_at, c.credential_id)


def holder(
    candidates: Iterable[BrokerCredential], name: str, *, token_as_username: bool
) -> BrokerCredential | None:
    """The credential that holds ``name``: the first issued of those answering to it."""
    answering = [c for c in candidates if answers_to(c, name, token_as_username=token_as_username)]
    return min(answering, key=rank) if answering else None
