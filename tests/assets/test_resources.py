"""The one settings resource: shared by both domains, and never holding a secret value."""

from __future__ import annotations

import dagster as dg
import pytest

from cryptobot_assets.definitions import build_defs
from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_core.errors import ConfigError
from cryptobot_core.settings import Settings

SECRET_URI = "mongodb://app:s3cret-pass@127.0.0.1:1/?directConnection=true"


def test_both_domains_get_the_one_resource_built_once(settings: Settings) -> None:
    defs = build_defs(settings)
    config = defs.resources["config"]
    assert isinstance(config, CryptobotSettingsResource)
    assert defs.resources["mongo_io_manager"].config is config
    assert config.settings().database == settings.database


def test_the_store_uri_is_an_env_var_never_a_value(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRYPTOBOT_MONGO_URI", SECRET_URI)
    pinned = CryptobotSettingsResource.from_settings(
        settings.model_copy(update={"mongo_uri": SECRET_URI})
    )
    assert isinstance(pinned.mongo_uri, dg.EnvVar)
    assert pinned.mongo_uri.env_var_name == "CRYPTOBOT_MONGO_URI"
    # Nothing the UI or run storage could show carries the password.
    assert "s3cret" not in repr(pinned) and "s3cret" not in str(pinned.model_dump())
    # The settings still connect with it, read from the environment.
    assert pinned.settings().effective_mongo_uri == SECRET_URI


def test_a_uri_that_is_not_in_the_environment_is_refused_with_what_to_do(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRYPTOBOT_MONGO_URI")
    with pytest.raises(ConfigError, match="set CRYPTOBOT_MONGO_URI"):
        CryptobotSettingsResource.from_settings(settings)
