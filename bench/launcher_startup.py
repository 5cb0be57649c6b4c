"""Start-up and shutdown time of `cryptobot up`, as a ratio against the bare services.

Baseline: the same services (SecantusDB with its users, Tansu, the simulator, `dagster dev`)
started one after the other by the launcher's Stack, without the CLI, then stopped. Measured: the
`cryptobot up` subprocess from launch until it prints "CryptoBot is up", then from SIGINT
until it exits. The ratio is the launcher's own cost (settings, exchange resolution, Java
check, port checks, its import time) over the services' start-up. Rounds alternate.

    .venv/bin/python bench/launcher_startup.py --rounds 2
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptobot_core import services
from cryptobot_core.launcher import Stack, plan
from cryptobot_core.launcher.credentials import prepare_store_access
from cryptobot_core.launcher.stackenv import stack_settings
from cryptobot_core.settings import load_settings

CRYPTOBOT = Path(sys.executable).with_name("cryptobot")
SKIP = ["--skip", "api", "--skip", "dashboard"]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOBOT_")}
    names = ("MONGO", "KAFKA", "SIM", "DAGSTER", "API", "DASHBOARD")
    for name, port in zip(names, services.free_ports(len(names)), strict=True):
        env[f"CRYPTOBOT_{name}_PORT"] = str(port)
    env["CRYPTOBOT_DATA_DIR"] = str(data_dir)
    env["CRYPTOBOT_EXCHANGE"] = "sim"
    return env


def baseline(data_dir: Path) -> tuple[float, float]:
    """Seconds to start and to stop the bare services."""
    env = _env(data_dir)
    overrides = {
        k.removeprefix("CRYPTOBOT_").lower(): v
        for k, v in env.items()
        if k.startswith("CRYPTOBOT_")
    }
    settings = load_settings(**overrides)
    specs = plan(settings, ["api", "dashboard"])
    began = time.perf_counter()
    # Part of the start-up: the store's users (a fresh data dir, as for `cryptobot up`).
    prepared = prepare_store_access(settings, data_dir / "logs" / "store.log")
    stack = Stack(stack_settings(prepared, [s.name for s in specs]), specs)
    stack.start()
    started = time.perf_counter() - began
    began = time.perf_counter()
    stack.stop()
    return started, time.perf_counter() - began


def measured(data_dir: Path) -> tuple[float, float]:
    """Seconds for `cryptobot up` to be up, and to exit after SIGINT."""
    env = _env(data_dir)
    out = data_dir.with_suffix(".out")
    with open(out, "wb") as sink:
        began = time.perf_counter()
        proc = subprocess.Popen(
            [str(CRYPTOBOT), "up", *SKIP],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while "CryptoBot is up" not in out.read_text(errors="replace"):
            if proc.poll() is not None:
                raise SystemExit(f"cryptobot up failed:\n{out.read_text()}")
            time.sleep(0.05)
        started = time.perf_counter() - began
        began = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        return started, time.perf_counter() - began


def main() -> None:
    """Run the rounds and print a Markdown table."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    base_up, base_down, up, down = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            s, d = baseline(Path(tmp) / f"base{i}")
            base_up.append(s)
            base_down.append(d)
            s, d = measured(Path(tmp) / f"up{i}")
            up.append(s)
            down.append(d)
    print("| phase | bare services (s, median) | cryptobot up (s, median) | ratio |")
    print("|---|---|---|---|")
    for phase, b, m in (("start until healthy", base_up, up), ("stop", base_down, down)):
        mb, mm = statistics.median(b), statistics.median(m)
        print(f"| {phase} | {mb:.1f} | {mm:.1f} | {mm / mb:.2f} |")
    print(f"\nrounds: {args.rounds}; raw baseline up {base_up}, launcher up {up}")


if __name__ == "__main__":
    main()
