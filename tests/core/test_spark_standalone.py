"""Features on a standalone Spark cluster (a master and a worker from the pyspark package),
reached through the master-URL setting, equal the local-mode result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cryptobot_core import services
from cryptobot_core.features import compute_features
from cryptobot_core.settings import load_settings
from tests.core.test_features import START, make_rows, spark  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
END = START + timedelta(days=1)

# The driver runs in its own process: this one already holds a local session.
DRIVER = """
import json, sys
from cryptobot_core.features import compute_features, start_spark
from cryptobot_core.settings import load_settings
from tests.core.test_spark_standalone import END, START, make_rows

spark = start_spark(load_settings(_env_file=None).spark_master)
try:
    rows = compute_features(spark, make_rows(), START, END)
    print(json.dumps({"master": spark.sparkContext.master, "rows": rows}, default=str))
finally:
    spark.stop()
"""


def _master_state(web_port: int) -> dict[str, Any]:
    try:
        answer = httpx.get(f"http://127.0.0.1:{web_port}/json/", timeout=5, follow_redirects=True)
        state: dict[str, Any] = answer.json()
        return state
    except (httpx.HTTPError, ValueError):
        return {}


def test_features_on_a_standalone_cluster_equal_local_mode(spark: Any, tmp_path: Path) -> None:  # noqa: F811
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    spark_class = str(spark_home / "bin" / "spark-class")
    env = {
        "SPARK_HOME": str(spark_home),
        "PYSPARK_PYTHON": sys.executable,
        # No REST submission server: it would take the fixed port 6066.
        "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false",
    }
    port, web, worker_web = services.free_ports(3)
    master_url = f"spark://127.0.0.1:{port}"
    master = services.ManagedProcess(
        name="spark-master",
        argv=[spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
        + ["--port", str(port), "--webui-port", str(web)],
        log_path=tmp_path / "master.log",
        healthy=lambda: bool(_master_state(web)),
        env=env,
        startup_timeout=120,
    ).start()
    try:
        worker = services.ManagedProcess(
            name="spark-worker",
            argv=[spark_class, "org.apache.spark.deploy.worker.Worker", master_url]
            + ["--host", "127.0.0.1", "--cores", "1", "--memory", "1g"]
            + ["--webui-port", str(worker_web), "--work-dir", str(tmp_path / "work")],
            log_path=tmp_path / "worker.log",
            healthy=lambda: any(
                w.get("state") == "ALIVE" for w in _master_state(web).get("workers", [])
            ),
            env=env,
            startup_timeout=120,
        ).start()
        try:
            # The setting is what a deployment changes: CRYPTOBOT_SPARK_MASTER.
            assert load_settings(_env_file=None, spark_master=master_url).spark_master
            driver = subprocess.run(
                [sys.executable, "-c", DRIVER],
                env={
                    **os.environ,
                    **env,
                    "CRYPTOBOT_SPARK_MASTER": master_url,
                    "PYTHONPATH": str(REPO),
                },
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert driver.returncode == 0, driver.stderr[-3000:]
            body = json.loads(driver.stdout.strip().splitlines()[-1])
            assert body["master"] == master_url
            # It ran on the cluster: the master lists the finished application.
            finished = _master_state(web).get("completedapps", [])
            assert any(app.get("name") == "cryptobot-features" for app in finished), finished
        finally:
            worker.stop()
    finally:
        master.stop()

    local = json.loads(json.dumps(compute_features(spark, make_rows(), START, END), default=str))
    assert len(body["rows"]) == len(local) > 0
    for got, want in zip(body["rows"], local, strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-15), (key, want)
            else:
                assert got[key] == value, (key, want)
