"""Benchmark the dashboard's first render of a 6-month historical view, after the API answered.

The page times itself from the moment its API reads returned to the end of the script run
(``_historical_render_s``). Baseline, measured in the same run: the same Streamlit test
harness drawing one bare Plotly line of the same number of points — the least a page
showing this data can cost. The stand-in API of the page tests serves the data over real
HTTP, so the figure is independent of the store; the API's own speed is benchmarked by the
API work.

Run: ``.venv/bin/python bench/dashboard_render.py [--repeat 5] [--days 182]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard.display import points  # noqa: E402
from tests.dashboard.standin import StandIn  # noqa: E402

# Set by dashboard/views/historical.py (importing a page module would run the page).
RENDER_TIME_KEY = "_historical_render_s"
BASELINE = """
import plotly.graph_objects as go
import streamlit as st
from tests.dashboard.standin import candle
from datetime import UTC, datetime, timedelta
t0 = datetime(2026, 1, 1, tzinfo=UTC)
rows = [candle(t0 + timedelta(seconds=14400 * i), 14400) for i in range(N)]
st.plotly_chart(go.Figure(go.Scatter(x=[r["open_time"] for r in rows],
                                     y=[float(r["close"]) for r in rows])))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--days", type=int, default=182)
    args = parser.parse_args()

    api = StandIn().start()
    os.environ["CRYPTOBOT_API_URL"] = api.url
    start = api.last.date() - timedelta(days=args.days - 1)
    renders, wholes, warm, baselines = [], [], [], []
    try:
        for i in range(args.repeat):
            at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120).run()
            at.selectbox(key="hist_interval").set_value("15m")
            # A new end date each round: no cached API answer, a true first render.
            end = api.last.date() - timedelta(days=i)
            at.date_input(key="hist_range").set_value((start - timedelta(days=i), end))
            t0 = time.perf_counter()
            at.run()
            wholes.append(time.perf_counter() - t0)
            assert not at.exception and len(at.get("plotly_chart")) == 4
            renders.append(at.session_state[RENDER_TIME_KEY])
            t0 = time.perf_counter()
            at.run()  # same view again: every API read is a cache hit
            warm.append(time.perf_counter() - t0)
        interval = api.candle_requests()[-1]["interval"]
        n = points(interval, timedelta(days=args.days))
        step = {"2h": 7200, "4h": 14400, "6h": 21600}.get(interval, 14400)
        script = BASELINE.replace("range(N)", f"range({n})").replace("14400", str(step))
        for _ in range(args.repeat):
            base = AppTest.from_string(script, default_timeout=120)
            t0 = time.perf_counter()
            base.run()
            baselines.append(time.perf_counter() - t0)
    finally:
        api.stop()

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    b = med(baselines)
    print(
        f"6-month view ({args.days} days) drawn as {interval} candles (+ 15m features "
        f"bucketed to {interval}); median of {args.repeat}, [first, max] in brackets"
    )
    print(f"  baseline: one bare Plotly line, same points : {b:.3f} s")
    print(
        f"  render after the API answered (4 charts)    : {med(renders):.3f} s "
        f"[{renders[0]:.3f}, {max(renders):.3f}]  ratio {med(renders) / b:.2f}x baseline"
    )
    print(
        f"  whole page run, API reads included          : {med(wholes):.3f} s "
        f"[{wholes[0]:.3f}, {max(wholes):.3f}]  ratio {med(wholes) / b:.2f}x baseline"
    )
    print(
        f"  whole page run, API reads cached            : {med(warm):.3f} s "
        f"[{warm[0]:.3f}, {max(warm):.3f}]  ratio {med(warm) / b:.2f}x baseline"
    )


if __name__ == "__main__":
    main()
