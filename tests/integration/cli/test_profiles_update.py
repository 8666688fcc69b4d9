"""`provisiond profiles update`: a profile's CAs and claim rules changed after its creation
(what the console's profile page changes too), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from provisiond.domain.scope import Scope
from provisiond.errors import ProfileSecretChanged
from provisiond.services import profiles
from tests.integration.cli.conftest import Cli
from tests.integration.cli.test_profiles import authenticate
from tests.integration.store.test_concurrency import race

OPERATOR = Scope.operator()


def test_update_changes_cas_and_claim_rules_and_reports_every_problem(cli: Cli) -> None:
    cli("ca", "create", "factory")
    cli("profiles", "create", "gw", "--claim-proof", "code", "--claim-window", "600")
    out = cli.json(
        "profiles",
        "update",
        "gw",
        "--ca",
        "factory",
        "--certificate-days",
        "90",
        "--default-claim-proof",
        "--claim-window",
        "900",
        "--release-policy",
        "reset",
    )
    assert isinstance(out, dict)
    assert (out["ca"], out["certificate_days"], out["claim_proof"]) == ("factory", 90, None)
    assert (out["claim_window_seconds"], out["release_policy"]) == (900, "reset")

    bad = cli(
        "profiles",
        "update",
        "gw",
        "--certificate-days",
        "0",
        "--claim-proof",
        "sometimes",
        "--claim-window",
        "5",
        "--release-policy",
        "never",
        "--ca",
        "factory",
        "--no-ca",
        code=2,
    )
    for field in ("certificate_days", "claim_proof", "claim_window", "release_policy", "ca"):
        assert f"{field}:" in bad.stderr, field
    cli("profiles", "update", "gw", "--ca", "nobody", code=4)
    assert cli.json("profiles", "show", "gw") == out  # refused: nothing changed

    out = cli.json("profiles", "update", "gw", "--no-ca", "--default-claim-window")
    assert isinstance(out, dict)
    assert (out["ca"], out["claim_window_seconds"]) == (None, None)
    events = cli.json("events", "list", "--kind", "profile.updated")
    assert isinstance(events, dict)
    assert len(events["items"]) == 2


def test_two_rotations_of_one_secret_at_once(cli: Cli) -> None:
    """Two admins confirming the rotation of the same secret (or one confirmation sent
    twice): exactly one new secret, the other refused; on SQLite and PostgreSQL."""
    made = cli.json("profiles", "create", "gw")
    assert isinstance(made, dict)
    shown = datetime.fromisoformat(made["secret_rotated_at"])

    async def work(c: Any, i: int) -> object:
        return await profiles.rotate_profile_secret(
            c.uow(), scope=OPERATOR, name="gw", replacing=shown, actor=f"t{i}", now=c.now()
        )

    results = race(cli.url, work, n=3)
    won = [r for r in results if isinstance(r, profiles.ProfileWithSecret)]
    assert len(won) == 1, results
    assert all(isinstance(r, ProfileSecretChanged) for r in results if r not in won), results
    assert authenticate(cli.url, made["key"], won[0].secret) == "gw"
    events = cli.json("events", "list", "--kind", "profile.secret-rotated")
    assert isinstance(events, dict)
    assert len(events["items"]) == 1
