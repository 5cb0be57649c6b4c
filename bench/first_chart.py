"""Time to first chart: a newcomer's clone, `make up`, and the first candlestick on screen.

    .venv/bin/python bench/first_chart.py [--repo .] [--timeout 900]

Clones the repository into an empty folder, runs `make up` there with no CRYPTOBOT_*
setting but free ports (so it never meets a stack already running), and loads the
dashboard in headless Chromium every few seconds until a chart shows a drawn candlestick
trace. The clock starts before `git clone`; the phases are:
- clone;
- install: `make up` until the launcher starts (the venv and `pip install -e .[dev]`, from
  pip's cache as on any machine that installed once; a first install also downloads);
- start: until `cryptobot up` prints "CryptoBot is up";
- data: until the first candlestick is drawn (catch-up fills the newest day first, the
  stream starts with Dagster).

The target is 5 minutes for the whole; the figure is also given as a ratio to it, and the
install phase as a share of the total (the part a second start does not pay).
Stops the stack with Ctrl-C (SIGINT to `make up`'s process group) and removes the folder.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptobot_core.services import free_ports

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
TARGET_S = 300.0
DRAWN_CANDLES_JS = """() => [...document.querySelectorAll('.js-plotly-plot .trace.boxes path')]
    .some(e => (e.getAttribute('d') || '').length > 10)"""


def _first_candle_drawn(base: str, deadline: float) -> tuple[float, str]:
    """Load the dashboard's Historical and Live pages in turn until one draws a candlestick
    trace; the monotonic time it was, and which page."""
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page()
            while time.monotonic() < deadline:
                for path in ("/", "/live"):
                    try:
                        page.goto(base + path, timeout=30_000)
                        page.wait_for_function(DRAWN_CANDLES_JS, timeout=15_000)
                        return time.monotonic(), path
                    except Error:
                        continue
        finally:
            browser.close()
    raise SystemExit(f"no candlestick on {base} before the timeout")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", default=str(ROOT), help="repository to clone (default: this one)")
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="first-chart-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOBOT_")}
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    names = ("MONGO", "KAFKA", "SIM", "DAGSTER", "API")
    *chosen, dashboard_port = free_ports(len(names) + 1)
    ports = dict(zip(names, chosen, strict=True))
    env.update({f"CRYPTOBOT_{name}_PORT": str(port) for name, port in ports.items()})
    env["CRYPTOBOT_DASHBOARD_PORT"] = str(dashboard_port)
    marks: dict[str, float] = {}
    up: subprocess.Popen[bytes] | None = None
    page = ""
    started = time.monotonic()
    try:
        subprocess.run(["git", "clone", "-q", args.repo, str(folder / "cryptobot")], check=True)
        repo = folder / "cryptobot"
        marks["clone"] = time.monotonic()
        out_path = folder / "make-up.out"
        with open(out_path, "wb") as out:
            up = subprocess.Popen(
                ["make", "up"],
                cwd=repo,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = started + args.timeout
        while "start" not in marks and time.monotonic() < deadline:
            text = out_path.read_text(errors="replace")
            if "install" not in marks and re.search(r"bin/cryptobot up", text):
                marks["install"] = time.monotonic()
            if "CryptoBot is up" in text:
                marks.setdefault("install", time.monotonic())
                marks["start"] = time.monotonic()
            elif up.poll() is not None:
                raise SystemExit(f"make up exited with {up.returncode}:\n{text[-3000:]}")
            time.sleep(0.5)
        if "start" not in marks:
            raise SystemExit("make up did not come up before the timeout")
        marks["data"], page = _first_candle_drawn(f"http://127.0.0.1:{dashboard_port}", deadline)
    finally:
        if up is not None and up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
            try:
                up.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
        shutil.rmtree(folder, ignore_errors=True)
    total = marks["data"] - started
    phases, last = {}, started
    for name in ("clone", "install", "start", "data"):
        phases[name] = round(marks[name] - last, 1)
        last = marks[name]
    print(
        json.dumps(
            {
                "time_to_first_chart_s": round(total, 1),
                "target_s": TARGET_S,
                "ratio_to_target": round(total / TARGET_S, 2),
                "phases_s": phases,
                "install_share": round(phases["install"] / total, 2),
                "first_chart_on": page,
                "python": sys.version.split()[0],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
