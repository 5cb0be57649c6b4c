"""History partitions: UTC days x symbols (dynamic, synced from settings by a sensor)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import dagster as dg

from cryptobot_core.dagster_client import RANGE_END_TAG, RANGE_START_TAG
from cryptobot_core.history import parse_day
from cryptobot_core.settings import Settings

SYMBOLS_PARTITIONS_NAME = "symbols"
DATE_DIM = "date"
SYMBOL_DIM = "symbol"

symbols_partitions = dg.DynamicPartitionsDefinition(name=SYMBOLS_PARTITIONS_NAME)


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """UTC days from settings.start_date; today is not a partition until it is over."""
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(), timezone="UTC", end_offset=0
    )


def history_partitions(settings: Settings) -> dg.MultiPartitionsDefinition:
    """(date, symbol) partitions of ``klines_15m``."""
    return dg.MultiPartitionsDefinition(
        {DATE_DIM: daily_partitions(settings), SYMBOL_DIM: symbols_partitions}
    )


def partition_key(symbol: str, day: date) -> dg.MultiPartitionKey:
    """The multi-partition key of (symbol, day)."""
    return dg.MultiPartitionKey({DATE_DIM: day.isoformat(), SYMBOL_DIM: symbol})


def split_key(key: str) -> tuple[str, date]:
    """(symbol, day) of a multi-partition key or of its ``date|symbol`` string form."""
    dims = getattr(key, "keys_by_dimension", None)
    if dims is None:
        # Dagster joins dimension keys with "|" in dimension-name order: date, symbol.
        parts = str(key).split("|")
        if len(parts) != 2:
            raise ValueError(f"not a (date, symbol) partition key: {key!r}")
        dims = {DATE_DIM: parts[0], SYMBOL_DIM: parts[1]}
    return dims[SYMBOL_DIM], parse_day(dims[DATE_DIM])


def split_keys(keys: Iterable[str]) -> list[tuple[str, date]]:
    """(symbol, day) pairs of many keys, sorted."""
    return sorted(split_key(k) for k in keys)


def range_tags(symbol: str, first: date, last: date) -> dict[str, str]:
    """Run tags making one run cover the days first..last of one symbol."""
    return {
        RANGE_START_TAG: str(partition_key(symbol, first)),
        RANGE_END_TAG: str(partition_key(symbol, last)),
    }


def keys_of_run(
    tags: dict[str, str], all_keys: Sequence[str] | None = None
) -> list[tuple[str, date]]:
    """(symbol, day) partitions a run covers, from its tags (single key or key range)."""
    if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
        (sym_a, first), (sym_b, last) = (
            split_key(tags[RANGE_START_TAG]),
            split_key(tags[RANGE_END_TAG]),
        )
        out: list[tuple[str, date]] = []
        if sym_a == sym_b:
            day = first
            while day <= last:
                out.append((sym_a, day))
                day = date.fromordinal(day.toordinal() + 1)
            return out
        if first == last:
            return [(s, first) for s in sorted({sym_a, sym_b})]
    if "dagster/partition" in tags:
        return [split_key(tags["dagster/partition"])]
    return []
