"""Scoped operator tokens, walked over every operation of docs/openapi.json.

Customer A is the group ``Acme``, customer B ``Bolt``; each has a device, a user, a profile,
a webhook and a token, and there is ungrouped stock, a profile without a group and an
operator-wide token besides. An admin token scoped to ``Acme`` tries every operation on B's
things (and on the operator's): each must answer exactly as for something that does not
exist (same status, same body once the name asked for is set aside), or refuse, or leave B's
things out of a listing. A viewer token scoped to ``Acme`` tries every write on A's own
things and is refused. Real HTTP on loopback, on SQLite and PostgreSQL.

``ROWS`` has one row per operation: a new route fails ``test_every_operation_has_a_row``
until it says how its scope is checked.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.web.conftest import Server

OPENAPI = Path(__file__).parents[3] / "docs" / "openapi.json"
CSV = {"Content-Type": "text/csv"}
RECEIVER = "https://93.184.215.14/hook"  # never called: the webhooks are disabled at once

A_GROUP, B_GROUP, MISSING_GROUP = "Acme/West", "Bolt/East", "Nowhere/East"
A_DEVICE, B_DEVICE, STOCK, MISSING_DEVICE = "ACME-0001", "BOLT-0001", "STOCK-0001", "NONE-0001"
A_USER, B_USER, MISSING_USER = "ann@acme.example", "bob@bolt.example", "nobody@none.example"
A_INVITED, B_INVITED = "invited@acme.example", "invited@bolt.example"
A_PROFILE, B_PROFILE, STOCK_PROFILE, MISSING_PROFILE = (
    "acme-line",
    "bolt-line",
    "stock-line",
    "none-line",
)
A_TOKEN, B_TOKEN, OPERATOR_TOKEN, MISSING_TOKEN = (
    "acme-admin",
    "bolt-admin",
    "tests",
    "none-token",
)
PASSWORD = "correct horse battery"


@dataclass
class World:
    """What the operator set up: ids only known at run time, and the clients."""

    operator: httpx.Client
    admin: httpx.Client  # admin scoped to Acme: tries B's things
    viewer: httpx.Client  # viewer scoped to Acme: tries to write A's things
    ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Req:
    method: str
    url: str
    json: Any = None
    params: dict[str, str] | None = None
    content: str | None = None
    headers: dict[str, str] | None = None

    def send(self, client: httpx.Client) -> httpx.Response:
        return client.request(
            self.method,
            self.url,
            json=self.json,
            params=self.params,
            content=self.content,
            headers=self.headers,
        )


Make = Callable[[World], Req]


def req(method: str, url: str, **kw: Any) -> Make:
    """A request whose url and body may name run-time ids: ``{acme_hook}``, ``{bolt_id}``."""

    def make(w: World) -> Req:
        def fill(value: Any) -> Any:
            if isinstance(value, str):
                return value.format(**w.ids)
            if isinstance(value, dict):
                return {k: fill(v) for k, v in value.items()}
            return value

        return Req(method, fill(url), **{k: fill(v) for k, v in kw.items()})

    return make


@dataclass(frozen=True)
class Same:
    """B's (or the operator's) thing answers exactly as a thing that does not exist."""

    theirs: Make
    missing: Make
    names: tuple[str, str]  # what each names, set aside when comparing the bodies


@dataclass(frozen=True)
class Hidden:
    """A listing that answers, without any of ``absent``."""

    listing: Make
    absent: tuple[str, ...]


@dataclass(frozen=True)
class Refused:
    """Operator-wide only: refused to a scoped token (403), whatever it names."""

    request: Make


@dataclass(frozen=True)
class Open:
    """A read of global things (the model catalogue, the CAs' certificates): answered."""

    request: Make


Check = Same | Hidden | Refused | Open


@dataclass(frozen=True)
class Row:
    checks: tuple[Check, ...] = ()
    write: Make | None = None  # the write on A's own things a viewer must not do
    public: str | None = None  # why no operator token is involved


def same(method: str, template: str, theirs: str, missing: str, **kw: Any) -> Same:
    """``template`` with ``{name}`` filled with B's name, then with a missing one."""

    def fill(name: str) -> Make:
        def value(v: Any) -> Any:
            if isinstance(v, str):
                return v.replace("{name}", name)
            if isinstance(v, dict):
                return {k: value(x) for k, x in v.items()}
            return v

        return req(method, template.replace("{name}", name), **{k: value(v) for k, v in kw.items()})

    return Same(fill(theirs), fill(missing), (theirs, missing))


def device_same(method: str, suffix: str = "", **kw: Any) -> tuple[Same, ...]:
    url = "/api/v1/devices/{name}" + suffix
    return (
        same(method, url, B_DEVICE, MISSING_DEVICE, **kw),
        same(method, url, STOCK, MISSING_DEVICE, **kw),
    )


def profile_same(method: str, suffix: str = "", **kw: Any) -> tuple[Same, ...]:
    url = "/api/v1/profiles/{name}" + suffix
    return (
        same(method, url, B_PROFILE, MISSING_PROFILE, **kw),
        same(method, url, STOCK_PROFILE, MISSING_PROFILE, **kw),
    )


def hook_same(method: str, suffix: str = "") -> tuple[Same, ...]:
    return (
        Same(
            req(method, "/api/v1/webhooks/{bolt_hook}" + suffix),
            req(method, "/api/v1/webhooks/{missing_hook}" + suffix),
            ("{bolt_hook}", "{missing_hook}"),
        ),
    )


def bolt_delivery(w: World) -> Req:
    """A redelivery of a delivery of Bolt's webhook (a device registered in Bolt queues one;
    the webhook is disabled, so it stays pending)."""
    if "bolt_delivery" not in w.ids:
        ok(w.operator.post("/api/v1/devices", json={"serial": "BOLT-HOOKED", "group": B_GROUP}))
        deadline = time.monotonic() + 30
        while not (
            log := ok(w.operator.get("/api/v1/webhooks/{bolt_hook}/deliveries".format(**w.ids)))
        ):
            assert time.monotonic() < deadline, "no delivery was queued for Bolt's webhook"
            time.sleep(0.05)
        w.ids["bolt_delivery"] = str(log[0]["id"])
    return req("POST", "/api/v1/webhooks/deliveries/{bolt_delivery}/redeliver")(w)


def import_body(cells: str) -> str:
    return f"serial,group,owner,profile\nNEW-0001,{cells}\n"


ROWS: dict[str, Row] = {
    # ------------------------------------------------------------------------- devices
    "GET /api/v1/devices": Row(
        (
            Hidden(req("GET", "/api/v1/devices"), (B_DEVICE, STOCK)),
            same("GET", "/api/v1/devices", B_GROUP, MISSING_GROUP, params={"group": "{name}"}),
        )
    ),
    "POST /api/v1/devices": Row(
        (
            same(
                "POST",
                "/api/v1/devices",
                B_GROUP,
                MISSING_GROUP,
                json={"serial": "NEW-0001", "group": "{name}"},
            ),
            same(
                "POST",
                "/api/v1/devices",
                B_USER,
                MISSING_USER,
                json={"serial": "NEW-0001", "owner": "{name}"},
            ),
            Refused(req("POST", "/api/v1/devices", json={"serial": "NEW-0001"})),  # stock
        ),
        write=req("POST", "/api/v1/devices", json={"serial": "NEW-0002", "group": A_GROUP}),
    ),
    "POST /api/v1/devices/import": Row(
        (
            same(
                "POST",
                "/api/v1/devices/import",
                B_GROUP,
                MISSING_GROUP,
                content=import_body("{name},,"),
                headers=CSV,
            ),
            same(
                "POST",
                "/api/v1/devices/import",
                B_USER,
                MISSING_USER,
                content=import_body(",{name},"),
                headers=CSV,
            ),
            same(
                "POST",
                "/api/v1/devices/import",
                B_PROFILE,
                MISSING_PROFILE,
                content=import_body(f"{A_GROUP},,{{name}}"),
                headers=CSV,
            ),
            same(
                "POST",
                "/api/v1/devices/import",
                B_GROUP,
                MISSING_GROUP,
                content="serial\nNEW-0001\n",
                headers=CSV,
                params={"group": "{name}"},
            ),
        ),
        write=req(
            "POST", "/api/v1/devices/import", content=import_body(f"{A_GROUP},,"), headers=CSV
        ),
    ),
    "GET /api/v1/devices/{serial}": Row(device_same("GET")),
    "DELETE /api/v1/devices/{serial}": Row(
        device_same("DELETE"), write=req("DELETE", f"/api/v1/devices/{A_DEVICE}")
    ),
    "POST /api/v1/devices/{serial}/credentials/revoke": Row(
        device_same("POST", "/credentials/revoke"),
        write=req("POST", f"/api/v1/devices/{A_DEVICE}/credentials/revoke"),
    ),
    "POST /api/v1/devices/{serial}/credentials/rotate": Row(
        device_same("POST", "/credentials/rotate"),
        write=req("POST", f"/api/v1/devices/{A_DEVICE}/credentials/rotate"),
    ),
    # -------------------------------------------------------------------------- groups
    "GET /api/v1/groups": Row(
        (
            Hidden(req("GET", "/api/v1/groups"), ('"Bolt', '"Nowhere')),
            same("GET", "/api/v1/groups", B_GROUP, MISSING_GROUP, params={"under": "{name}"}),
        )
    ),
    "POST /api/v1/groups": Row(
        (
            same(
                "POST",
                "/api/v1/groups",
                f"{B_GROUP}/New",
                f"{MISSING_GROUP}/New",
                json={"path": "{name}"},
            ),
            same("POST", "/api/v1/groups", B_GROUP, MISSING_GROUP, json={"path": "{name}"}),
        ),
        write=req("POST", "/api/v1/groups", json={"path": f"{A_GROUP}/New"}),
    ),
    "DELETE /api/v1/groups/{path}": Row(
        (same("DELETE", "/api/v1/groups/{name}", "Bolt/Empty", MISSING_GROUP),),
        write=req("DELETE", "/api/v1/groups/Acme/Empty"),
    ),
    "POST /api/v1/groups/{path}/rename": Row(
        (
            same(
                "POST", "/api/v1/groups/{name}/rename", B_GROUP, MISSING_GROUP, json={"name": "New"}
            ),
        ),
        write=req("POST", f"/api/v1/groups/{A_GROUP}/rename", json={"name": "New"}),
    ),
    "POST /api/v1/groups/{path}/move": Row(
        (
            same(
                "POST",
                "/api/v1/groups/{name}/move",
                B_GROUP,
                MISSING_GROUP,
                json={"parent": "Acme"},
            ),
            same(  # one of A's groups under B's
                "POST",
                "/api/v1/groups/Acme/Empty/move",
                B_GROUP,
                MISSING_GROUP,
                json={"parent": "{name}"},
            ),
            Refused(req("POST", "/api/v1/groups/Acme/Empty/move", json={"parent": None})),
        ),
        write=req("POST", "/api/v1/groups/Acme/Empty/move", json={"parent": A_GROUP}),
    ),
    # --------------------------------------------------------------------------- users
    "GET /api/v1/users": Row(
        (
            Hidden(req("GET", "/api/v1/users"), (B_USER,)),
            same("GET", "/api/v1/users", B_GROUP, MISSING_GROUP, params={"under": "{name}"}),
        )
    ),
    "POST /api/v1/users": Row(
        (
            same(
                "POST",
                "/api/v1/users",
                B_GROUP,
                MISSING_GROUP,
                json={
                    "email": "new@bolt.example",
                    "password": PASSWORD,
                    "role": "viewer",
                    "group": "{name}",
                },
            ),
        ),
        write=req(
            "POST",
            "/api/v1/users",
            json={
                "email": "new@acme.example",
                "password": PASSWORD,
                "role": "viewer",
                "group": A_GROUP,
            },
        ),
    ),
    "POST /api/v1/users/{email}/disable": Row(
        (same("POST", "/api/v1/users/{name}/disable", B_USER, MISSING_USER),),
        write=req("POST", f"/api/v1/users/{A_USER}/disable"),
    ),
    "POST /api/v1/users/{email}/enable": Row(
        (same("POST", "/api/v1/users/{name}/enable", B_USER, MISSING_USER),),
        write=req("POST", f"/api/v1/users/{A_USER}/enable"),
    ),
    "POST /api/v1/users/{email}/password-reset": Row(
        (same("POST", "/api/v1/users/{name}/password-reset", B_USER, MISSING_USER),),
        write=req("POST", f"/api/v1/users/{A_USER}/password-reset"),
    ),
    # --------------------------------------------------------------------- invitations
    "GET /api/v1/invitations": Row(
        (Hidden(req("GET", "/api/v1/invitations"), (B_INVITED, "{bolt_invitation}")),)
    ),
    "POST /api/v1/invitations": Row(
        (
            same(
                "POST",
                "/api/v1/invitations",
                B_GROUP,
                MISSING_GROUP,
                json={"email": "new@bolt.example", "role": "viewer", "group": "{name}"},
            ),
        ),
        write=req(
            "POST",
            "/api/v1/invitations",
            json={"email": "new@acme.example", "role": "viewer", "group": A_GROUP},
        ),
    ),
    "POST /api/v1/invitations/{invitation_id}/resend": Row(
        (
            Same(
                req("POST", "/api/v1/invitations/{bolt_invitation}/resend"),
                req("POST", "/api/v1/invitations/{missing_id}/resend"),
                ("{bolt_invitation}", "{missing_id}"),
            ),
        ),
        write=req("POST", "/api/v1/invitations/{acme_invitation}/resend"),
    ),
    "DELETE /api/v1/invitations/{invitation_id}": Row(
        (
            Same(
                req("DELETE", "/api/v1/invitations/{bolt_invitation}"),
                req("DELETE", "/api/v1/invitations/{missing_id}"),
                ("{bolt_invitation}", "{missing_id}"),
            ),
        ),
        write=req("DELETE", "/api/v1/invitations/{acme_invitation}"),
    ),
    # -------------------------------------------------------------------------- models
    "GET /api/v1/models": Row((Open(req("GET", "/api/v1/models")),)),
    "POST /api/v1/models": Row(
        (Refused(req("POST", "/api/v1/models", json={"name": "Bolt-Model"})),),
        write=req("POST", "/api/v1/models", json={"name": "Acme-M"}),
    ),
    "DELETE /api/v1/models/{name}": Row(
        (Refused(req("DELETE", "/api/v1/models/Unused")),),
        write=req("DELETE", "/api/v1/models/Unused"),
    ),
    # ------------------------------------------------------------------------ profiles
    "GET /api/v1/profiles": Row(
        (Hidden(req("GET", "/api/v1/profiles"), (B_PROFILE, STOCK_PROFILE)),)
    ),
    "POST /api/v1/profiles": Row(
        (
            same(
                "POST",
                "/api/v1/profiles",
                B_GROUP,
                MISSING_GROUP,
                json={"name": "new-line", "group": "{name}"},
            ),
            Refused(req("POST", "/api/v1/profiles", json={"name": "new-line"})),  # no group
        ),
        write=req("POST", "/api/v1/profiles", json={"name": "new-line", "group": A_GROUP}),
    ),
    "GET /api/v1/profiles/{name}": Row(profile_same("GET")),
    "PATCH /api/v1/profiles/{name}": Row(
        profile_same("PATCH", json={"reprovision": "with-proof"}),
        write=req("PATCH", f"/api/v1/profiles/{A_PROFILE}", json={"reprovision": "never"}),
    ),
    "POST /api/v1/profiles/{name}/disable": Row(
        profile_same("POST", "/disable"), write=req("POST", f"/api/v1/profiles/{A_PROFILE}/disable")
    ),
    "POST /api/v1/profiles/{name}/enable": Row(
        profile_same("POST", "/enable"), write=req("POST", f"/api/v1/profiles/{A_PROFILE}/enable")
    ),
    "PUT /api/v1/profiles/{name}/jwt-key": Row(
        profile_same("PUT", "/jwt-key", json={"public_key": None}),
        write=req("PUT", f"/api/v1/profiles/{A_PROFILE}/jwt-key", json={"public_key": None}),
    ),
    "POST /api/v1/profiles/{name}/rotate-secret": Row(
        profile_same("POST", "/rotate-secret"),
        write=req("POST", f"/api/v1/profiles/{A_PROFILE}/rotate-secret"),
    ),
    "POST /api/device/provision": Row(
        (  # ThingsBoard's profile request
            Same(
                req(
                    "POST",
                    "/api/device/provision",
                    json={"customerId": {"entityType": "CUSTOMER", "id": "{bolt_id}"}},
                ),
                req(
                    "POST",
                    "/api/device/provision",
                    json={"customerId": {"entityType": "CUSTOMER", "id": "{missing_id}"}},
                ),
                ("{bolt_id}", "{missing_id}"),
            ),
            same("POST", "/api/device/provision", "Bolt", "Nowhere", json={"groupName": "{name}"}),
            Refused(req("POST", "/api/device/provision", json={})),  # a profile without a group
        ),
        write=req("POST", "/api/device/provision", json={"groupName": A_GROUP}),
    ),
    # -------------------------------------------------------------------------- tokens
    "GET /api/v1/tokens": Row(
        (Hidden(req("GET", "/api/v1/tokens"), (B_TOKEN, f'"{OPERATOR_TOKEN}"')),)
    ),
    "POST /api/v1/tokens": Row(
        (
            same(
                "POST",
                "/api/v1/tokens",
                B_GROUP,
                MISSING_GROUP,
                json={"name": "new-token", "role": "viewer", "group": "{name}"},
            ),
            Refused(req("POST", "/api/v1/tokens", json={"name": "new-token"})),  # operator-wide
        ),
        write=req(
            "POST", "/api/v1/tokens", json={"name": "new-token", "role": "viewer", "group": A_GROUP}
        ),
    ),
    "DELETE /api/v1/tokens/{name}": Row(
        (
            same("DELETE", "/api/v1/tokens/{name}", B_TOKEN, MISSING_TOKEN),
            same("DELETE", "/api/v1/tokens/{name}", OPERATOR_TOKEN, MISSING_TOKEN),
        ),
        write=req("DELETE", "/api/v1/tokens/acme-viewer"),
    ),
    # ------------------------------------------------------------------------ webhooks
    "GET /api/v1/webhooks": Row(
        (
            Hidden(req("GET", "/api/v1/webhooks"), ("{bolt_hook}",)),
            same("GET", "/api/v1/webhooks", "Bolt", "Nowhere", params={"under": "{name}"}),
        )
    ),
    "POST /api/v1/webhooks": Row(
        (
            same(
                "POST",
                "/api/v1/webhooks",
                B_GROUP,
                MISSING_GROUP,
                json={"group": "{name}", "url": RECEIVER},
            ),
        ),
        write=req("POST", "/api/v1/webhooks", json={"group": A_GROUP, "url": RECEIVER}),
    ),
    "GET /api/v1/webhooks/{webhook_id}": Row(hook_same("GET")),
    "DELETE /api/v1/webhooks/{webhook_id}": Row(
        hook_same("DELETE"), write=req("DELETE", "/api/v1/webhooks/{acme_hook}")
    ),
    "GET /api/v1/webhooks/{webhook_id}/deliveries": Row(hook_same("GET", "/deliveries")),
    "POST /api/v1/webhooks/{webhook_id}/disable": Row(
        hook_same("POST", "/disable"), write=req("POST", "/api/v1/webhooks/{acme_hook}/disable")
    ),
    "POST /api/v1/webhooks/deliveries/{delivery_id}/redeliver": Row(
        (
            Same(
                bolt_delivery,
                req("POST", "/api/v1/webhooks/deliveries/987654321/redeliver"),
                ("{bolt_delivery}", "987654321"),
            ),
        ),
        write=req("POST", "/api/v1/webhooks/deliveries/1/redeliver"),
    ),
    "POST /api/v1/webhooks/redeliver": Row(
        (
            Same(
                req("POST", "/api/v1/webhooks/redeliver", json={"webhook_id": "{bolt_hook}"}),
                req("POST", "/api/v1/webhooks/redeliver", json={"webhook_id": "{missing_hook}"}),
                ("{bolt_hook}", "{missing_hook}"),
            ),
        ),
        write=req("POST", "/api/v1/webhooks/redeliver", json={}),
    ),
    "POST /api/v1/webhooks/{webhook_id}/enable": Row(
        hook_same("POST", "/enable"), write=req("POST", "/api/v1/webhooks/{acme_hook}/enable")
    ),
    # -------------------------------------------------------------------------- events
    # The audit log: B's events and the ungrouped ones stay out of A's answer, whatever
    # the filters name (a group or serial outside the scope answers an empty page).
    "GET /api/v1/events": Row(
        (
            Hidden(
                req("GET", "/api/v1/events", params={"limit": 500}),
                (B_DEVICE, STOCK, B_GROUP, B_USER, B_PROFILE, B_TOKEN),
            ),
            Hidden(req("GET", "/api/v1/events", params={"group": B_GROUP}), (B_DEVICE, B_GROUP)),
            Hidden(req("GET", "/api/v1/events", params={"serial": B_DEVICE}), (B_DEVICE,)),
            Hidden(req("GET", "/api/v1/events", params={"serial": STOCK}), (STOCK,)),
        )
    ),
    # ---------------------------------------------------------- certificate authorities
    "GET /api/v1/cas": Row((Open(req("GET", "/api/v1/cas")),)),
    "POST /api/v1/cas": Row(
        (Refused(req("POST", "/api/v1/cas", json={"name": "bolt-ca"})),),
        write=req("POST", "/api/v1/cas", json={"name": "acme-ca"}),
    ),
    "GET /api/v1/cas/{name}": Row((Open(req("GET", "/api/v1/cas/fleet-ca")),)),
    # ----------------------------------------------- device-facing and public: no token
    "POST /api/v1/provision": Row(public="devices: a profile's key and secret"),
    "POST /api/v1/register": Row(public="devices: a signed registration token"),
    "POST /api/v1/{access_token}/association": Row(public="devices: their access token"),
    "POST /api/v1/{access_token}/claim": Row(public="devices: their access token"),
    "POST /api/v1/{access_token}/claim/button": Row(public="devices: their access token"),
    "GET /ca/{name}.crt": Row(public="CA certificates are public"),
    "GET /ca/{name}.pem": Row(public="CA certificates are public"),
    "GET /crl/{name}.crl": Row(public="CRLs are public"),
    "GET /crl/{name}.pem": Row(public="CRLs are public"),
    "GET /healthz": Row(public="health"),
    "GET /readyz": Row(public="readiness"),
    "GET /metrics": Row(public="metrics (counts and ids; metrics__token to protect)"),
    "POST /ocsp": Row(public="OCSP is public"),
    "GET /ocsp/{encoded}": Row(public="OCSP is public"),
    "POST /hooks/emqx/authn": Row(public="the broker (its hook secret)"),
    "POST /hooks/emqx/authz": Row(public="the broker (its hook secret)"),
}


def operations() -> dict[str, dict[str, Any]]:
    doc = json.loads(OPENAPI.read_text())
    return {
        f"{method.upper()} {path}": op
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
    }


def test_every_operation_has_a_row() -> None:
    ops = operations()
    missing = sorted(set(ops) - set(ROWS))
    assert not missing, f"operations without a row in ROWS (say how each is scoped): {missing}"
    for name, row in ROWS.items():
        if name not in ops:
            continue
        if row.public:  # no operator token, so nothing for a token's scope to limit
            assert not ops[name].get("security"), f"{name} takes an operator token now"
        else:
            assert row.checks, f"{name} has no check"
            assert ops[name].get("security"), f"{name} takes no operator token"


# ----------------------------------------------------------------------------- the world


def ok(response: httpx.Response) -> Any:
    assert response.status_code < 300, f"{response.request.url}: {response.text}"
    return response.json() if response.content else None


def mint(operator: httpx.Client, name: str, role: str, group: str | None, **extra: Any) -> str:
    """A token the operator scopes to ``group`` (None: operator-wide)."""
    return str(
        ok(
            operator.post(
                "/api/v1/tokens", json={"name": name, "role": role, "group": group, **extra}
            )
        )["secret"]
    )


def build_world(server: Server, operator: httpx.Client) -> World:
    ok(operator.post("/api/v1/models", json={"name": "Sensor"}))
    ok(operator.post("/api/v1/models", json={"name": "Unused"}))
    ok(operator.post("/api/v1/cas", json={"name": "fleet-ca"}))
    ids: dict[str, str] = {}
    for group in (A_GROUP, B_GROUP, "Acme/Empty", "Bolt/Empty"):
        ok(operator.post("/api/v1/groups", json={"path": group}))
    for email, group in ((A_USER, A_GROUP), (B_USER, B_GROUP)):
        ok(
            operator.post(
                "/api/v1/users",
                json={"email": email, "password": PASSWORD, "role": "installer", "group": group},
            )
        )
    for serial, group in ((A_DEVICE, A_GROUP), (B_DEVICE, B_GROUP), (STOCK, None)):
        ok(
            operator.post(
                "/api/v1/devices", json={"serial": serial, "model": "Sensor", "group": group}
            )
        )
    for name, group in ((A_PROFILE, "Acme"), (B_PROFILE, "Bolt"), (STOCK_PROFILE, None)):
        ok(operator.post("/api/v1/profiles", json={"name": name, "group": group}))
    for key, group in (("acme_hook", "Acme"), ("bolt_hook", "Bolt")):
        hook = ok(operator.post("/api/v1/webhooks", json={"group": group, "url": RECEIVER}))
        ids[key] = hook["id"]
        ok(operator.post(f"/api/v1/webhooks/{hook['id']}/disable"))
    for key, email, group in (
        ("acme_invitation", A_INVITED, A_GROUP),
        ("bolt_invitation", B_INVITED, B_GROUP),
    ):
        invite = {"email": email, "role": "viewer", "group": group}
        ids[key] = ok(operator.post("/api/v1/invitations", json=invite))["id"]
    ids["missing_hook"] = str(uuid.uuid4())
    ids["missing_id"] = str(uuid.uuid4())
    groups = ok(operator.get("/api/v1/groups"))
    rows = groups["items"] if isinstance(groups, dict) else groups
    ids["bolt_id"] = next(g["id"] for g in rows if g["path"] == "Bolt")
    mint(operator, B_TOKEN, "admin", "Bolt")
    admin = server.client(mint(operator, A_TOKEN, "admin", "Acme"))
    viewer = server.client(mint(operator, "acme-viewer", "viewer", "Acme"))
    return World(operator, admin, viewer, ids)


@pytest.fixture
def world(server: Server, api: httpx.Client) -> Iterator[World]:
    w = build_world(server, api)
    yield w
    w.admin.close()
    w.viewer.close()


def body_of(response: httpx.Response, name: str) -> tuple[int, str]:
    """The status and the body with the name asked for (and the path) set aside."""
    # the path first: a short name (a delivery id "1") is also inside "/api/v1/…"
    text = response.text.replace(response.request.url.path, "PATH")
    return response.status_code, text.replace(f'"{name}"', '"NAME"').replace(name, "NAME")


def check(w: World, op: str, c: Check) -> str | None:
    """What is wrong with ``c``, or None."""
    if isinstance(c, Same):
        theirs, missing = c.theirs(w), c.missing(w)
        names = [n.format(**w.ids) for n in c.names]
        a, b = theirs.send(w.admin), missing.send(w.admin)
        got, expected = body_of(a, names[0]), body_of(b, names[1])
        if b.status_code not in (403, 404, 422):  # 422: an import's row names it
            return f"{op} naming {names[1]}: {b.status_code} {b.text[:200]}"
        if got != expected:
            return (
                f"{op} naming {names[0]}: {a.status_code} {a.text[:300]} (missing: "
                f"{b.status_code} {b.text[:300]})"
            )
    elif isinstance(c, Hidden):
        r = c.listing(w).send(w.admin)
        absent = [x.format(**w.ids) for x in c.absent]
        shown = [x for x in absent if x in r.text]
        if r.status_code != 200 or shown:
            return f"{op}: {r.status_code}, shows {shown}"
    elif isinstance(c, Refused):
        r = c.request(w).send(w.admin)
        if r.status_code != 403 or r.json().get("code") != "forbidden":
            return f"{op}: {r.status_code} {r.text[:200]} (operator-wide only)"
    else:
        r = c.request(w).send(w.admin)
        if r.status_code != 200:
            return f"{op}: {r.status_code} {r.text[:200]}"
    return None


def test_a_token_scoped_to_one_customer_cannot_reach_another(world: World) -> None:
    wrong = [
        problem
        for op, row in ROWS.items()
        for c in row.checks
        if (problem := check(world, op, c)) is not None
    ]
    assert not wrong, "\n".join(wrong)
    # B's things are all there, unchanged
    op = world.operator
    assert ok(op.get(f"/api/v1/devices/{B_DEVICE}"))["group"] == B_GROUP
    assert ok(op.get(f"/api/v1/devices/{STOCK}"))["state"] == "registered"
    bolt_users = ok(op.get("/api/v1/users", params={"under": "Bolt"}))["items"]
    assert [(u["email"], u["disabled_at"]) for u in bolt_users] == [(B_USER, None)]
    assert ok(op.get(f"/api/v1/profiles/{B_PROFILE}"))["enabled"] is True
    assert ok(op.get("/api/v1/webhooks/{bolt_hook}".format(**world.ids)))["url"] == RECEIVER
    tokens = {t["name"]: t for t in ok(op.get("/api/v1/tokens"))["items"]}
    assert tokens[B_TOKEN]["revoked_at"] is None
    assert tokens[OPERATOR_TOKEN]["revoked_at"] is None
    assert "new-token" not in tokens
    groups = [g["path"] for g in ok(op.get("/api/v1/groups"))["items"]]
    assert "Bolt/Empty" in groups
    assert not any(p.startswith(("Nowhere", f"{B_GROUP}/New")) for p in groups)


def test_a_viewer_token_cannot_write(world: World) -> None:
    wrong = []
    for op, row in ROWS.items():
        if row.write is None:
            continue
        r = row.write(world).send(world.viewer)
        if r.status_code != 403 or r.json().get("code") != "forbidden":
            wrong.append(f"{op}: {r.status_code} {r.text[:200]}")
    assert not wrong, "\n".join(wrong)
    op = world.operator
    assert ok(op.get(f"/api/v1/devices/{A_DEVICE}"))["group"] == A_GROUP
    assert ok(op.get(f"/api/v1/profiles/{A_PROFILE}"))["enabled"] is True
    names = {t["name"] for t in ok(op.get("/api/v1/tokens"))["items"]}
    assert "acme-viewer" in names
    assert "new-token" not in names
    # and it reads what is in its subtree
    assert [d["serial"] for d in ok(world.viewer.get("/api/v1/devices"))["items"]] == [A_DEVICE]


# ------------------------------------------------------------- minting and the roles


def code(response: httpx.Response) -> tuple[int, str | None]:
    return response.status_code, (
        response.json().get("code") if response.status_code >= 400 else None
    )


def test_a_token_never_makes_a_broader_token_or_user(server: Server, world: World) -> None:
    admin, op = world.admin, world.operator
    # narrower: a viewer of a site of its subtree, which sees that site only
    made = ok(
        admin.post(
            "/api/v1/tokens", json={"name": "west-viewer", "role": "viewer", "group": A_GROUP}
        )
    )
    assert (made["role"], made["group"], made["expires_at"]) == ("viewer", A_GROUP, None)
    with server.client(made["secret"]) as west:
        assert [g["path"] for g in ok(west.get("/api/v1/groups"))["items"]] == [A_GROUP]
        assert code(
            west.post("/api/v1/tokens", json={"name": "x", "role": "viewer", "group": A_GROUP})
        ) == (403, "forbidden")
    # broader: operator-wide, or outside its subtree (as if that group did not exist)
    assert code(admin.post("/api/v1/tokens", json={"name": "x"})) == (403, "forbidden")
    assert code(admin.post("/api/v1/tokens", json={"name": "x", "group": "Bolt"})) == (
        404,
        "group-not-found",
    )
    assert code(
        admin.post(
            "/api/v1/users",
            json={
                "email": "x@bolt.example",
                "password": PASSWORD,
                "role": "admin",
                "group": "Bolt",
            },
        )
    ) == (404, "group-not-found")

    west_admin = server.client(mint(op, "west-admin", "admin", A_GROUP))
    installer = server.client(mint(op, "acme-installer", "installer", "Acme"))
    with west_admin, installer:
        # a site's admin cannot reach up to its customer
        assert code(
            west_admin.post("/api/v1/tokens", json={"name": "x", "role": "viewer", "group": "Acme"})
        ) == (404, "group-not-found")
        assert code(
            west_admin.post(
                "/api/v1/users",
                json={
                    "email": "x@acme.example",
                    "password": PASSWORD,
                    "role": "viewer",
                    "group": "Acme",
                },
            )
        ) == (404, "group-not-found")
        # an installer makes neither tokens nor users, not even narrower ones
        assert code(
            installer.post("/api/v1/tokens", json={"name": "x", "role": "viewer", "group": A_GROUP})
        ) == (403, "forbidden")
        assert code(
            installer.post(
                "/api/v1/users",
                json={
                    "email": "x@acme.example",
                    "password": PASSWORD,
                    "role": "viewer",
                    "group": A_GROUP,
                },
            )
        ) == (403, "forbidden")
        # an installer registers devices in its subtree and re-commissions them...
        ok(installer.post("/api/v1/devices", json={"serial": "INST-0001", "group": A_GROUP}))
        ok(installer.post("/api/v1/devices/INST-0001/credentials/rotate"))
        # ...but deletes nothing and revokes nothing
        assert code(installer.delete("/api/v1/devices/INST-0001")) == (403, "forbidden")
        assert code(installer.post("/api/v1/devices/INST-0001/credentials/revoke")) == (
            403,
            "forbidden",
        )
    names = {t["name"] for t in ok(op.get("/api/v1/tokens"))["items"]}
    assert "x" not in names
    users = {u["email"] for u in ok(op.get("/api/v1/users"))["items"]}
    assert not users & {"x@acme.example", "x@bolt.example"}


def test_a_token_that_expires_makes_none_that_outlives_it(server: Server, world: World) -> None:
    op = world.operator
    made = ok(
        op.post(
            "/api/v1/tokens",
            json={"name": "temp", "role": "admin", "group": "Acme", "expires": "7d"},
        )
    )
    with server.client(made["secret"]) as temp:
        child = ok(
            temp.post(
                "/api/v1/tokens", json={"name": "temp-child", "role": "viewer", "group": "Acme"}
            )
        )
        assert child["expires_at"] == made["expires_at"]  # inherited
        assert code(
            temp.post(
                "/api/v1/tokens",
                json={"name": "x", "role": "viewer", "group": "Acme", "expires": "30d"},
            )
        ) == (403, "forbidden")
    bad = op.post("/api/v1/tokens", json={"name": "x", "expires": "yesterday"})
    assert code(bad) == (422, "invalid-input")
    assert bad.json()["errors"][0]["field"] == "expires"


def test_an_expired_token_is_refused_as_unknown(server: Server, api: httpx.Client) -> None:
    import asyncio
    from datetime import timedelta

    from provisiond.bootstrap import open_container
    from provisiond.domain.scope import Scope
    from provisiond.domain.tokens import TokenSpec
    from provisiond.services import directory

    async def expired() -> str:  # made two hours ago, for one hour
        async with open_container(server.settings) as c:
            _, secret = await directory.create_token(
                c.uow(),
                scope=Scope.operator(),
                spec=TokenSpec("expired", expires="1h"),
                actor="tests",
                now=c.now() - timedelta(hours=2),
            )
            return secret

    secret = asyncio.run(expired())
    with server.client(secret) as client:
        r = client.get("/api/v1/devices")
    with server.client("pvd_" + "x" * 43) as client:
        unknown = client.get("/api/v1/devices")
    assert code(r) == (401, "unauthenticated")
    assert r.json()["detail"] == unknown.json()["detail"]
    listed = {t["name"]: t for t in ok(api.get("/api/v1/tokens"))["items"]}
    assert listed["expired"]["expires_at"] is not None


def test_a_group_with_live_tokens_is_not_deleted(world: World) -> None:
    op = world.operator
    mint(op, "empty-viewer", "viewer", "Acme/Empty")
    r = op.delete("/api/v1/groups/Acme/Empty")
    assert code(r) == (409, "group-not-empty")
    assert r.json()["usage"]["tokens"] == 1
    assert op.delete("/api/v1/tokens/empty-viewer").status_code == 204
    assert op.delete("/api/v1/groups/Acme/Empty").status_code == 204  # its revoked token too
    names = {t["name"] for t in ok(op.get("/api/v1/tokens"))["items"]}
    assert "empty-viewer" not in names
