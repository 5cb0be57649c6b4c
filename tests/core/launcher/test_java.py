"""The one Java check, against real `java` binaries (this machine's, and stand-ins)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cryptobot_core.errors import ConfigError, ServiceError
from cryptobot_core.launcher import java
from cryptobot_core.launcher.supervisor import check_java
from cryptobot_core.settings import load_settings


@pytest.mark.parametrize(
    ("text", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15\nOpenJDK Runtime Environment', 17),
        ('java version "1.8.0_392"\nJava(TM) SE Runtime Environment', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("bash: java: command not found", None),
    ],
)
def test_parse_java_version(text: str, major: int | None) -> None:
    assert java.parse_java_version(text) == major


def test_java_on_this_machine_is_detected() -> None:
    if shutil.which("java") is None:
        pytest.skip("no java on this machine")
    version = java.java_major_version()
    assert version is not None and version >= 8


def _fake_java_home(tmp_path: Path, version: str) -> Path:
    home = tmp_path / f"jdk-{version}"
    (home / "bin").mkdir(parents=True)
    binary = home / "bin" / "java"
    binary.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2019-01-15' >&2\n")
    binary.chmod(0o755)
    return home


def test_java_home_wins_and_an_old_java_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(_fake_java_home(tmp_path, "11.0.2")))
    assert java.java_major_version() == 11
    assert not java.java_available()
    with pytest.raises(ConfigError, match=r"Java 11 was found, but PySpark needs Java 17\+"):
        java.require_java()
    monkeypatch.setenv("JAVA_HOME", str(_fake_java_home(tmp_path, "17.0.1")))
    assert java.java_available()
    java.require_java()


def test_missing_or_old_java_stops_up_unless_allowed(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in (None, 11):
        with pytest.raises(ServiceError) as err:
            check_java(load_settings(), version)
        message = str(err.value)
        assert "PySpark" in message and "Java 17+" in message
        assert "CRYPTOBOT_REQUIRE_JAVA=false" in message
    warning = check_java(load_settings(require_java=False), None)
    assert warning is not None and "no Java was found" in warning
    assert check_java(load_settings(), 17) is None
