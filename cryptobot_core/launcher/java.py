"""The one Java check: PySpark needs Java 17+, found where PySpark looks (JAVA_HOME, then PATH)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from cryptobot_core.errors import ConfigError

MIN_JAVA = 17


def find_java() -> str | None:
    """The java binary PySpark will run: ``$JAVA_HOME/bin/java``, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").exists():
        return str(Path(home, "bin", "java"))
    return shutil.which("java")


def parse_java_version(text: str) -> int | None:
    """Major version from ``java -version`` output ('1.8.0_392' is 8, '17.0.15' is 17)."""
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        return None
    major = int(match.group(1))
    if major == 1 and match.group(2):
        return int(match.group(2))
    return major


@lru_cache(maxsize=8)
def _version_of(java: str) -> int | None:
    # Starting a JVM costs a fraction of a second; the answer does not change in a process.
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_java_version(out.stderr + out.stdout)


def java_major_version(java: str | None = None) -> int | None:
    """Major version of ``java`` (default: the one PySpark uses), or None if there is none."""
    java = java or find_java()
    return _version_of(java) if java else None


def java_problem(version: int | None) -> str | None:
    """Why Spark cannot run with Java ``version`` (None: no Java), or None when it can."""
    if version is not None and version >= MIN_JAVA:
        return None
    found = (
        "no Java was found (java on PATH or $JAVA_HOME/bin/java)"
        if version is None
        else f"Java {version} was found"
    )
    return (
        f"Spark features (PySpark): {found}, but PySpark needs Java {MIN_JAVA}+. Install a "
        f"JDK/JRE {MIN_JAVA} (e.g. `apt-get install openjdk-17-jre-headless` or "
        f"`brew install openjdk@17`) and set JAVA_HOME"
    )


def java_available() -> bool:
    """True when the Java PySpark would use is there and is version 17 or newer."""
    return java_problem(java_major_version()) is None


def require_java() -> None:
    """Raise a ConfigError telling the user to install Java 17+ when it is missing or too old."""
    problem = java_problem(java_major_version())
    if problem:
        raise ConfigError(problem)
