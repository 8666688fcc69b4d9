"""Claims: a person taking ownership of a registered device, with proof of possession.

A claim starts when a signed-in user who may claim (admin, installer) scans or types a
device's serial. The device's profile (or the instance default) says what proof it needs:

    none            the device is claimed at once (the simple flow)
    button          the device reports a button press inside the claim window
    code            the user types the claim code printed on the label
    device-secret   the device opened a window with a secret (ThingsBoard's device
                    claiming); the user types that secret

A claim is *live* while open or proven and its window has not closed; at most one live
claim per device exists. It ends completed (the device is claimed), expired, failed (too
many wrong codes) or cancelled.

    open --prove--> proven --finish--> completed
    open|proven --window closes--> expired       open --too many wrong codes--> failed

These moves are one table, :data:`CLAIM_TRANSITIONS` (as the device lifecycle's): services ask
:data:`CLAIM_LIFECYCLE` whether a claim may move, and the store's guarded update of a claim's
status takes the statuses it moves from (and the one it writes) from it.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from provisiond.domain.state_machine import StateMachine
from provisiond.errors import ClaimClosed, InvalidInput, Problem


class ClaimProof(StrEnum):
    NONE = "none"
    BUTTON = "button"
    CODE = "code"
    DEVICE_SECRET = "device-secret"


class ReleasePolicy(StrEnum):
    KEEP = "keep"  # the next owner sees the device's history and tags
    RESET = "reset"  # tags are removed; the timeline starts again at the release


class ClaimTarget(StrEnum):
    ME = "me"  # the user owns the device
    GROUP = "group"  # the user's group owns it (placed at a site below it)


class ClaimStatus(StrEnum):
    OPEN = "open"
    PROVEN = "proven"
    COMPLETED = "completed"
    EXPIRED = "expired"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ClaimAction(StrEnum):
    PROVE = "prove"  # the device's button, the claim code or the device's secret
    FINISH = "finish"  # the user names and places the device: it is claimed
    EXPIRE = "expire"  # the window closed
    FAIL = "fail"  # too many wrong codes
    CANCEL = "cancel"  # the user gave up


CLAIM_TRANSITIONS: dict[tuple[ClaimStatus, ClaimAction], ClaimStatus] = {
    (ClaimStatus.OPEN, ClaimAction.PROVE): ClaimStatus.PROVEN,
    (ClaimStatus.OPEN, ClaimAction.EXPIRE): ClaimStatus.EXPIRED,
    (ClaimStatus.OPEN, ClaimAction.FAIL): ClaimStatus.FAILED,
    (ClaimStatus.OPEN, ClaimAction.CANCEL): ClaimStatus.CANCELLED,
    (ClaimStatus.PROVEN, ClaimAction.FINISH): ClaimStatus.COMPLETED,
    (ClaimStatus.PROVEN, ClaimAction.EXPIRE): ClaimStatus.EXPIRED,
    # A wrong code counted while another tab proved the claim still fails it.
    (ClaimStatus.PROVEN, ClaimAction.FAIL): ClaimStatus.FAILED,
    (ClaimStatus.PROVEN, ClaimAction.CANCEL): ClaimStatus.CANCELLED,
}


def _refuse(status: ClaimStatus, action: ClaimAction) -> ClaimClosed:
    return ClaimClosed(f"cannot {action} a claim that is {status}")


CLAIM_LIFECYCLE = StateMachine(CLAIM_TRANSITIONS, _refuse)

#: The statuses a claim may leave: open and proven. At most one live claim per device.
LIVE = CLAIM_LIFECYCLE.active()
CLAIM_WINDOW_MIN = 30
CLAIM_WINDOW_MAX = 24 * 3600
#: Wrong claim codes or secrets a claim survives; the next one fails it.
WRONG_PROOFS_MAX = 5
#: Longest window a device may open itself (ThingsBoard's ``durationMs``).
DEVICE_WINDOW_MAX_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class Claim:
    id: uuid.UUID
    device_id: uuid.UUID
    serial: str
    user_id: uuid.UUID
    target: ClaimTarget
    proof: ClaimProof
    status: ClaimStatus
    started_at: datetime
    expires_at: datetime
    proven_at: datetime | None = None
    ended_at: datetime | None = None
    code_attempts: int = 0

    def live(self, now: datetime) -> bool:
        return self.status in LIVE and now < self.expires_at

    def seconds_left(self, now: datetime) -> int:
        return max(0, int((self.expires_at - now).total_seconds()))

    def shown_status(self, now: datetime) -> ClaimStatus:
        """The status as of ``now``: a live claim whose window closed is expired."""
        if self.status in LIVE and now >= self.expires_at:
            return ClaimStatus.EXPIRED
        return self.status


def _fail(field: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{field} {problem}", problems=[Problem(problem, field=field)])


def parse_claim_proof(text: str, *, field: str = "claim_proof") -> ClaimProof:
    try:
        return ClaimProof(text.strip().lower())
    except ValueError:
        allowed = ", ".join(p.value for p in ClaimProof)
        raise _fail(field, f"{text!r} is not a claim proof; use one of {allowed}") from None


def parse_release_policy(text: str, *, field: str = "release_policy") -> ReleasePolicy:
    try:
        return ReleasePolicy(text.strip().lower())
    except ValueError:
        raise _fail(field, f"{text!r} is not a release policy; use keep or reset") from None


def parse_target(text: str, *, field: str = "target") -> ClaimTarget:
    try:
        return ClaimTarget(text.strip().lower())
    except ValueError:
        raise _fail(field, "must be 'me' (my account) or 'group' (my group)") from None


def check_claim_window(seconds: int, *, field: str = "claim_window") -> int:
    if not CLAIM_WINDOW_MIN <= seconds <= CLAIM_WINDOW_MAX:
        raise _fail(field, f"must be between {CLAIM_WINDOW_MIN} and {CLAIM_WINDOW_MAX} seconds")
    return seconds


# ----------------------------------------------------------------------------- claim codes
# Typed by people from a label: no look-alike characters (0/O, 1/I/L), grouped by four, with
# a check character that catches one wrong or two swapped characters before a try is spent.

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # 31 characters: a prime, for the check
_CODE_INDEX = {c: i for i, c in enumerate(CODE_ALPHABET)}
CODE_LENGTH = 12  # 11 random characters (54 bits) and the check character


def _check_char(body: str) -> str:
    total = sum((i + 1) * _CODE_INDEX[c] for i, c in enumerate(body))
    return CODE_ALPHABET[total % len(CODE_ALPHABET)]


def new_claim_code(length: int = CODE_LENGTH) -> str:
    body = "".join(secrets.choice(CODE_ALPHABET) for _ in range(length - 1))
    code = body + _check_char(body)
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


_SEPARATORS = str.maketrans("", "", " \t\n\r-")
_CODE_SET = frozenset(CODE_ALPHABET)


def normalise_claim_code(text: str, *, field: str = "code") -> str:
    """The canonical form of a typed claim code (upper case, no spaces or dashes), checked."""
    raw = text.upper().translate(_SEPARATORS)
    if not raw:
        raise _fail(field, "is empty")
    if not _CODE_SET.issuperset(raw):
        # People type O for 0 and I for 1: neither is in the alphabet, so the mistake is known.
        bad = next(c for c in raw if c not in _CODE_SET)
        raise _fail(field, f"holds {bad!r}, which no claim code has (codes use {CODE_ALPHABET})")
    if len(raw) < 2 or _check_char(raw[:-1]) != raw[-1]:
        raise _fail(field, "is mistyped: its check character does not match")
    return raw
