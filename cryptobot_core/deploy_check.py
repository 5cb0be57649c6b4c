"""`cryptobot check`: one verdict on a running deployment, one line per promise.

Each check answers one question a user of the stack asks, reads only what a reader may
read (the API over HTTP, the store as the read-only user), and is bounded in time: every
HTTP request and store call gives up after ``timeout_s``, so a run of all six takes at
most about 6 × 2 × ``timeout_s`` even when everything is down (60 s with the default 5 s;
a few hundred milliseconds when everything answers). ``wait_s`` retries the failing
checks until they pass or the wait ends, for use right after a start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from cryptobot_core.errors import CryptobotError, StoreUnavailable
from cryptobot_core.intervals import Interval
from cryptobot_core.models import dt_to_ms
from cryptobot_core.query import MarketQuery, UnknownSymbolError
from cryptobot_core.settings import Settings, redact
from cryptobot_core.store import STREAMING_1M, open_store
from cryptobot_core.universe import current_symbols

CANDLES_PER_DAY = Interval.D1.ms // Interval.M15.ms
# The newest stored minute may be at most this old for the stream to count as live.
LIVE_WITHIN_S = 120.0
RETRY_EVERY_S = 5.0
NO_SYMBOLS = "no symbols: the CRYPTOBOT_SYMBOLS rule has not been resolved by the stack yet"


Outcome = tuple[bool, str]
CheckFn = Callable[["Target", MarketQuery], Outcome]


@dataclass(frozen=True)
class CheckResult:
    """One line of the verdict."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Target:
    """What to check: a deployment's API, dashboard and store (as its read-only user)."""

    api_url: str
    dashboard_url: str
    settings: Settings  # read-only settings: database, read URI, symbols
    timeout_s: float = 5.0
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def symbols(self, query: MarketQuery) -> list[str]:
        """The deployment's symbols: its list, or its rule's stored resolution."""
        return current_symbols(self.settings, query.store)


def _probe(target: Target, base: str, path: str, good: Callable[[httpx.Response], bool]) -> Outcome:
    """GET base+path; pass when it answers 200 and ``good`` accepts the answer."""
    url = base.rstrip("/") + path
    try:
        answer = httpx.get(url, timeout=target.timeout_s, follow_redirects=True)
    except httpx.HTTPError as exc:
        return False, f"{url}: {type(exc).__name__}: {exc}"
    ok = answer.status_code == 200 and good(answer)
    return ok, f"{url} answered {answer.status_code}{'' if ok else ': ' + answer.text[:120]}"


def _ready(answer: httpx.Response) -> bool:
    try:
        return bool(answer.json().get("status") == "ready")
    except ValueError:
        return False


def check_api(target: Target, _query: MarketQuery) -> Outcome:
    """The API answers /ready with status ready."""
    return _probe(target, target.api_url, "/ready", _ready)


def _yesterday(target: Target) -> tuple[int, int]:
    today = Interval.D1.floor(dt_to_ms(target.now()))
    return today - Interval.D1.ms, today


def _yesterday_per_symbol(
    target: Target,
    query: MarketQuery,
    count: Callable[[str, int, int], int],
    want: int,
    unit: str,
) -> Outcome:
    """Whether every symbol has at least ``want`` rows in yesterday's window, and how many."""
    lo, hi = _yesterday(target)
    symbols = target.symbols(query)
    if not symbols:
        return False, NO_SYMBOLS
    parts, ok = [], True
    for symbol in symbols:
        try:
            n = count(symbol, lo, hi)
        except UnknownSymbolError:
            n = 0
        ok = ok and n >= want
        parts.append(f"{symbol} {n} {unit}")
    day = datetime.fromtimestamp(lo / 1000, UTC).date().isoformat()
    return ok, f"{day}: " + ", ".join(parts)


def check_history(target: Target, query: MarketQuery) -> Outcome:
    """Every configured symbol has all of yesterday's 15m candles."""
    # Final candles only: hours built from the stream ahead of history do not count.
    return _yesterday_per_symbol(
        target,
        query,
        lambda s, lo, hi: sum(
            not c.provisional
            for c in query.candles(s, Interval.M15, start=lo, end=hi, limit=CANDLES_PER_DAY).candles
        ),
        CANDLES_PER_DAY,
        f"of {CANDLES_PER_DAY} candles",
    )


