"""Named points where a process can be made to die with SIGKILL, for fault tests.

``CRYPTOBOT_FAILPOINTS=consumer.after_write@3`` makes the process kill itself (-9, no
clean-up, no flush) the third time it reaches ``hit("consumer.after_write")``; without ``@N``
the first time. Several points are separated by commas. The variable is read once, at
import; with it unset ``hit`` is a lookup in an empty dict.

Points:
- ``consumer.after_write``: the batch's candles are acknowledged by the store, its offsets
  are not committed yet.
"""

from __future__ import annotations

import os
import signal

ENV = "CRYPTOBOT_FAILPOINTS"


def _parse(text: str) -> dict[str, int]:
    points: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, nth = item.partition("@")
        points[name] = int(nth) if nth.isdigit() and int(nth) > 0 else 1
    return points


_remaining = _parse(os.environ.get(ENV, ""))


def hit(name: str) -> None:
    """Die here with SIGKILL if the point ``name`` is armed and its count is reached."""
    if name not in _remaining:
        return
    _remaining[name] -= 1
    if _remaining[name] <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
