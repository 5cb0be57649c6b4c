"""Which symbols CryptoBot collects: a fixed list, or a rule such as ``top:50:USDT``.

``CRYPTOBOT_SYMBOLS`` takes either. A rule ``top:N:QUOTE`` means the N spot symbols quoted
in QUOTE, with status TRADING, that have the highest 24 h quote volume
(``/api/v3/ticker/24hr``); ties go to the alphabetically first symbol.

A rule is resolved against the exchange and the result is kept in the store
(``symbol_universe``), so every process (producer, consumer, sensors, API, CLI) works on the
same set, and the set changes only when ``symbols_sensor`` refreshes it (once per UTC day).
A symbol that leaves the universe keeps its history and stops growing; one that joins is
backfilled by the history catch-up and streamed once the producer restarts on the new set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from cryptobot_core.errors import ValidationError

if TYPE_CHECKING:
    from cryptobot_core.exchange.exchange_info import ExchangeInfo
    from cryptobot_core.settings import Settings
    from cryptobot_core.store import Store
    from cryptobot_core.store.universe import ResolvedUniverse

RULE_PREFIX = "top:"
_RULE_RE = re.compile(r"^top:([0-9]{1,5}):([A-Z0-9]{2,10})$")
MAX_TOP = 5000
RULE_HELP = (
    "a comma-separated list like BTCUSDT,ETHUSDT, or a rule top:N:QUOTE such as top:50:USDT "
    f"(the N TRADING symbols quoted in QUOTE with the highest 24 h quote volume, N 1..{MAX_TOP})"
)


@dataclass(frozen=True)
class UniverseRule:
    """``top:count:quote``."""

    count: int
    quote: str

    @property
    def text(self) -> str:
        """The rule as written in settings, e.g. ``top:50:USDT``."""
        return f"top:{self.count}:{self.quote}"

    def __str__(self) -> str:
        return self.text


def parse_rule(value: str) -> UniverseRule | None:
    """The rule ``value`` names, None when it is not a rule; ValidationError when malformed."""
    text = value.strip()
    if not text.lower().startswith(RULE_PREFIX):
        return None
    found = _RULE_RE.match(text[:4].lower() + text[4:].upper())
    count = int(found.group(1)) if found else 0
    if not found or not 1 <= count <= MAX_TOP:
        raise ValidationError(f"invalid symbol rule {text!r}; use {RULE_HELP}")
    return UniverseRule(count, found.group(2))


def rank(rule: UniverseRule, info: ExchangeInfo, volumes: dict[str, Decimal]) -> list[str]:
    """The symbols ``rule`` selects from exchangeInfo and the 24 h quote volumes, best first."""
    eligible = [
        s.symbol for s in info.symbols.values() if s.trading and s.quote_asset == rule.quote
    ]
    eligible.sort(key=lambda s: (-volumes.get(s, Decimal(0)), s))
    return eligible[: rule.count]


def resolve(rule: UniverseRule, client: Any) -> list[str]:
    """Ask the exchange (a ``BinanceClient``): exchangeInfo, then every 24 h ticker."""
    chosen = rank(rule, client.exchange_info(), client.quote_volumes())
    if not chosen:
        raise ValidationError(
            f"the rule {rule.text} selects no symbol: the exchange lists no TRADING symbol "
            f"quoted in {rule.quote}"
        )
    return chosen


def refresh(settings: Settings, store: Store, client: Any = None) -> tuple[list[str], list[str]]:
    """Resolve the configured rule again and keep it; returns (joined, left) symbols."""
    rule = settings.symbol_rule
    if rule is None:
        return [], []
    return _refresh(settings, rule, store, client, store.universe.read(rule.text))


def refresh_daily(
    settings: Settings, store: Store, client: Any = None, now: datetime | None = None
) -> tuple[list[str], list[str]] | None:
    """``refresh`` unless the rule was already resolved this UTC day; None when not due."""
    rule = settings.symbol_rule
    if rule is None:
        return None
    kept = store.universe.read(rule.text)
    today = (now or datetime.now(UTC)).date()
    if kept is not None and kept.resolved_at.astimezone(UTC).date() >= today:
        return None
    return _refresh(settings, rule, store, client, kept)


def _refresh(
    settings: Settings,
    rule: UniverseRule,
    store: Store,
    client: Any,
    before: ResolvedUniverse | None,
) -> tuple[list[str], list[str]]:
    chosen = _resolve_with(settings, rule, client)
    store.universe.write(rule.text, chosen, datetime.now(UTC))
    old = set(before.symbols) if before else set()
    return sorted(set(chosen) - old), sorted(old - set(chosen))


def configured_symbols(
    settings: Settings, store: Store | None = None, client: Any = None
) -> list[str]:
    """The symbols to collect now: the list, or the rule's last resolution (resolved if none).

    Pass ``store`` where one is open; without it one is opened for the read.
    """
    rule = settings.symbol_rule
    if rule is None:
        return list(settings.symbol_list)
    if store is None:
        from cryptobot_core.store import open_store

        with open_store(settings) as own:
            return configured_symbols(settings, own, client)
    kept = store.universe.read(rule.text)
    if kept is not None:
        return list(kept.symbols)
    chosen = _resolve_with(settings, rule, client)
    store.universe.write(rule.text, chosen, datetime.now(UTC))
    return chosen


@dataclass(frozen=True)
class UniverseStatus:
    """What the configured symbols are, as far as the store knows."""

    rule: str | None  # None: a fixed list
    symbols: tuple[str, ...]
    resolved_at: datetime | None  # when the rule was last resolved


def status(settings: Settings, store: Store) -> UniverseStatus:
    """The list, or the rule's last resolution (empty while no writer has resolved it)."""
    rule = settings.symbol_rule
    if rule is None:
        return UniverseStatus(None, tuple(settings.symbol_list), None)
    kept = store.universe.read(rule.text)
    if kept is None:
        return UniverseStatus(rule.text, (), None)
    return UniverseStatus(rule.text, kept.symbols, kept.resolved_at)


def current_symbols(settings: Settings, store: Store) -> list[str]:
    """The symbols to collect as far as the store knows, never asking the exchange.

    For readers (the API, `cryptobot check`), which may not write.
    """
    return list(status(settings, store).symbols)


def _resolve_with(settings: Settings, rule: UniverseRule, client: Any) -> list[str]:
    if client is not None:
        return resolve(rule, client)
    from cryptobot_core.exchange.rest import BinanceClient

    with BinanceClient.from_settings(settings) as own:
        return resolve(rule, own)
