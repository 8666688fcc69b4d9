"""The command line against a real database (SQLite and PostgreSQL), in process."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from provisiond.cli.app import app
from provisiond.errors import REGISTRY, ProvisiondError
from tests.integration.cli.conftest import Cli, read_creds, runner, write


def test_import_registers_claims_and_writes_credentials_once(cli: Cli, tmp_path: Path) -> None:
    src = write(
        tmp_path / "batch.csv",
        "serial,name,model,group,owner,firmware\n"
        "70b3 d57e d000 0001,Gen 1,uno-2483g,,,2.1\n"
        "70B3D57ED0000002,,,Kanarra/Tekton Health,,\n"
        "70B3D57ED0000003,,,,tech@example.com,2.2\n",
    )
    creds = tmp_path / "creds.csv"
    out = cli.json("devices", "import", str(src), "--credentials-out", str(creds))
    assert out == {
        "imported": 3,
        "claimed": 2,
        "skipped": 0,
        "event_id": out["event_id"],  # type: ignore[index]
        "credentials_file": str(creds),
        "seconds": out["seconds"],
    }  # type: ignore[index]
    rows = read_creds(creds)
    assert [r["serial"] for r in rows] == [
        "70B3D57ED0000001",
        "70B3D57ED0000002",
        "70B3D57ED0000003",
    ]
    assert {r["credential_type"] for r in rows} == {"access-token"}
    assert len({r["secret"] for r in rows}) == 3
    assert (creds.stat().st_mode & 0o777) == 0o600

    one = cli.json("devices", "show", "70B3D57ED0000001")
    assert isinstance(one, dict)
    assert one["id"] == rows[0]["device_id"]
    assert (one["name"], one["model"], one["state"], one["tags"]) == (
        "Gen 1",
        "UNO-2483G",
        "registered",
        {"firmware": "2.1"},
    )
    assert rows[0]["secret"] not in json.dumps(one)
    two = cli.json("devices", "show", "70B3D57ED0000002")
    three = cli.json("devices", "show", "70B3D57ED0000003")
    assert isinstance(two, dict)
    assert isinstance(three, dict)
    assert (two["state"], two["owner_kind"], two["group"]) == (
        "claimed",
        "group",
        "Kanarra/Tekton Health",
    )
    assert (three["state"], three["owner_kind"], three["owner"], three["group"]) == (
        "claimed",
        "user",
        "tech@example.com",
        "Kanarra/Sadler-Isberg",
    )
    assert [e["type"] for e in one["events"]] == ["devices.imported"]


def test_failed_import_lists_every_problem_and_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    cli("devices", "create", "EXISTS-1")
    before = cli.serials()
    src = write(
        tmp_path / "bad.csv",
        b"serial,name,model,group\n"
        b"A1,ok,,\n"
        b"EXISTS-1,,,\n"
        b"A1,again,,\n"
        b"A2,,NOPE,\n"
        b"A3,,,Nowhere/Else\n"
        b"A4,\xff\xfe,,\n"
        b"A5,too,many,cells,here\n"
        b"A6," + b"n" * 129 + b",,\n",
    )
    creds = tmp_path / "creds.csv"
    result = cli("devices", "import", str(src), "--credentials-out", str(creds), code=2)
    lines = result.stderr.splitlines()
    assert lines[0] == "error[import-invalid]: 7 problems found; nothing was imported"
    assert lines[1:] == [
        "  line 3, serial: EXISTS-1 is already registered (--skip-existing skips such rows)",
        "  line 4, serial: A1 is also on line 2",
        "  line 5, model: 'NOPE' is not in the model catalogue"
        " (add it with `provisiond models add`)",
        "  line 6, group: no group 'Nowhere/Else' (create it with `provisiond groups create`)",
        "  line 7: contains bytes that are not valid UTF-8",
        "  line 8: has 5 cells; the header has 4",
        "  line 9, name: is 129 characters long; at most 128 are allowed",
    ]
    assert not creds.exists()
    assert list(tmp_path.glob(".creds.csv.*")) == []  # no temporary file left behind
    assert cli.serials() == before


def test_import_json_error_document(cli: Cli, tmp_path: Path) -> None:
    src = write(tmp_path / "bad.jsonl", '{"serial": "J1"}\n[1, 2]\n{"serial": "J1"}\nnot json\n')
    result = cli(
        "devices",
        "import",
        str(src),
        "--credentials-out",
        str(tmp_path / "c.csv"),
        "--json",
        code=2,
    )
    doc = json.loads(result.stdout)
    assert doc["code"] == "import-invalid"
    assert doc["status"] == 422
    assert doc["errors"] == [
        {"line": 2, "message": "is not a JSON object"},
        {"line": 3, "field": "serial", "message": "J1 is also on line 1"},
        {"line": 4, "message": doc["errors"][2]["message"]},
    ]
    assert doc["errors"][2]["message"].startswith("is not valid JSON")


def test_skip_existing_makes_reruns_idempotent(cli: Cli, tmp_path: Path) -> None:
    src = write(tmp_path / "b.csv", "serial\nS1\nS2\n")
    cli("devices", "import", str(src), "--credentials-out", str(tmp_path / "c1.csv"))
    src2 = write(tmp_path / "b2.csv", "serial\nS1\nS2\nS3\n")
    out = cli.json(
        "devices",
        "import",
        str(src2),
        "--credentials-out",
        str(tmp_path / "c2.csv"),
        "--skip-existing",
    )
    assert isinstance(out, dict)
    assert (out["imported"], out["skipped"]) == (1, 2)
    assert [r["serial"] for r in read_creds(tmp_path / "c2.csv")] == ["S3"]
    assert cli.serials() == ["S1", "S2", "S3"]


def test_credentials_file_is_never_overwritten_silently(cli: Cli, tmp_path: Path) -> None:
    creds = write(tmp_path / "creds.csv", "precious secrets\n")
    src = write(tmp_path / "b.csv", "serial\nS1\n")
    result = cli("devices", "import", str(src), "--credentials-out", str(creds), code=2)
    assert "error[invalid-input]" in result.stderr
    assert "--overwrite" in result.stderr
    assert creds.read_text() == "precious secrets\n"
    assert cli.serials() == []
    cli("devices", "import", str(src), "--credentials-out", str(creds), "--overwrite")
    assert [r["serial"] for r in read_creds(creds)] == ["S1"]


def test_import_defaults_and_unknown_defaults(cli: Cli, tmp_path: Path) -> None:
    src = write(tmp_path / "b.csv", "serial;name\nD1;first\nD2;second\n")  # semicolons
    cli(
        "devices",
        "import",
        str(src),
        "--credentials-out",
        str(tmp_path / "c.csv"),
        "--group",
        "Kanarra/Sadler-Isberg/West",
        "--model",
        "UNO-2483G",
    )
    assert cli.serials("--group", "Kanarra/Sadler-Isberg", "--model", "UNO-2483G") == ["D1", "D2"]
    result = cli(
        "devices",
        "import",
        str(src),
        "--credentials-out",
        str(tmp_path / "d.csv"),
        "--model",
        "Nope",
        code=4,
    )
    assert result.stderr.startswith("error[model-not-found]: --model:")


def test_list_filters_and_pages(cli: Cli, tmp_path: Path) -> None:
    rows = "\n".join(
        f"P{n:03d},,{'UNO-2483G' if n % 2 else ''},"
        f"{'Kanarra/Tekton Health' if n % 3 == 0 else ''},{n % 5}"
        for n in range(1, 31)
    )
    src = write(tmp_path / "b.csv", "serial,name,model,group,bucket\n" + rows + "\n")
    cli("devices", "import", str(src), "--credentials-out", str(tmp_path / "c.csv"))
    page = cli.json("devices", "list", "--limit", "7")
    assert isinstance(page, dict)
    assert [d["serial"] for d in page["items"]] == [f"P{n:03d}" for n in range(1, 8)]
    walked: list[str] = []
    cursor = None
    while True:
        args = ["devices", "list", "--limit", "7"] + (["--cursor", cursor] if cursor else [])
        page = cli.json(*args)
        assert isinstance(page, dict)
        walked += [d["serial"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == [f"P{n:03d}" for n in range(1, 31)]
    assert cli.serials("--tag", "bucket=0") == [f"P{n:03d}" for n in range(5, 31, 5)]
    assert cli.serials("--state", "claimed") == [f"P{n:03d}" for n in range(3, 31, 3)]
    assert cli.serials("--model", "uno-2483g", "--tag", "bucket=1") == ["P001", "P011", "P021"]
    assert cli.serials("--group", "Kanarra/Tekton Health", "--tag", "bucket=3") == ["P003", "P018"]
    bad = cli("devices", "list", "--state", "lost", code=2)
    assert "state: 'lost' is not a state" in bad.stderr
    bad = cli("devices", "list", "--cursor", "garbage!", code=2)
    assert bad.stderr.startswith("error[invalid-cursor]")


def test_export_reimports_into_another_database(
    cli: Cli, tmp_path: Path, sqlite_template: Path
) -> None:
    src = write(
        tmp_path / "b.csv",
        "serial,name,model,group,fw\nE1,One,UNO-2483G,,1\nE2,Two,,Kanarra/Tekton Health,\n",
    )
    cli("devices", "import", str(src), "--credentials-out", str(tmp_path / "c.csv"))
    exported = tmp_path / "export.csv"
    cli("devices", "export", "--out", str(exported))
    assert exported.read_text().splitlines() == [
        "serial,name,model,group,owner,fw",
        "E1,One,UNO-2483G,,,1",
        "E2,Two,,Kanarra/Tekton Health,,",
    ]
    other = Cli(f"sqlite:///{tmp_path / 'other.db'}")
    other("db", "upgrade")
    other("groups", "create", "Kanarra/Tekton Health")
    other("models", "add", "UNO-2483G")
    other("devices", "import", str(exported), "--credentials-out", str(tmp_path / "c2.csv"))
    mine = cli.json("devices", "list", "--all")
    theirs = other.json("devices", "list", "--all")
    assert isinstance(mine, dict)
    assert isinstance(theirs, dict)
    strip = ("id", "created_at", "updated_at", "claimed_at")
    assert [{k: v for k, v in d.items() if k not in strip} for d in mine["items"]] == [
        {k: v for k, v in d.items() if k not in strip} for d in theirs["items"]
    ]


def test_create_show_delete_device(cli: Cli) -> None:
    out = cli.json(
        "devices",
        "create",
        " ab 12 ",
        "--name",
        "Pump",
        "--tag",
        "site=north",
        "--owner",
        "tech@example.com",
    )
    assert isinstance(out, dict)
    assert (out["serial"], out["state"], out["owner"]) == ("AB12", "claimed", "tech@example.com")
    secret = out["credential"]["secret"]
    assert len(secret) >= 22
    shown = cli("devices", "show", "ab12", "--json").stdout
    assert secret not in shown
    assert hashlib.sha256(secret.encode()).hexdigest() not in shown
    dup = cli("devices", "create", "AB12", code=5)
    assert dup.stderr == "error[device-exists]: device AB12 is already registered\n"
    cli("devices", "delete", "AB12", "--yes")
    gone = cli("devices", "show", "AB12", code=4)
    assert gone.stderr == "error[device-not-found]: no device AB12\n"


def test_groups_users_models_tokens(cli: Cli) -> None:
    groups = cli.json("groups", "list")
    assert isinstance(groups, list)
    assert [g["path"] for g in groups] == [
        "Kanarra",
        "Kanarra/Sadler-Isberg",
        "Kanarra/Sadler-Isberg/West",
        "Kanarra/Sadler-Isberg/West/Anaheim",
        "Kanarra/Tekton Health",
    ]
    sub = cli.json("groups", "list", "--under", "Kanarra/Sadler-Isberg/West")
    assert isinstance(sub, list)
    assert len(sub) == 2
    busy = cli("groups", "delete", "Kanarra/Sadler-Isberg", code=5)
    assert busy.stderr.startswith("error[group-not-empty]")
    cli("groups", "delete", "Kanarra/Sadler-Isberg/West/Anaheim")

    bad_role = cli(
        "users",
        "create",
        "x@example.com",
        "--group",
        "Kanarra",
        "--role",
        "boss",
        "--password-stdin",
        input="long enough pw\n",
        code=2,
    )
    assert "role 'boss' is not a role" in bad_role.stderr
    short = cli(
        "users",
        "create",
        "x@example.com",
        "--group",
        "Kanarra",
        "--role",
        "viewer",
        "--password-stdin",
        input="short\n",
        code=2,
    )
    assert "password must be at least 8 characters" in short.stderr
    users = cli.json("users", "list")
    assert isinstance(users, list)
    assert [u["email"] for u in users] == ["tech@example.com"]
    assert users[0]["disabled_at"] is None
    disabled = cli.json("users", "disable", "Tech@Example.com")
    assert isinstance(disabled, dict)
    assert disabled["disabled_at"] is not None
    assert disabled["sessions_ended"] == 0
    assert "disabled" in cli("users", "list").stdout
    enabled = cli.json("users", "enable", "tech@example.com")
    assert isinstance(enabled, dict)
    assert enabled["disabled_at"] is None
    missing = cli("users", "disable", "nobody@example.com", code=4)
    assert missing.stderr == "error[user-not-found]: no user 'nobody@example.com'\n"

    cli("models", "add", "KG-450")
    assert cli("models", "add", "kg-450", code=5).stderr.startswith("error[model-exists]")
    cli("models", "delete", "KG-450")

    token = cli.json("tokens", "create", "factory-line-2")
    assert isinstance(token, dict)
    assert token["secret"].startswith("pvd_")
    listed = cli("tokens", "list", "--json").stdout
    assert token["secret"] not in listed
    cli("tokens", "revoke", "factory-line-2")
    again = cli("tokens", "revoke", "factory-line-2", code=4)
    assert again.stderr.startswith("error[token-not-found]")


def test_scoped_tokens(cli: Cli) -> None:
    wide = cli.json("tokens", "create", "ops")
    assert isinstance(wide, dict)
    assert (wide["role"], wide["group"], wide["expires_at"]) == ("admin", None, None)
    site = cli.json(
        "tokens",
        "create",
        "tekton-viewer",
        "--group",
        "Kanarra/Tekton Health",
        "--role",
        "viewer",
        "--expires",
        "30d",
    )
    assert isinstance(site, dict)
    assert (site["role"], site["group"]) == ("viewer", "Kanarra/Tekton Health")
    assert site["expires_at"] is not None
    dated = cli.json(
        "tokens",
        "create",
        "until-2099",
        "--role",
        "installer",
        "--group",
        "Kanarra",
        "--expires",
        "2099-01-31",
    )
    assert isinstance(dated, dict)
    assert dated["expires_at"].startswith("2099-01-31T00:00:00")

    listed = cli.json("tokens", "list")
    assert isinstance(listed, list)
    assert [(t["name"], t["role"], t["group"]) for t in listed] == [
        ("ops", "admin", None),
        ("tekton-viewer", "viewer", "Kanarra/Tekton Health"),
        ("until-2099", "installer", "Kanarra"),
    ]
    assert "ops" in cli("tokens", "list").stdout

    bad = cli("tokens", "create", "x", "--expires", "soon", code=2)
    assert bad.stderr.startswith("error[invalid-input]: expires 'soon' is neither")
    past = cli("tokens", "create", "x", "--expires", "2020-01-01", code=2)
    assert "is not in the future" in past.stderr
    role = cli("tokens", "create", "x", "--role", "boss", code=2)
    assert "role 'boss' is not a role" in role.stderr
    nowhere = cli("tokens", "create", "x", "--group", "Nowhere", code=4)
    assert nowhere.stderr == "error[group-not-found]: no group 'Nowhere'\n"
    busy = cli("groups", "delete", "Kanarra/Tekton Health", code=5)
    assert "1 tokens" in busy.stderr


def test_db_and_config_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    c = Cli(url)
    outdated = c("devices", "list", code=3)
    assert outdated.stderr.startswith("error[schema-outdated]")
    from provisiond.store.migrate import head_revision

    head = head_revision()
    assert c.json("db", "current") == {"current": None, "head": head, "up_to_date": False}
    c("db", "upgrade")
    assert c.json("db", "current") == {"current": head, "head": head, "up_to_date": True}
    masked = runner.invoke(
        app,
        [
            "config",
            "show",
            "--json",
            "--database",
            "postgresql://svc:hunter2@db.internal/provisiond",
        ],
    )
    assert masked.exit_code == 0
    assert (
        json.loads(masked.stdout)["database_url"] == "postgresql://svc:***@db.internal/provisiond"
    )
    assert "hunter2" not in masked.stdout
    table = runner.invoke(app, ["config", "show", "--database", url], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    rows = {
        line.split("│")[1].strip(): line.split("│")[2].strip()
        for line in table.stdout.splitlines()
        if line.count("│") == 3
    }
    assert rows["claims.window_seconds"] == "300"  # a group's settings, one row each
    assert rows["broker.kind"] == "none"
    assert not any(value.startswith("{") for value in rows.values())


def test_every_error_renders_with_its_code_and_exit_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import typer

    from provisiond.cli.common import Common, fail

    for code, cls in REGISTRY.items():
        err: ProvisiondError = cls("something went wrong")
        with pytest.raises(typer.Exit) as exit_info:
            fail(Common(json=True), err)
        assert exit_info.value.exit_code == cls.exit_code
        captured = capsys.readouterr()
        assert captured.err == f"error[{code}]: something went wrong\n"
        assert json.loads(captured.out)["code"] == code


def test_demo_seeds_once_and_its_secrets_work(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from provisiond.bootstrap import open_container
    from provisiond.domain.scope import Scope
    from provisiond.services import devices, directory
    from provisiond.services.hashing import verify_password
    from provisiond.settings import load_settings

    monkeypatch.setenv("PROVISIOND_DATA_DIR", str(tmp_path))
    c = Cli(database_url)
    first = c("demo", "--no-serve", "--port", "8123")
    assert "demo organisation Kanarra: 4 sites, 3 users, 24 devices" in first.stdout
    assert "http://127.0.0.1:8123/api/v1/devices" in first.stderr
    creds = read_creds(tmp_path / "demo-credentials.csv")
    assert (tmp_path / "demo-credentials.csv").stat().st_mode & 0o777 == 0o600
    assert len(creds) == len(c.serials()) == 24
    token = next(w for w in first.stdout.split() if w.startswith("pvd_"))

    async def check() -> None:
        async with open_container(load_settings(database_url=database_url)) as container:
            device = await devices.authenticate_device(
                container.uow(), token=creds[0]["secret"], now=container.now()
            )
            assert device.serial == creds[0]["serial"]
            operator = await directory.authenticate_token(
                container.uow(), secret=token, now=container.now()
            )
            assert operator.name == "demo"
            users = (await directory.list_users(container.uow(), scope=Scope.operator())).items
            assert len(users) == 3
            async with container.uow().read() as uow:
                for user in users:  # each printed password is that user's
                    printed = first.stdout.split(user.email, 1)[1].split()[1]
                    assert verify_password(await uow.users.password_hash(user.id), printed)

    asyncio.run(check())
    again = c("demo", "--no-serve")
    assert "already has data" in again.stderr
    assert len(c.serials()) == 24


def test_a_failure_after_the_commit_keeps_the_credentials(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from provisiond.services import registration
    from provisiond.store.bulk import BulkDeviceWriter

    async def broken(self: BulkDeviceWriter) -> None:
        raise OSError("the statistics could not be refreshed")

    monkeypatch.setattr(registration, "STATISTICS_AFTER_ROWS", 2)
    monkeypatch.setattr(BulkDeviceWriter, "refresh_statistics", broken)
    src = write(tmp_path / "b.csv", "serial\nK1\nK2\n")
    creds = tmp_path / "creds.csv"
    cli("devices", "import", str(src), "--credentials-out", str(creds))
    assert [r["serial"] for r in read_creds(creds)] == ["K1", "K2"]
    assert cli.serials() == ["K1", "K2"]
    assert "refreshing planner statistics after the import failed" in caplog.text


def test_import_under_profiles_gives_claim_codes_where_the_proof_needs_them(
    cli: Cli, tmp_path: Path
) -> None:
    made = cli.json(
        "profiles",
        "create",
        "labels",
        "--claim-proof",
        "code",
        "--claim-window",
        "600",
        "--release-policy",
        "reset",
    )
    assert isinstance(made, dict)
    assert (made["claim_proof"], made["claim_window_seconds"], made["release_policy"]) == (
        "code",
        600,
        "reset",
    )
    cli("profiles", "create", "buttons", "--claim-proof", "button")
    src = write(tmp_path / "batch.csv", "serial,profile\nL-1,\nL-2,buttons\nL-3,labels\n")
    out = tmp_path / "creds.csv"
    cli("devices", "import", str(src), "--credentials-out", str(out), "--profile", "labels")
    rows = read_creds(out)
    assert sorted((r["serial"], r["credential_type"]) for r in rows) == [
        ("L-1", "access-token"),
        ("L-1", "claim-code"),
        ("L-2", "access-token"),
        ("L-3", "access-token"),
        ("L-3", "claim-code"),
    ]
    codes = [r["secret"] for r in rows if r["credential_type"] == "claim-code"]
    assert len(set(codes)) == 2
    assert all(len(c.replace("-", "")) == 12 for c in codes)
    # bad options name what is wrong and change nothing
    bad = cli(
        "profiles",
        "create",
        "x",
        "--claim-proof",
        "smile",
        "--claim-window",
        "5",
        "--release-policy",
        "burn",
        code=2,
    )
    for text in ("claim_proof", "claim_window", "release_policy"):
        assert text in bad.stderr
    bad = cli(
        "devices",
        "import",
        str(src),
        "--credentials-out",
        str(tmp_path / "c2.csv"),
        "--profile",
        "nope",
        "--skip-existing",
        code=4,
    )
    assert "no profile 'nope'" in bad.stderr
