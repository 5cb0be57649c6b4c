"""`cryptobot check`: pass or fail per promise of a running deployment, non-zero on any failure."""

from __future__ import annotations

import time

import typer

from cryptobot_core.deploy_check import CheckResult, default_target, run_checks
from cryptobot_core.settings import get_settings


def _print(result: CheckResult) -> None:
    mark = (
        typer.style("PASS", fg=typer.colors.GREEN)
        if result.ok
        else typer.style("FAIL", fg=typer.colors.RED)
    )
    typer.echo(f"{mark}  {result.name}: {result.detail}")


def check(
    api_url: str | None = typer.Option(
        None, "--api-url", help="The API (default: CRYPTOBOT_API_URL, or the running stack's)."
    ),
    dashboard_url: str | None = typer.Option(
        None,
        "--dashboard-url",
        help="The dashboard (default: http://127.0.0.1:CRYPTOBOT_DASHBOARD_PORT).",
    ),
    wait: float = typer.Option(
        0.0, "--wait", min=0, help="Retry failing checks for up to this many seconds."
    ),
    timeout: float = typer.Option(
        5.0, "--timeout", min=0.5, help="Seconds before one request or store call gives up."
    ),
) -> None:
    """Check a running deployment: API ready, yesterday's history, live minutes, features,
    the dashboard, and a read-only store user.

    With no flags it checks the stack `cryptobot up` started (its settings come from the
    running stack); CRYPTOBOT_* settings and the flags point it at any other deployment:
    CRYPTOBOT_MONGO_READ_URI (the read-only user), CRYPTOBOT_MONGO_DB, CRYPTOBOT_SYMBOLS.
    """
    settings = get_settings()
    target = default_target(
        settings, api_url=api_url, dashboard_url=dashboard_url, timeout_s=timeout
    )
    started = time.monotonic()
    results = run_checks(target, wait_s=wait, on_result=_print)
    took = f"in {time.monotonic() - started:.1f} s"
    failed = [r for r in results if not r.ok]
    if failed:
        typer.echo(f"{len(failed)} of {len(results)} checks failed ({took})")
        raise typer.Exit(1)
    typer.echo(f"all {len(results)} checks passed ({took})")
