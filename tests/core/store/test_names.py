"""Collection names: defined once, history named by its interval."""

from __future__ import annotations

import pytest

from cryptobot_core.errors import ValidationError
from cryptobot_core.intervals import Interval
from cryptobot_core.store import (
    HISTORICAL_15M,
    HISTORY_GAPS_15M,
    history_collection,
    history_gaps_collection,
)


def test_history_collections_are_named_by_interval() -> None:
    assert history_collection(Interval.M15) == HISTORICAL_15M == "historical_data_15m"
    assert history_gaps_collection(Interval.M15) == HISTORY_GAPS_15M == "historical_gaps_15m"
    assert history_collection("1h") == "historical_data_1h"
    # Binance's 1m (minute) and 1M (month) stay two collections.
    assert history_collection(Interval.MO1) != history_collection(Interval.M1)
    with pytest.raises(ValidationError, match="allowed"):
        history_collection("7m")
