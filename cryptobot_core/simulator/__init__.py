"""The offline Binance spot market-data simulator (REST + WebSocket), deterministic from a seed.

from cryptobot_core.simulator import SimulatorServer, SimConfig, SimClock

server = SimulatorServer(SimConfig(clock=SimClock.fixed(now_ms))).start()
...  # point any Binance client at server.url / server.ws_url
server.stop()
"""

from cryptobot_core.simulator.clock import ClockMode, SimClock
from cryptobot_core.simulator.config import (
    SimConfig,
    SymbolListing,
    default_symbols,
    generated_symbols,
)
from cryptobot_core.simulator.faults import Faults, Stats
from cryptobot_core.simulator.market import Market
from cryptobot_core.simulator.server import SimulatorServer

__all__ = [
    "ClockMode",
    "Faults",
    "Market",
    "SimClock",
    "SimConfig",
    "SimulatorServer",
    "Stats",
    "SymbolListing",
    "default_symbols",
    "generated_symbols",
]
