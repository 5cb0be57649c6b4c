"""Benchmark the historical view in Chromium: time from the API's last answer to charts drawn.

Two ways a person gets a view, each for 6 months and 1 year asked at 15m (by default):
- **open a link** (``/?symbol=…&interval=15m&start=…&end=…``) in a new page load; the
  first such load also fetches Plotly's JavaScript;
- **change the interval in the open page** to the next coarser one (a rerun in the same
  session, with new API reads).

What is timed:
- **render after the API answered**: from the moment the API finished sending its last
  answer for the view (the stand-in records it) to the first animation frame in which every
  chart of the page shows the new candles with drawn traces (Chromium's clock, same machine).
  Python building the figures, the websocket hand-off, React and Plotly drawing are inside.
- **Python**: the page's own figure ("rendered in X s" under the charts), from the return of
  its last API read to the end of the script.
- **charts drawn at**: when each chart first showed the view, after the API answered.

Baseline, measured in the same run with the same browser, API and interactions: a bare
Streamlit page that reads the same candles (same interval, same count) from the API and
draws one Plotly line of the closes (``go.Scatter`` of the API's time strings), the least a
page showing those points costs. Each figure is also given as a ratio to it.

The API is the stand-in of the page tests over real HTTP, so the figures do not depend on
the store; the API's own speed is benchmarked by the API's bench. Each round asks for a new
range (shifted by a day), so no API answer is cached.

``--profile`` also times the Python steps of the largest view in this process.

Run: ``.venv/bin/python bench/dashboard_render.py [--repeat 7] [--days 182 365] [--profile]``
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from cryptobot_core.services import ManagedProcess, free_port  # noqa: E402
from dashboard.display import INTERVALS, choose_interval, points  # noqa: E402
from tests.dashboard.standin import StandIn  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SYMBOL = "BTCUSDT"
LAST = datetime(2026, 7, 1, tzinfo=UTC)
# The read paths of a historical view; /ready and /symbols are cached for the session.
VIEW_READS = ("/candles/", "/features/", "/stats/")
SCENARIOS = ("open a link", "change the interval in the open page")

BASELINE_APP = """
from datetime import date, timedelta

import httpx
import plotly.graph_objects as go
import streamlit as st

