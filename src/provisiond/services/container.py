"""What the adapters get from the composition root: the typed interface of
``bootstrap.Container``, which declares it as its base, so mypy checks the two agree.

The adapters (web/ and transports/) sit below the composition root and may not
import it (the layers contract); they name this interface instead.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from provisiond.services.accounts import SessionPolicy
from provisiond.services.certificates import SignerCache
from provisiond.services.claim_hub import ClaimHub
from provisiond.services.claims.policy import ClaimPolicy
from provisiond.services.destinations import DestinationGuard
from provisiond.services.metrics import Counts
from provisiond.services.ocsp import OcspResponder
from provisiond.services.provisioning import Provisioner
from provisiond.services.ratelimit import RateLimiter
from provisiond.services.sealing import Sealer
from provisiond.settings import Settings
from provisiond.store.uow import UnitOfWork


class Container(Protocol):
    """The settings, policies and shared objects of one running provisiond."""

    settings: Settings
    limiter: RateLimiter
    signers: SignerCache
    hub: ClaimHub
    counts: Counts  # what happened, counted (the server's metrics)

    def uow(self) -> UnitOfWork: ...

    @property
    def provisioner(self) -> Provisioner:
        """The one entry point of every device-facing transport."""
        ...

    @property
    def claim_policy(self) -> ClaimPolicy: ...

    @property
    def session_policy(self) -> SessionPolicy: ...

    @property
    def ocsp(self) -> OcspResponder: ...

    def now(self) -> datetime: ...

    def background(self) -> AbstractAsyncContextManager[object]:
        """The background loops of a server (outbox, broker accounts, webhooks)."""
        ...

    @property
    def broker_sealer(self) -> Sealer | None: ...

    @property
    def sealer(self) -> Sealer: ...

    @property
    def webhook_guard(self) -> DestinationGuard: ...

    @property
    def broker_name_keeper(self) -> Callable[[str], str] | None:
        """How the EMQX hook records a user name at a credential's first use (None: not)."""
        ...
