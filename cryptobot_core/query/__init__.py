"""The read side: what the REST API answers, framework-free, as typed rows.

Modules: ``params`` (parsing, limits, cursors), ``rows`` (the typed rows and ISO times),
``resample`` (resampling and window statistics on the one aggregation rule) and ``market``
(``MarketQuery``, reading through the store's repositories).
"""

from cryptobot_core.query.market import MarketQuery, UnknownSymbolError
from cryptobot_core.query.params import (
    DATASETS,
    DEFAULT_LIMIT,
    EPOCH_MS_PATTERN,
    MAX_EXPORT_SLOTS,
    MAX_LIMIT,
    MAX_WINDOW_SLOTS,
    RESAMPLED_INTERVALS,
    SERVED_INTERVALS,
    SYMBOL_HINT,
    parse_dataset,
    parse_interval,
    parse_time,
)
from cryptobot_core.query.rows import iso

__all__ = [
    "DATASETS",
    "DEFAULT_LIMIT",
    "EPOCH_MS_PATTERN",
    "MAX_EXPORT_SLOTS",
    "MAX_LIMIT",
    "MAX_WINDOW_SLOTS",
    "RESAMPLED_INTERVALS",
    "SERVED_INTERVALS",
    "SYMBOL_HINT",
    "MarketQuery",
    "UnknownSymbolError",
    "iso",
    "parse_dataset",
    "parse_interval",
    "parse_time",
]
