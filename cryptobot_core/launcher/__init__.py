"""The local stack behind ``cryptobot up``.

Starts, in order and each only once the previous one is healthy: the document store
(SecantusDB, with authentication), the broker (Tansu), the exchange simulator,
``dagster dev``, the API and the dashboard. Every child gets the same resolved settings
through its environment, so they all agree on the exchange, the ports and the URIs; other
terminals get them from ``<data_dir>/stack.env``. Each child runs in its own process group
and logs to ``<data_dir>/logs/<name>.log``. A child that dies is restarted up to
``settings.max_restarts`` times; after that the whole stack stops with an error naming the
service and its log. Stopping (Ctrl-C, SIGTERM) stops every group and verifies that no
process of the stack is left.

One concern per module:

- ``specs``: the services as a table of ``ServiceSpec`` rows, and ``plan()``;
- ``processes``: ``ManagedProcess`` (process groups, health, stopping), the ``/proc`` reader,
  port and ping probes;
- ``credentials``: the store's users and passwords, provisioning;
- ``exchange``: the ``auto`` exchange decision;
- ``java``: the one Java check;
- ``stackenv``: the environment handed to children and to other terminals;
- ``pidfile``: one launcher per data dir;
- ``supervisor``: ``Stack`` and ``run()``.
"""

from cryptobot_core.launcher.exchange import resolve_exchange
from cryptobot_core.launcher.specs import SERVICE_NAMES, SERVICES, ServiceSpec, plan
from cryptobot_core.launcher.supervisor import Endpoint, Stack, run

__all__ = [
    "SERVICES",
    "SERVICE_NAMES",
    "Endpoint",
    "ServiceSpec",
    "Stack",
    "plan",
    "resolve_exchange",
    "run",
]
