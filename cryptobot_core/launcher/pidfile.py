"""``<data_dir>/up.pid``: one ``cryptobot up`` per data dir, and how others find it alive."""

from __future__ import annotations

import os
from pathlib import Path

from cryptobot_core.errors import ServiceError
from cryptobot_core.launcher.processes import Identity, identity, is_alive

PID_FILE = "up.pid"


def running_launcher(data_dir: Path) -> Identity | None:
    """The (pid, start time) of the live ``cryptobot up`` that holds ``data_dir``, if any."""
    try:
        pid, started = (int(x) for x in (data_dir / PID_FILE).read_text().split())
    except (OSError, ValueError):
        return None
    return (pid, started) if is_alive((pid, started)) else None


class PidFile:
    """The claim of one launcher on a data dir (the store's files must not be shared)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / PID_FILE

    def acquire(self) -> None:
        """Claim the data dir, or raise ServiceError if a live launcher holds it."""
        mine = identity(os.getpid())
        other = running_launcher(self.data_dir)
        if other and other != mine:
            raise ServiceError(
                f"another `cryptobot up` (pid {other[0]}) already runs with data dir "
                f"{self.data_dir}; stop it first, or set CRYPTOBOT_DATA_DIR to another folder"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if mine is None:
            raise ServiceError("cannot read this process's start time from /proc")
        self.path.write_text(f"{mine[0]} {mine[1]}")

    def release(self) -> None:
        """Remove the claim if it is ours."""
        if running_launcher(self.data_dir) == identity(os.getpid()):
            self.path.unlink(missing_ok=True)
