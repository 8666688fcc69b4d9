"""Mosquitto's password and ACL files as provisiond reads and writes them: the operator's
part kept byte for byte, provisiond's accounts round-tripped, passwords in
``mosquitto_passwd``'s format, user names the files cannot hold refused."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisiond.integrations.mosquitto_files.protocol import (
    MARKER,
    Entry,
    Files,
    hash_password,
    parse,
    password_matches,
    render,
    unwritable,
)

OPERATOR_PASSWORDS = "# ours\nadmin:$7$101$c2FsdHNhbHRzYWx0$aGFzaA==\n\n"
OPERATOR_ACL = "user admin\ntopic readwrite #\npattern read $SYS/#\n"


def test_the_first_write_adds_the_marker_and_keeps_the_operators_part() -> None:
    files = parse(OPERATOR_PASSWORDS, OPERATOR_ACL)
    assert files.accounts == {}
    files.accounts["tok1"] = Entry("tok1", "$7$101$a$b", ("devices/1/#",))
    passwords, acl = render(files)
    assert passwords == f"{OPERATOR_PASSWORDS}{MARKER}\ntok1:$7$101$a$b\n"
    assert acl == f"{OPERATOR_ACL}{MARKER}\n\nuser tok1\ntopic readwrite devices/1/#\n"
    again = parse(passwords, acl)
    assert again == files
    assert render(again) == (passwords, acl)


def test_an_operators_part_without_a_final_newline_is_not_joined_to_the_marker() -> None:
    passwords, acl = render(Files("admin:$7$101$a$b", "user admin"))
    assert passwords == f"admin:$7$101$a$b\n{MARKER}\n"
    assert acl == f"user admin\n{MARKER}\n"


def test_lines_of_another_kind_in_provisionds_part_are_dropped() -> None:
    passwords = f"{MARKER}\n# a note\n\ntok:$7$1$a$b\nnot a line\n"
    acl = f"{MARKER}\ntopic read orphan\nuser tok\ntopic readwrite d/1/#\ntopic read d/2\n"
    files = parse(passwords, acl)
    assert files.accounts == {"tok": Entry("tok", "$7$1$a$b", ("d/1/#",))}


def test_passwords_are_in_mosquitto_passwds_format() -> None:
    hashed = hash_password("s3cret", salt=b"0123456789ab")
    _, seven, iterations, salt, digest = hashed.split("$")
    assert (seven, iterations) == ("7", "101")
    assert base64.b64decode(salt) == b"0123456789ab"
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac(
        "sha512", b"s3cret", b"0123456789ab", 101, 64
    )
    assert password_matches("s3cret", hashed)
    assert not password_matches("s3cret ", hashed)
    assert hash_password("s3cret") != hash_password("s3cret")  # a fresh salt each time


def test_older_sha512_passwords_and_garbage() -> None:
    salt = b"salty"
    six = (
        f"$6${base64.b64encode(salt).decode()}$"
        f"{base64.b64encode(hashlib.sha512(b'pw' + salt).digest()).decode()}"
    )
    assert password_matches("pw", six)
    assert not password_matches("other", six)
    for garbage in (
        "",
        "plain",
        "$7$x$y$z",
        "$7$101$!!$!!",
        "$7$0$YQ==$YQ==",
        "$9$1$2$3",
        "$7$99999999$YQ==$YQ==",
    ):
        assert not password_matches("pw", garbage)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("a:b", "':'"),
        ("a\nb", "line break"),
        ("a\0", "NUL"),
        (" a", "white space"),
        ("a ", "white space"),
        ("#a", "comment"),
    ],
)
def test_user_names_the_files_cannot_hold(name: str, why: str) -> None:
    reason = unwritable(name)
    assert reason is not None
    assert why in reason


names = st.text(
    st.characters(codec="utf-8", exclude_characters="\r\n\0:\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"),
    min_size=1,
    max_size=20,
).filter(lambda n: unwritable(n) is None)
heads = st.text(st.characters(codec="utf-8", exclude_characters="\r\0"), max_size=80).filter(
    lambda t: MARKER not in t
)


@given(
    st.dictionaries(
        names,
        st.tuples(
            st.text("abc$/=+1", max_size=20),
            st.lists(st.sampled_from(["d/1/#", "x/y", "a b/#"]), max_size=2),
        ),
        max_size=8,
    ),
    heads,
    heads,
)
def test_what_is_written_reads_back_the_same(
    accounts: dict[str, tuple[str, list[str]]], password_head: str, acl_head: str
) -> None:
    files = Files(
        password_head,
        acl_head,
        {
            name: Entry(name, hashed.strip(), tuple(topics))
            for name, (hashed, topics) in accounts.items()
        },
    )
    passwords, acl = render(files)
    back = parse(passwords, acl)
    assert back.accounts == files.accounts
    assert render(back) == (passwords, acl)
    assert passwords.startswith(password_head)
    assert acl.startswith(acl_head)
