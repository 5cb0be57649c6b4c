"""The producer's spool under crashes: nothing leaves the disk before the broker acked it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cryptobot_core.stream.producer import Spool

RECORDS = [(b"BTCUSDT", b'{"v":1,"n":%d}' % i) for i in range(5)]


def test_a_claimed_resend_survives_a_crash_until_released(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    Spool(path).append(RECORDS)
    assert Spool(path).claim() == RECORDS  # a re-send starts ...
    # ... the process dies before the broker acknowledged anything: a new process finds them.
    restarted = Spool(path)
    restarted.append([(b"ETHUSDT", b'{"v":1,"n":99}')])  # spooled meanwhile: kept apart
    assert len(restarted) == 6
    assert restarted.claim() == RECORDS
    restarted.release()
    assert restarted.claim() == [(b"ETHUSDT", b'{"v":1,"n":99}')]
    restarted.release()
    assert len(restarted) == 0 and restarted.claim() == []


def test_a_torn_last_line_is_skipped_with_a_log_line_and_swallows_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.jsonl"
    Spool(path).append(RECORDS[:2])
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"key": "BTCUSDT", "value": "{\\"v\\":1,')  # the crash hit mid-write
    restarted = Spool(path)
    restarted.append(RECORDS[2:])
    with caplog.at_level(logging.WARNING):
        assert restarted.claim() == RECORDS
    assert restarted.torn == 1
    assert "skipping torn spool line 3" in caplog.text
