"""``python -m cryptobot_core.cli``: the ``cryptobot`` command without its console script."""

from cryptobot_core.cli import main

main()
