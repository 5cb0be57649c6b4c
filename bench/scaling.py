"""What the scaling benchmarks share: CPU per process, and the CPU-by-process panel of their PNGs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_panel(
    ax: Any, symbols: Sequence[int], cores: Sequence[dict[str, float]], ylabel: str
) -> None:
    """Cores used by each process (and all of them) against the symbols, on a log-2 axis."""
    for name in cores[0]:
        ax.plot(symbols, [c[name] for c in cores], "o-", label=name)
    ax.plot(symbols, [sum(c.values()) for c in cores], "k^-", label="all")
    ax.axhline(os.cpu_count() or 2, color="red", linewidth=1, label="the machine's cores")
    ax.set_xscale("log", base=2)
    ax.set_xticks(symbols, [str(s) for s in symbols])
    ax.set_xlabel("symbols")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.set_title("CPU by process")
