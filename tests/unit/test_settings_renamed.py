"""Settings that moved into groups keep working under their old flat names."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from provisiond import settings as settings_module
from provisiond.domain.claims import ClaimProof
from provisiond.errors import ConfigurationError
from provisiond.settings import CONFIG_FILE_ENV, RENAMED, Settings, load_settings


@pytest.fixture(autouse=True)
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PROVISIOND_* variables (tests/conftest.py sets one), no config file, and every
    deprecation warning not yet given."""
    for name in list(os.environ):
        if name.upper().startswith("PROVISIOND_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(settings_module, "_warned", set())


def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    path = tmp_path / "provisiond.toml"
    path.write_text(text)
    monkeypatch.setenv(CONFIG_FILE_ENV, str(path))


def test_every_old_name_points_at_a_field_of_its_group() -> None:
    for old, (group, field) in RENAMED.items():
        assert old not in Settings.model_fields
        model = Settings.model_fields[group].annotation
        assert field in model.model_fields, (old, group, field)  # type: ignore[union-attr]


def test_an_old_environment_name_sets_the_new_field_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PROVISIOND_CLAIM_WINDOW_SECONDS", "600")
    monkeypatch.setenv("PROVISIOND_WEBHOOK_ALLOW_NETWORKS", '["10.20.0.0/16"]')
    with caplog.at_level(logging.WARNING, logger="provisiond.settings"):
        first = load_settings(database_url="sqlite://")
        second = load_settings(database_url="sqlite://")
    assert first.claims.window_seconds == second.claims.window_seconds == 600
    assert first.webhooks.allow_networks == ["10.20.0.0/16"]
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2
    assert any(
        "claim_window_seconds" in w and "PROVISIOND_CLAIMS__WINDOW_SECONDS" in w for w in warnings
    )


def test_an_old_config_file_key_sets_the_new_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config_file(tmp_path, monkeypatch, 'claim_proof = "button"\nhttp_max_connections = 64\n')
    with caplog.at_level(logging.WARNING, logger="provisiond.settings"):
        settings = load_settings(database_url="sqlite://")
    assert settings.claims.proof is ClaimProof.BUTTON
    assert settings.limits.http_max_connections == 64
    assert any("claims__proof" in r.getMessage() for r in caplog.records)


def test_old_and_group_keywords_set_the_new_field_without_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="provisiond.settings"):
        settings = load_settings(
            database_url="sqlite://", session_hours=2, limits__mqtt_max_sessions=32
        )
    assert settings.sessions.hours == 2
    assert settings.limits.mqtt_max_sessions == 32
    assert not caplog.records


def test_both_names_in_one_place_are_refused_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVISIOND_CLAIM_WINDOW_SECONDS", "600")
    monkeypatch.setenv("PROVISIOND_CLAIMS__WINDOW_SECONDS", "900")
    with pytest.raises(ConfigurationError, match="claim_window_seconds and claims__window_seconds"):
        load_settings(database_url="sqlite://")


def test_both_names_in_one_file_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file(tmp_path, monkeypatch, "session_hours = 2\n[sessions]\nhours = 3\n")
    with pytest.raises(ConfigurationError, match="session_hours and sessions__hours"):
        load_settings(database_url="sqlite://")


def test_across_places_the_usual_precedence_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_file(tmp_path, monkeypatch, "[claims]\nwindow_seconds = 900\nrate_per_minute = 5\n")
    monkeypatch.setenv("PROVISIOND_CLAIM_WINDOW_SECONDS", "600")
    from_env = load_settings(database_url="sqlite://")
    assert (from_env.claims.window_seconds, from_env.claims.rate_per_minute) == (600, 5)
    from_argument = load_settings(database_url="sqlite://", claim_window_seconds=120)
    assert from_argument.claims.window_seconds == 120
