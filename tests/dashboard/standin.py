"""A tiny stand-in of the CryptoBot API for page-logic tests only (the browser test uses the real one).

It speaks the agreed contract over real HTTP on a free port, serves synthetic candles for
whatever range is asked, and records every request so tests can check what the page asked for.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

STEPS = {
    "1m": 60,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "6h": 21600,
    "8h": 28800,
    "12h": 43200,
    "1d": 86400,
    "3d": 259200,
    "1w": 604800,
}


def _iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def candle(open_time: datetime, step_s: int) -> dict[str, Any]:
    """A deterministic synthetic candle (price drifts with time so charts are not flat)."""
    k = int(open_time.timestamp()) // step_s
    base = 30000 + (k % 200) * 5
    return {
        "open_time": _iso(open_time),
        "close_time": _iso(open_time + timedelta(seconds=step_s, milliseconds=-1)),
        "open": f"{base:.2f}",
        "high": f"{base + 12:.2f}",
        "low": f"{base - 9:.2f}",
        "close": f"{base + 4:.2f}",
        "volume": "12.5",
        "quote_volume": "375000.0",
        "taker_buy_base_volume": "6.0",
        "taker_buy_quote_volume": "180000.0",
        "trades": 42,
        "is_closed": True,
    }


@dataclass
class StandIn:
    """State of the stand-in: what it holds and what it was asked."""

    simulated: bool = True
    fallback_reason: str | None = None
    has_data: bool = True
    # False: /features answers an empty list (the features asset was never materialized).
    has_features: bool = True
    # Candles from this time on are built from the stream ahead of history (provisional).
    provisional_from: datetime | None = None
    # More history datasets /symbols lists (e.g. "1h", "historical_data_1m").
    extra_datasets: tuple[str, ...] = ()
    first: datetime = field(default_factory=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    last: datetime = field(default_factory=lambda: datetime(2026, 7, 1, tzinfo=UTC))
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    # (path, epoch seconds when its answer was fully written): when "the API answered".
    answered: list[tuple[str, float]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def candle_requests(self) -> list[dict[str, str]]:
        """Query parameters of every /candles/{symbol} request so far."""
        return [
            q
            for path, q in self.requests
            if path.startswith("/candles/") and not path.endswith("/latest")
        ]

    # Handlers return (status, body).
    def handle(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        self.requests.append((path, query))
        if path == "/health":
            return 200, {"status": "ok"}
        if path == "/ready":
            newest = _iso(self.last) if self.has_data else None
            ds = {
                "newest_open_time": newest,
                "age_seconds": 60.0 if newest else None,
                "symbols": 1 if self.has_data else 0,
            }
            return 200, {
                "status": "ready",
                "store": {"reachable": True},
                "exchange": {
                    "source": "sim" if self.simulated else "binance",
                    "simulated": self.simulated,
                    "rest_url": "http://127.0.0.1:9443"
                    if self.simulated
                    else "https://api.binance.com",
                    "fallback_reason": self.fallback_reason,
                },
                "datasets": {
                    "historical_data_15m": ds,
                    "streaming_data_1m": ds,
                    "candle_features_15m": ds,
                },
                "stream": {"producer": None, "consumer": None},
            }
        if path == "/symbols":
            if not self.has_data:
                return 200, {"symbols": []}
            extent = {
                "first_open_time": _iso(self.first),
                "last_open_time": _iso(self.last),
                "count": 100,
            }
            datasets = dict.fromkeys(("15m", "1m", *self.extra_datasets), extent)
            return 200, {"symbols": [{"symbol": "BTCUSDT", "datasets": datasets}]}
        parts = path.strip("/").split("/")
        if parts[0] == "candles" and len(parts) == 3 and parts[2] == "latest":
            return 200, {"symbol": parts[1], "interval": "1m", "candle": candle(self.last, 60)}
        if parts[0] == "candles" and len(parts) == 2:
            return 200, self._candles(parts[1], query)
        if parts[0] == "stats":
            return 200, {
                "count": 10,
                "open": "30000",
                "close": "30300",
                "return": 0.01,
                "volatility": 0.02,
                "high": "31000",
                "low": "29000",
                "volume": "99",
            }
        if parts[0] == "features":
            start = _parse(query.get("start", _iso(self.first)))
            end = _parse(query.get("end", _iso(self.last)))
            rows: list[dict[str, Any]] = []
            t = start
            limit = int(query.get("limit", 500))
            while self.has_features and t < end and len(rows) < limit:
                rows.append(
                    {
                        "open_time": _iso(t),
                        "close": "30000.00000000",
                        "log_return": 0.001,
                        "volatility_1h": 0.002,
                        "volatility_24h": 0.003,
                        "vwap": 30000.0,
                        "hl_range": 0.004,
                        "volume_zscore": 0.1,
                    }
                )
                t += timedelta(minutes=15)
            return 200, {"symbol": parts[1], "features": rows}
        if parts[0] == "gaps":
            return 200, {"gaps": []}
        return 404, {
            "error": {
                "status": 404,
                "code": "not_found",
                "message": f"no route {path}",
                "hint": "see /docs",
            }
        }

    def _candles(self, symbol: str, query: dict[str, str]) -> dict[str, Any]:
        interval = query.get("interval", "15m")
        step = STEPS[interval]
        start = _parse(query["start"]) if "start" in query else self.last - timedelta(days=1)
        end = _parse(query["end"]) if "end" in query else datetime.now(UTC)
        limit = int(query.get("limit", 500))
        if "cursor" in query:
            start = _parse(query["cursor"])
        rows: list[dict[str, Any]] = []
        t = datetime.fromtimestamp(int(start.timestamp()) // step * step, UTC)
        while t < end and len(rows) < limit:
            row = candle(t, step)
            row["provisional"] = self.provisional_from is not None and t >= self.provisional_from
            rows.append(row)
            t += timedelta(seconds=step)
        return {
            "symbol": symbol,
            "interval": interval,
            "source_dataset": "historical_data_15m",
            "candles": rows,
            "next_cursor": _iso(t) if t < end else None,
        }

    def start(self, port: int = 0) -> StandIn:
        """Serve on 127.0.0.1:port (0 = any free port) in a daemon thread."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parsed = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
                status, body = owner.handle(parsed.path, query)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                owner.answered.append((parsed.path, time.time()))

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
