"""``python -m cryptobot_core.stream consume|produce|repair|reset``: same as ``cryptobot stream``."""

from __future__ import annotations

import sys

from cryptobot_core.cli import main

if __name__ == "__main__":
    sys.argv = ["cryptobot", "stream", *sys.argv[1:]]
    main()
