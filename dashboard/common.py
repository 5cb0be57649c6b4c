"""What every page shares: configuration, the API client, the banner and error handling."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NoReturn

import streamlit as st

from dashboard.api_client import ApiClient, ApiError, ApiUnavailable
from dashboard.config import ConfigError, DashboardConfig
from dashboard.models import Ready

log = logging.getLogger(__name__)

# How often a page that lost the API checks whether it is back.
RETRY_EVERY_S = 3.0
_WAS_DOWN_KEY = "_cryptobot_api_was_down"
CONTEXT_KEY = "_cryptobot_page_context"


@dataclass(frozen=True)
class PageContext:
    """Where the API and the Dagster UI are, plus the client and the API's /ready answer."""

    config: DashboardConfig
    client: ApiClient
    ready: Ready

    @property
    def api_url(self) -> str:
        """The API's base URL."""
        return self.config.api_url

    @property
    def dagster_url(self) -> str:
        """The Dagster UI's URL."""
        return self.config.dagster_url


def no_data_message(dagster_url: str, what: str = "No data yet") -> str:
    """The one wording for an empty store, pointing at where to fill it."""
    return f"{what} — backfill in Dagster at {dagster_url}"


def show_api_error(exc: ApiError) -> None:
    """An API failure as a message with its hint; never a stack trace."""
    text = exc.message + (f"  \n{exc.hint}" if exc.hint else "")
    if isinstance(exc, ApiUnavailable):
        st.error(f"**API unavailable.** {text}", icon=":material/cloud_off:")
    else:
        st.error(f"**The API could not answer.** {text}", icon=":material/error:")


def _wait_until_back(client: ApiClient) -> None:
    """Re-check the API every few seconds and rerun the whole page once it answers."""

    @st.fragment(run_every=RETRY_EVERY_S)
    def _probe() -> None:
        try:
            client.ready()
        except ApiError:
            st.session_state[_WAS_DOWN_KEY] = True
            st.caption(f"Retrying every {RETRY_EVERY_S:.0f} s…")
            return
        # Rerun only after seeing the API down then up: when it answers /ready but refuses
        # another read, rerunning would loop; the user has the Retry button for that.
        if st.session_state.pop(_WAS_DOWN_KEY, False):
            st.rerun(scope="app")

    _probe()


def stop_with_error(exc: ApiError, client: ApiClient) -> NoReturn:
    """Show the error, keep probing the API, and end this run of the page."""
    show_api_error(exc)
    if st.button("Retry now"):
        st.rerun()
    _wait_until_back(client)
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises; keeps type checkers honest


def simulated_banner(ready: Ready) -> None:
    """The banner that says, on every page, that the data is not from Binance."""
    exchange = ready.exchange
    if exchange.simulated:
        reason = exchange.fallback_reason
        why = f" Binance was not used because {reason}." if reason else ""
        st.warning(
            "**Simulated data** — every price on this dashboard comes from the built-in "
            f"exchange simulator ({exchange.rest_url}), not from Binance.{why}",
            icon=":material/science:",
        )


def _config() -> DashboardConfig:
    """The dashboard's settings; a wrong one stops the page with its one-line reason."""
    try:
        return DashboardConfig.from_env()
    except ConfigError as exc:
        st.error(f"**The dashboard is misconfigured.** {exc}", icon=":material/settings:")
        st.stop()
        raise AssertionError("unreachable") from None


def page_context() -> PageContext:
    """Read the settings, check the API, show the banner; stops the page on failure."""
    config = _config()
    client = ApiClient(config.api_url)
    try:
        ready = client.ready()
    except ApiError as exc:
        stop_with_error(exc, client)
    simulated_banner(ready)
    return PageContext(config=config, client=client, ready=ready)


def current_context() -> PageContext:
    """The context app.py prepared for this run (or a fresh one when a view runs alone)."""
    ctx = st.session_state.get(CONTEXT_KEY)
    if isinstance(ctx, PageContext):
        return ctx
    return page_context()
