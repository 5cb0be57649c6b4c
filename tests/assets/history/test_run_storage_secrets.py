"""No password reaches Dagster's run storage: a materialization and a stream job run with a
store URI that carries a real password, then every byte Dagster stored is searched for it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import pytest
from pymongo import MongoClient

from cryptobot_assets.definitions import build_defs
from cryptobot_assets.history.assets import KLINES_KEY
from cryptobot_assets.history.partitions import partition_key
from cryptobot_core.settings import Settings
from cryptobot_core.simulator import SimulatorServer
from cryptobot_core.store import HISTORICAL_15M
from tests.assets.history.conftest import TODAY, point_at, temp_instance


def _with_credentials(uri: str, user: str, password: str) -> str:
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, "authSource=admin") if q)
    return urlunsplit((parts.scheme, f"{user}:{password}@{parts.netloc}", parts.path, query, ""))


def _stored_bytes(home: Path) -> bytes:
    """Everything under the instance's directory: run and event databases, logs, WAL files."""
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def test_a_materialization_and_a_stream_job_store_no_password(
    settings: Settings,
    real_sim: SimulatorServer,
    mongo_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user, password = f"u{uuid.uuid4().hex[:10]}", f"pw-{uuid.uuid4().hex}"
    admin: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    admin.admin.command("createUser", user, pwd=password, roles=[{"role": "root", "db": "admin"}])
    try:
        uri = _with_credentials(mongo_uri, user, password)
        # As in production: the URI reaches Dagster's processes through their environment.
        monkeypatch.setenv("CRYPTOBOT_MONGO_URI", uri)
        defs = build_defs(point_at(settings, real_sim, mongo_uri=uri))
        home = tmp_path / "dagster"
        instance = temp_instance(home)
        try:
            instance.add_dynamic_partitions("symbols", ["BTCUSDT"])
            day = TODAY - timedelta(days=1)
            materialized = dg.materialize(
                [defs.get_assets_def(KLINES_KEY)],
                instance=instance,
                resources=defs.resources,
                partition_key=str(partition_key("BTCUSDT", day)),
            )
            assert materialized.success
            # The password was used: the candles are in the store.
            assert admin[settings.database][HISTORICAL_15M].count_documents({}) == 96
            repaired = defs.get_job_def("stream_repair_job").execute_in_process(instance=instance)
            assert repaired.success

            runs = instance.get_runs()
            assert len(runs) == 2
            events = [e for r in runs for e in instance.all_logs(r.run_id)]
            assert len(events) > 10
            # Snapshots are stored compressed: search them decoded, with the runs and events.
            snapshots = [
                dg.serialize_value(instance.get_job_snapshot(r.job_snapshot_id)) for r in runs
            ]
            searched = b"\n".join(
                [_stored_bytes(home)]
                + [s.encode() for s in snapshots]
                + [repr(r.run_config).encode() + repr(r.tags).encode() for r in runs]
                + [repr(e).encode() for e in events]
            )
            # The search reads the stored resource configuration: the variable's name is
            # there (the UI shows it)...
            assert b"CRYPTOBOT_MONGO_URI" in searched
            # ...and the password is nowhere, in any form.
            forms = {
                "plain": password,
                "upper-case": password.upper(),
                "hex": password.encode().hex(),
            }
            leaked = [name for name, form in forms.items() if form.encode() in searched]
            assert not leaked, f"the password is in run storage ({', '.join(leaked)})"
        finally:
            instance.dispose()
    finally:
        admin.admin.command("dropUser", user)
        admin.close()
