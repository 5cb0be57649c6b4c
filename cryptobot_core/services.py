"""Local services for tests, benchmarks and scripts: the public names of the launcher's parts.

The store and the broker started here run the same command lines as in ``cryptobot up``
(see ``cryptobot_core.launcher.specs``).
"""

from cryptobot_core.launcher.java import java_available, require_java
from cryptobot_core.launcher.processes import (
    ManagedProcess,
    free_port,
    free_ports,
    mongo_ping,
    port_open,
    tail,
)
from cryptobot_core.launcher.specs import secantus, tansu, tansu_binary

__all__ = [
    "ManagedProcess",
    "free_port",
    "free_ports",
    "java_available",
    "mongo_ping",
    "port_open",
    "require_java",
    "secantus",
    "tail",
    "tansu",
    "tansu_binary",
]