def check_live(target: Target, query: MarketQuery) -> Outcome:
    """Every configured symbol's newest 1m candle opened within the last 2 minutes."""
    now_ms = dt_to_ms(target.now())
    symbols = target.symbols(query)
    if not symbols:
        return False, NO_SYMBOLS
    parts, ok = [], True
    for symbol in symbols:
        newest = query.newest_open_ms(STREAMING_1M, symbol)
        if newest is None:
            ok = False
            parts.append(f"{symbol} no minute stored")
            continue
        age = (now_ms - newest) / 1000
        ok = ok and age <= LIVE_WITHIN_S
        parts.append(f"{symbol} newest minute opened {age:.0f} s ago")
    return ok, ", ".join(parts)


def check_features(target: Target, query: MarketQuery) -> Outcome:
    """Every configured symbol has feature rows for yesterday."""
    return _yesterday_per_symbol(
        target,
        query,
        lambda s, lo, hi: len(query.features(s, start=lo, end=hi, limit=CANDLES_PER_DAY).features),
        1,
        "rows",
    )


def check_dashboard(target: Target, _query: MarketQuery) -> Outcome:
    """The dashboard's server answers its health probe."""
    return _probe(target, target.dashboard_url, "/_stcore/health", lambda a: a.text.strip() == "ok")


def check_read_only(_target: Target, query: MarketQuery) -> Outcome:
    """The read-only user the API reads with is refused a write."""
    if query.store.refuses_writes():
        return True, "an insert as the read-only user was refused (not authorized)"
    return False, "an insert as the read-only user went through: its role may write"


CHECKS: tuple[tuple[str, CheckFn], ...] = (
    ("API ready", check_api),
    ("yesterday's history (15m)", check_history),
    (f"live minutes (newest within {LIVE_WITHIN_S:.0f} s)", check_live),
    ("yesterday's features", check_features),
    ("dashboard answers", check_dashboard),
    ("store refuses a write from the read-only user", check_read_only),
)


def _run_one(name: str, check: CheckFn, target: Target, query: MarketQuery) -> CheckResult:
    try:
        ok, detail = check(target, query)
    except StoreUnavailable:
        uri = redact(target.settings.effective_mongo_uri)
        return CheckResult(name, False, f"document store unreachable at {uri}")
    except CryptobotError as exc:  # a store error, a refused value
        return CheckResult(name, False, str(exc))
    return CheckResult(name, ok, detail)


def run_checks(
    target: Target,
    *,
    wait_s: float = 0.0,
    on_result: Callable[[CheckResult], None] | None = None,
    checks: Iterable[tuple[str, CheckFn]] = CHECKS,
) -> list[CheckResult]:
    """Run every check; retry the failing ones until they pass or ``wait_s`` ends.

    ``on_result`` sees each final result as soon as it is known (passes first, then the
    failures of the last round).
    """
    deadline = time.monotonic() + wait_s
    timeout_ms = int(target.timeout_s * 1000)
    checks = tuple(checks)
    pending = list(checks)
    failing: list[tuple[str, CheckFn]] = []
    final: dict[str, CheckResult] = {}
    with open_store(target.settings, timeout_ms=timeout_ms) as store:
        query = MarketQuery.for_settings(store, target.settings)
        while True:
            failing = []
            for check in pending:
                result = _run_one(*check, target, query)
                final[check[0]] = result
                if result.ok:
                    if on_result:
                        on_result(result)
                else:
                    failing.append(check)
            if not failing or time.monotonic() + RETRY_EVERY_S > deadline:
                break
            pending = failing
            time.sleep(RETRY_EVERY_S)
    if on_result:
        for name, _ in failing:
            on_result(final[name])
    return [final[name] for name, _ in checks]


def default_target(
    settings: Settings,
    *,
    api_url: str | None = None,
    dashboard_url: str | None = None,
    timeout_s: float = 5.0,
) -> Target:
    """The deployment these settings describe (with ``make up``: the running stack)."""
    return Target(
        api_url=api_url or settings.api_url,
        dashboard_url=dashboard_url or f"http://127.0.0.1:{settings.dashboard_port}",
        settings=settings.read_only(),
        timeout_s=timeout_s,
    )


__all__ = [
    "CHECKS",
    "CheckResult",
    "Target",
    "default_target",
    "run_checks",
]
