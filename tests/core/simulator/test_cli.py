"""`cryptobot simulate`: a real process serving the seeded market; bad options are clear errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from cryptobot_core.services import free_port
from cryptobot_core.simulator import Market, SimConfig

CLI = [sys.executable, "-c", "from cryptobot_core.cli import main; main()", "simulate"]
DAY_2025_01_01 = 1_735_689_600_000


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[str, str]:
    """Ctrl-C the simulator and collect its output; killed (and the test failed) if it hangs."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"simulator ignored Ctrl-C for {timeout} s:\n{err[-2000:]}") from None


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOBOT_")}


def test_simulate_serves_the_seeded_market(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "--port", str(port), "--seed", "7"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/v3/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.2)
        rows = httpx.get(
            f"{url}/api/v3/klines",
            params={
                "symbol": "BTCUSDT",
                "interval": "1h",
                "startTime": DAY_2025_01_01,
                "endTime": DAY_2025_01_01 + 86_399_999,
            },
        ).json()
        assert rows == Market(SimConfig(seed=7)).klines_rows(
            "BTCUSDT", "1h", DAY_2025_01_01, DAY_2025_01_01 + 86_399_999
        )
        assert len(rows) == 24
    finally:
        out, err = stop(proc)
    assert proc.returncode == 0, err
    assert f"127.0.0.1:{port}" in out and "Traceback" not in err


def test_simulate_serves_a_whole_generated_market(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "--port", str(port), "--trading-symbols", "1500", "--archive-delay", "0"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/v3/ping", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "simulator did not start"
            time.sleep(0.2)
        symbols = httpx.get(f"{url}/api/v3/exchangeInfo", timeout=30).json()["symbols"]
        assert sum(s["status"] == "TRADING" for s in symbols) == 1500 and len(symbols) == 1575
        archive = httpx.get(
            f"{url}/data/spot/monthly/klines/BTCUSDT/1d/BTCUSDT-1d-2025-01.zip", timeout=30
        )
        assert archive.status_code == 200 and archive.content[:2] == b"PK"
    finally:
        out, err = stop(proc)
    assert proc.returncode == 0, err
    assert "1575 symbols" in out and "Traceback" not in err


def test_simulate_rejects_bad_options_without_traceback(tmp_path: Path) -> None:
    r = subprocess.run(
        [*CLI, "--speed", "0"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--speed must be > 0" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [*CLI, "--start", "yesterday", "--speed", "10"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--start must be an ISO 8601 time" in r.stderr
    r = subprocess.run(
        [*CLI, "--trading-symbols", "0"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--trading-symbols must be 1..20000" in r.stderr
    assert "Traceback" not in r.stderr


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("sig", "inherited_ignore"),
    [
        pytest.param(signal.SIGTERM, False, id="sigterm"),
        # Started the way a shell without job control starts a background command: the
        # ignored SIGINT is inherited, and Ctrl-C must still stop it.
        pytest.param(signal.SIGINT, True, id="ctrl-c-from-a-parent-that-ignores-it"),
    ],
)
def test_simulate_stops_cleanly_on_a_signal(
    tmp_path: Path, sig: signal.Signals, inherited_ignore: bool
) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*CLI, "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if inherited_ignore else None,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v3/ping", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(proc.communicate())
        time.sleep(0.2)
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"simulator ignored {sig.name} for 30 s") from None
    assert proc.returncode == 0 and "Traceback" not in err
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/api/v3/ping", timeout=1)