q = st.query_params
interval = st.selectbox("Interval", INTERVALS, index=INTERVALS.index(q["interval"]))
end = date.fromisoformat(q["end"]) + timedelta(days=1)  # the end day is included
body = httpx.get(
    f"{API}/candles/{q['symbol']}",
    params={"interval": interval, "start": q["start"], "end": str(end), "limit": 20000},
    timeout=30,
).json()
rows = body["candles"]
st.plotly_chart(
    go.Figure(go.Scatter(x=[r["open_time"] for r in rows], y=[float(r["close"]) for r in rows]))
)
"""

# Resolves with Date.now() at the first animation frame where `count` charts show `n`
# points starting at `startMs` and have drawn trace paths; also says when each got there.
WAIT_DRAWN_JS = """([count, startMs, n]) => new Promise(resolve => {
  const toMs = v => typeof v === 'number' ? v
      : Date.parse(/([zZ]|[+-]\\d\\d:?\\d\\d)$/.test(v) ? v : String(v).replace(' ', 'T') + 'Z');
  const seen = new Map();
  // Never hang: after a minute, give back what the charts show instead.
  setTimeout(() => resolve({timeout: [...document.querySelectorAll('.js-plotly-plot')].map(gd => {
    const t = gd._fullData && gd._fullData[0];
    return t && t.x ? [t.type, t._length ?? t.x.length, t.x[0]] : null;
  })}), 60000);
  const ready = gd => {
    const t = gd._fullData && gd._fullData[0];
    if (!t || !t.x || (t._length ?? t.x.length) !== n || toMs(t.x[0]) !== startMs) return false;
    return [...gd.querySelectorAll('.cartesianlayer .trace path')].some(
        e => (e.getAttribute('d') || '').length > 10);
  };
  const tick = () => {
    const plots = [...document.querySelectorAll('.js-plotly-plot')];
    plots.forEach(gd => { if (!seen.has(gd) && ready(gd)) seen.set(gd, Date.now()); });
    if (plots.filter(gd => seen.has(gd)).length >= count) {
      resolve({done: Date.now(), charts: [...seen.values()].sort((a, b) => a - b)});
    } else {
      requestAnimationFrame(tick);
    }
  };
  tick();
})"""


@dataclass
class Samples:
    """Timings of one page in one scenario over the rounds, in seconds."""

    render: list[float] = field(default_factory=list)
    python: list[float] = field(default_factory=list)
    charts: list[list[float]] = field(default_factory=list)
    interval: str = ""


@dataclass(frozen=True)
class Page:
    """A Streamlit page under test: its URL and how many charts show a view."""

    name: str
    url: str
    charts: int


def _healthy(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


@contextmanager
def _streamlit(script: Path, api_url: str, log: Path) -> Iterator[str]:
    """``streamlit run script`` on a free port, from the repository root; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = ManagedProcess(
        name=f"streamlit {script.name}",
        argv=[
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(script),
            "--server.headless=true",
            f"--server.port={port}",
            "--server.address=127.0.0.1",
            "--browser.gatherUsageStats=false",
            "--server.fileWatcherType=none",
        ],
        log_path=log,
        healthy=_healthy(f"{url}/_stcore/health"),
        env={"CRYPTOBOT_API_URL": api_url, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        port=port,
        startup_timeout=120,
    )
    proc.start()
    try:
        yield url
    finally:
        proc.stop()


def _ms(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp() * 1000)


def _record(
    page: Any, api: StandIn, target: Page, start: date, days: int, samples: Samples
) -> None:
    """Wait until every chart shows the view the page was just asked for; record the timings."""
    interval = samples.interval
    n = points(interval, timedelta(days=days))
    drawn = page.evaluate(WAIT_DRAWN_JS, [target.charts, _ms(start), n])
    if "timeout" in drawn:
        raise RuntimeError(
            f"{target.name}: the charts did not show {n} {interval} candles from {start} "
            f"within a minute; they show {drawn['timeout']}"
        )
    reads = [t for path, t in api.answered if path.startswith(VIEW_READS)]
    assert reads, "the page asked the API nothing for this view"
    answered_ms = max(reads) * 1000
    samples.render.append((drawn["done"] - answered_ms) / 1000)
    samples.charts.append([(t - answered_ms) / 1000 for t in drawn["charts"]])
    assert api.candle_requests()[-1]["interval"] == interval, "the page drew another interval"
    if target.name == "page":
        caption = page.get_by_text(re.compile(rf"{n} {interval} candles .*rendered in"))
        text = caption.first.text_content() or ""
        samples.python.append(float(re.findall(r"rendered in ([0-9.]+) s", text)[0]))
    assert page.get_by_text("Traceback").count() == 0, "the page shows a traceback"


def _round(
    page: Any,
    api: StandIn,
    target: Page,
    days: int,
    shift: int,
    results: dict[tuple[str, str, int], Samples],
) -> None:
    """Open one view by its link, then change its interval in the page; time both."""
    end = LAST.date() - timedelta(days=shift)
    start = end - timedelta(days=days - 1)
    shown = choose_interval("15m", timedelta(days=days))
    # The baseline draws what the page draws: the interval the page picks for this range.
    asked = "15m" if target.name == "page" else shown
    opened = results.setdefault((target.name, SCENARIOS[0], days), Samples(interval=shown))
    api.answered.clear()
    page.goto(f"{target.url}/?symbol={SYMBOL}&interval={asked}&start={start}&end={end}")
    _record(page, api, target, start, days, opened)

    coarser = list(INTERVALS)[list(INTERVALS).index(shown) + 1]
    changed = results.setdefault((target.name, SCENARIOS[1], days), Samples(interval=coarser))
    api.answered.clear()
    page.locator("[data-testid=stSelectbox]").filter(has_text="Interval").click()
    # The list is virtualised (only the options in view exist), so filter it by typing.
    page.keyboard.type(coarser)
    page.get_by_role("option", name=coarser, exact=True).click()
    _record(page, api, target, start, days, changed)


def _profile(days: int) -> None:
    """Time the Python steps of the view (typed rows to figures to JSON) in this process."""
    import plotly.io as pio
    import plotly.tools

    from dashboard import charts
    from dashboard.models import Candle, FeatureSeries
    from tests.dashboard.standin import candle

    interval = choose_interval("15m", timedelta(days=days))
    step = INTERVALS[interval]
    t0 = LAST - timedelta(days=days)
    rows = [
        candle(t0 + step * i, int(step.total_seconds()))
        for i in range(days * 86400 // int(step.total_seconds()))
    ]
    feats = [
        {
            "open_time": (t0 + timedelta(minutes=15 * i)).isoformat(),
            **{c: 0.002 for c in ("log_return", "volatility_1h", "volatility_24h")},
            **{c: 0.1 for c in ("vwap", "hl_range", "volume_zscore")},
        }
        for i in range(days * 96)
    ]

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        best = min(_clock(fn) for _ in range(5))
        print(f"    {name:44s} {best * 1000:7.1f} ms")
        return fn()

    print(f"  Python steps of the {days}-day view ({len(rows)} {interval} candles), best of 5:")
    candles = timed(
        "parse candle rows (exact decimals)", lambda: [Candle.from_json(r) for r in rows]
    )
    features = timed(
        f"parse {len(feats)} feature rows (columns)", lambda: FeatureSeries.from_rows(feats)
    )
    cols = timed("candle columns (decimals to floats)", lambda: charts.CandleColumns.of(candles))
    fig = timed(
        "the figure: price, volume, volatility (bucketing included)",
        lambda: charts.candlestick_figure(cols, SYMBOL, interval, features=features),
    )

    def to_browser() -> str:
        # What st.plotly_chart does with a figure before sending it to the browser.
        return str(
            pio.to_json(plotly.tools.return_figure_from_figure_or_data(fig, True), validate=False)
        )

    timed("JSON for the browser", to_browser)


def _clock(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _report(
    results: dict[tuple[str, str, int], Samples], days_list: list[int], repeat: int
) -> None:
    med = statistics.median
    for scenario in SCENARIOS:
        for days in days_list:
            page = results[("page", scenario, days)]
            base = results[("baseline", scenario, days)]
            b = med(base.render)
            print(
                f"{scenario}: {days} days asked at 15m, drawn as {page.interval} candles; "
                f"median of {repeat} [first, max]; ratio = median / baseline median"
            )
            print(
                f"  baseline, one bare Plotly line, same points : {b:.3f} s "
                f"[{base.render[0]:.3f}, {max(base.render):.3f}]"
            )
            print(
                f"  render after the API answered               : {med(page.render):.3f} s "
                f"[{page.render[0]:.3f}, {max(page.render):.3f}]  "
                f"ratio {med(page.render) / b:.2f}"
            )
            print(
                f"  of which Python (the page's own figure)     : {med(page.python):.3f} s "
                f"[{page.python[0]:.3f}, {max(page.python):.3f}]"
            )
            drawn = [med([c[k] for c in page.charts]) for k in range(len(page.charts[0]))]
            print(
                "  charts drawn at (medians)                   : "
                + ", ".join(f"{t:.3f}" for t in drawn)
                + " s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--days", type=int, nargs="+", default=[182, 365])
    parser.add_argument("--profile", action="store_true", help="also time the Python steps")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: install Debian's chromium (make browser-deps).")
    api = StandIn(first=LAST - timedelta(days=max(args.days) + args.repeat + 30), last=LAST)
    api.start()
    results: dict[tuple[str, str, int], Samples] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
            baseline = Path(tmp) / "baseline.py"
            # The baseline offers the page's intervals, so both change to the same one.
            baseline.write_text(
                f"API = {api.url!r}\nINTERVALS = {list(INTERVALS)!r}\n" + BASELINE_APP
            )
            browser = pw.chromium.launch(
                executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox"]
            )
            # The page draws one chart (price, volume and volatility panels).
            for name, script, charts in (
                ("page", ROOT / "dashboard" / "app.py", 1),
                ("baseline", baseline, 1),
            ):
                with _streamlit(script, api.url, Path(tmp) / f"{name}.log") as url:
                    page = browser.new_page(viewport={"width": 1400, "height": 2300})
                    page.set_default_timeout(60_000)
                    for shift in range(args.repeat):
                        for days in args.days:
                            _round(page, api, Page(name, url, charts), days, shift, results)
                    page.close()
            browser.close()
    finally:
        api.stop()
    _report(results, args.days, args.repeat)
    if args.profile:
        _profile(max(args.days))


if __name__ == "__main__":
    main()
