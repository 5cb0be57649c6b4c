"""The built wheel works outside the repository: its package data (the Dagster instance, the
workspace, the store's users, the dashboard app) ship inside it.

Cheap but honest: the wheel is built from the working tree and installed with --no-deps
into a fresh venv that borrows this environment's dependencies through a .pth file (no
455 MB PySpark download); then the commands run from a folder outside the repository.
"""

from __future__ import annotations

import os
import shutil
import signal
import site
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cryptobot_core.services import free_port

REPO = Path(__file__).resolve().parents[3]
SOURCES = ("pyproject.toml", "README.md", "cryptobot_core", "cryptobot_assets", "cryptobot_api")
SOURCES += ("dashboard",)


def _run(
    argv: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel installed (dependencies borrowed read-only)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, src / name)
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(work / "dist"), str(src)],
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = (work / "dist").glob("cryptobot-*.whl")
    venv = work / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)]).returncode == 0
    python = venv / "bin" / "python"
    installed = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel)],
        timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    # Appended after the venv's own site-packages, so the wheel's modules win.
    (Path(purelib.stdout.strip()) / "borrowed_dependencies.pth").write_text(
        "\n".join(site.getsitepackages()) + "\n"
    )
    return venv


@pytest.fixture
def outside(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder outside the repository and an environment without project settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONPATH" and (not k.startswith("CRYPTOBOT_") or k.startswith("CRYPTOBOT_TEST"))
    }
    return tmp_path, env


@pytest.mark.slow
def test_the_installed_wheel_runs_from_anywhere(
    wheel_venv: Path, outside: tuple[Path, dict[str, str]]
) -> None:
    cwd, env = outside
    bin_dir = wheel_venv / "bin"
    helped = _run([str(bin_dir / "cryptobot"), "--help"], cwd=cwd, env=env, timeout=120)
    assert helped.returncode == 0, helped.stderr
    for command in ("up", "simulate", "backfill", "stream"):
        assert command in helped.stdout

    code = (
        "import cryptobot_core, dashboard; from cryptobot_core.launcher import credentials, specs;"
        "print(cryptobot_core.__file__); print(specs.dashboard_script());"
        "print(specs.DEV_INSTANCE.is_file(), specs.WORKSPACE.is_file(),"
        " [u.name for u in credentials.app_users()])"
    )
    found = _run([str(bin_dir / "python"), "-c", code], cwd=cwd, env=env, timeout=120)
    assert found.returncode == 0, found.stderr
    module, app, data = found.stdout.splitlines()
    assert Path(module).is_relative_to(wheel_venv) and Path(app).is_relative_to(wheel_venv)
    assert data == "True True ['cryptobot_app', 'cryptobot_ro']"


@pytest.mark.slow
def test_the_installed_wheel_serves_the_simulator_and_starts_the_store(
    wheel_venv: Path, outside: tuple[Path, dict[str, str]]
) -> None:
    cwd, env = outside
    port = free_port()
    answer = None
    with open(cwd / "simulate.err", "wb") as errors:
        sim = subprocess.Popen(
            [str(wheel_venv / "bin" / "cryptobot"), "simulate", "--port", str(port)],
            cwd=cwd,
            env={**env, "CRYPTOBOT_EXCHANGE": "sim"},
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        try:
            deadline = time.monotonic() + 120
            while answer is None and time.monotonic() < deadline and sim.poll() is None:
                try:
                    answer = httpx.get(f"http://127.0.0.1:{port}/api/v3/ping", timeout=2).json()
                except httpx.HTTPError:
                    time.sleep(0.3)
        finally:
            sim.send_signal(signal.SIGINT)
            try:
                sim.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sim.kill()  # never leave it behind; the test fails below
                sim.wait()
                raise AssertionError((cwd / "simulate.err").read_text()) from None
    assert answer == {}, (cwd / "simulate.err").read_text()

    # `cryptobot up` with the store only: its users come from the wheel's definitions file.
    up_env = {**env, "CRYPTOBOT_EXCHANGE": "binance", "CRYPTOBOT_MONGO_PORT": str(free_port())}
    out = cwd / "up.out"
    with open(out, "wb") as sink:
        up = subprocess.Popen(
            [str(wheel_venv / "bin" / "cryptobot"), "up"]
            + [
                arg
                for name in ("broker", "dagster", "api", "dashboard")
                for arg in ("--skip", name)
            ],
            cwd=cwd,
            env=up_env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while "CryptoBot is up" not in out.read_text() and up.poll() is None:
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.3)
            assert "mongodb://cryptobot_app:***@127.0.0.1" in out.read_text(), out.read_text()
        finally:
            up.send_signal(signal.SIGINT)
            try:
                code = up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
                raise AssertionError(out.read_text()) from None
            assert code == 0, out.read_text()
    assert sorted(p.name for p in (cwd / ".cryptobot" / "secrets").iterdir()) == [
        "mongo_admin_password",
        "mongo_app_password",
        "mongo_readonly_password",
    ]
