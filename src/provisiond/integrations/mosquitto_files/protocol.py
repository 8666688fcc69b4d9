"""Mosquitto's password file and ACL file (``password_file``, ``acl_file``), sans-IO.

provisiond owns the end of each file: everything after :data:`MARKER` is written by it,
everything before is the operator's (administrative users, other clients) and is kept as it
is. Registries sharing the files (``broker__namespace``) each own a section, from its own
marker line (:func:`marker`) to the next provisiond marker: the other sections are kept
as they are, like the operator's part.

In the password file each account is one line, ``username:$7$101$<salt>$<hash>`` —
PBKDF2-HMAC-SHA512, 101 iterations, a 12-byte salt, as ``mosquitto_passwd`` writes it for
Mosquitto 2.0. In the ACL file each account is a ``user`` line followed by its ``topic``
lines. Mosquitto reads both again when it is sent SIGHUP.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

_WRITTEN = "the lines below are written by provisiond"  # in every section's marker
MARKER = f"# provisiond: {_WRITTEN} (broker__kind=mosquitto-files). Edit above this line only."
NAMESPACED = "# provisiond namespace {namespace}: " + _WRITTEN
ITERATIONS = 101
SALT_BYTES = 12


@dataclass(frozen=True, slots=True)
class Entry:
    """One account in provisiond's part of the files."""

    username: str
    hashed: str  # the password line's part after the colon
    topics: tuple[str, ...]  # granted readwrite


@dataclass
class Files:
    """Both files, split into the operator's part and provisiond's accounts (in order)."""

    password_head: str = ""
    acl_head: str = ""
    accounts: dict[str, Entry] = field(default_factory=dict)  # by user name
    namespace: str = ""
    password_tail: str = ""  # other registries' sections after this one, kept as they are
    acl_tail: str = ""
    others: set[str] = field(default_factory=set)  # user names in other registries' sections


def marker(namespace: str = "") -> str:
    """The line that starts a registry's section (:data:`MARKER` without a namespace)."""
    if not namespace:
        return MARKER
    return NAMESPACED.format(namespace=namespace) + (
        " (broker__kind=mosquitto-files, broker__namespace). Edit above the first such line only."
    )


def _is_marker(line: str) -> bool:
    return line.startswith("# provisiond") and _WRITTEN in line


def unwritable(username: str) -> str | None:
    """Why a user name cannot be in Mosquitto's files, or None if it can."""
    if not username:
        return "the user name is empty"
    if ":" in username:
        return "the user name contains ':', which Mosquitto's password file cannot hold"
    if any(c in username for c in "\r\n\0"):
        return "the user name contains a line break or NUL"
    if username != username.strip():
        return "the user name starts or ends with white space"
    if username.startswith("#"):
        return "the user name starts with '#', which Mosquitto's files read as a comment"
    return None


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, 64)
    return f"$7${ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def password_matches(password: str, hashed: str) -> bool:
    """Whether ``hashed`` (a ``$7$`` or ``$6$`` password of Mosquitto's) is ``password``'s."""
    parts = hashed.split("$")
    try:
        if len(parts) == 5 and parts[1] == "7":
            iterations = int(parts[2])
            salt, want = base64.b64decode(parts[3]), base64.b64decode(parts[4])
            if not 0 < iterations <= 1_000_000:
                return False
            got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(want))
        elif len(parts) == 4 and parts[1] == "6":
            salt, want = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            got = hashlib.sha512(password.encode() + salt).digest()
        else:
            return False
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, want)


def _split(text: str, namespace: str) -> tuple[str, list[str], str]:
    """Everything before this registry's marker, the lines of its section, and everything
    from the next registry's marker on."""
    lines = text.splitlines(keepends=True)
    mine = marker(namespace)
    start = next((i for i, line in enumerate(lines) if line.rstrip("\r\n") == mine), None)
    if start is None:
        return text, [], ""
    end = next(
        (i for i in range(start + 1, len(lines)) if _is_marker(lines[i])),
        len(lines),
    )
    own = [line.rstrip("\r\n") for line in lines[start + 1 : end]]
    return "".join(lines[:start]), own, "".join(lines[end:])


def _usernames(text: str) -> set[str]:
    """The user names in the password lines of other registries' sections."""
    names: set[str] = set()
    inside = False
    for line in text.splitlines():
        if _is_marker(line):
            inside = True
        elif inside and not line.startswith("#") and ":" in line:
            names.add(line.partition(":")[0])
    return names


def parse(password_text: str, acl_text: str, namespace: str = "") -> Files:
    """Both files' text as :class:`Files`; lines in this registry's section that are not its
    own kind (comments, blank lines, anything unreadable) are dropped at the next write."""
    password_head, password_lines, password_tail = _split(password_text, namespace)
    acl_head, acl_lines, acl_tail = _split(acl_text, namespace)
    hashes: dict[str, str] = {}
    for line in password_lines:
        username, colon, hashed = line.partition(":")
        if colon and not line.startswith("#") and unwritable(username) is None:
            hashes[username] = hashed.strip()
    topics: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in acl_lines:
        words = line.strip()
        if words.startswith("user "):
            current = topics.setdefault(words[len("user ") :].strip(), [])
        elif words.startswith("topic readwrite ") and current is not None:
            current.append(words[len("topic readwrite ") :].strip())
    files = Files(
        password_head,
        acl_head,
        namespace=namespace,
        password_tail=password_tail,
        acl_tail=acl_tail,
        others=_usernames(password_head) | _usernames(password_tail),
    )
    for username, hashed in hashes.items():
        files.accounts[username] = Entry(username, hashed, tuple(topics.get(username, ())))
    return files


def _with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def render(files: Files) -> tuple[str, str]:
    """The password file's and the ACL file's text."""
    entries = list(files.accounts.values())
    mine = marker(files.namespace)
    password = [_with_newline(files.password_head), mine, "\n"]
    password += [f"{e.username}:{e.hashed}\n" for e in entries]
    acl = [_with_newline(files.acl_head), mine, "\n"]
    for e in entries:
        acl.append(f"\nuser {e.username}\n")
        acl += [f"topic readwrite {topic}\n" for topic in e.topics]
    password.append(_with_newline(files.password_tail))
    acl.append(_with_newline(files.acl_tail))
    return "".join(password), "".join(acl)
