"""The table of services: what `cryptobot up` starts for which settings, and the files it ships."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cryptobot_core.errors import ServiceError
from cryptobot_core.launcher import SERVICES, plan
from cryptobot_core.launcher.specs import (
    DAGSTER,
    STORE,
    WORKSPACE,
    dashboard_script,
    install_dagster_home,
)
from cryptobot_core.services import free_ports
from cryptobot_core.settings import Settings, load_settings


def test_plan_starts_only_what_is_not_configured(clean_env: Path) -> None:
    sim = plan(load_settings(exchange="sim"))
    assert [spec.name for spec in sim] == [
        "store",
        "broker",
        "simulator",
        "dagster",
        "api",
        "dashboard",
    ]
    defaults = load_settings(exchange="sim")
    assert [spec.port(defaults) for spec in sim] == [27117, 19092, 9443, 3000, 8000, 8501]
    external = plan(
        load_settings(
            exchange="binance",
            mongo_uri="mongodb://db:27017",
            kafka_bootstrap_servers="k:9092",
        )
    )
    assert [spec.name for spec in external] == ["dagster", "api", "dashboard"]
    skipped = plan(load_settings(exchange="sim"), skip=["dagster", "simulator"])
    assert {s.name for s in skipped} == {"store", "broker", "api", "dashboard"}
    with pytest.raises(ServiceError, match="allowed: store, broker"):
        plan(load_settings(exchange="sim"), skip=["mongo"])
    with pytest.raises(ServiceError, match="resolve_exchange"):
        plan(load_settings(exchange="auto"))


def test_every_row_is_complete_and_only_dagster_writes(clean_env: Path) -> None:
    settings = load_settings(exchange="sim")
    assert len({spec.name for spec in SERVICES}) == len(SERVICES)
    for spec in SERVICES:
        assert spec.port_setting in Settings.model_fields, spec.name
        assert spec.port_var in {f"CRYPTOBOT_{n.upper()}" for n in Settings.model_fields}
        command = spec.command(settings)
        assert command and all(isinstance(part, str) for part in command), spec.name
        port = str(spec.port(settings))
        assert any(part.endswith(port) for part in command), f"{spec.name} ignores its port"
    assert [spec.name for spec in SERVICES if spec.access == "write"] == ["dagster"]
    # The store always runs with authentication; its shown URL never holds a password.
    assert "--auth" in STORE.command(settings)
    shown = STORE.url(settings.model_copy(update={"mongo_uri": "mongodb://a:pw@h:1/"}))
    assert "pw" not in shown


def test_shipped_files_are_found_without_the_repository() -> None:
    # Resolved from the installed packages, not from a source checkout.
    assert dashboard_script().name == "app.py" and dashboard_script().exists()
    workspace = yaml.safe_load(WORKSPACE.read_text())
    module = workspace["load_from"][0]["python_module"]
    assert module == {"module_name": "cryptobot_assets.definitions", "attribute": "defs"}
    assert "working_directory" not in module
    assert str(WORKSPACE) in DAGSTER.command(load_settings())


def test_dev_dagster_yaml_is_a_valid_instance_with_queue_and_pools(tmp_path: Path) -> None:
    home = tmp_path / "dagster"
    install_dagster_home(home)
    code = (
        "import dagster as dg; i = dg.DagsterInstance.get(); c = i.get_concurrency_config();"
        "print(type(i.run_coordinator).__name__, c.run_queue_config.max_concurrent_runs,"
        " c.pool_config.default_pool_limit)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.split() == ["QueuedRunCoordinator", "8", "2"]


def test_ports_chosen_together_are_distinct_and_free() -> None:
    """One at a time the kernel may hand back a port it just released (two services were
    once given the same one); chosen together they never repeat."""
    ports = free_ports(64)
    assert len(set(ports)) == 64
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # each is still free to take
