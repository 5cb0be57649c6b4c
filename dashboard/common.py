"""What every page shares: configuration, the API client, the banner and error handling."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, NoReturn

import streamlit as st

from dashboard.api_client import ApiClient, ApiError, ApiUnavailable

log = logging.getLogger(__name__)

# How often a page that lost the API checks whether it is back.
RETRY_EVERY_S = 3.0
DEFAULT_API_URL = "http://127.0.0.1:8000"
DEFAULT_DAGSTER_URL = "http://127.0.0.1:3000"
_WAS_DOWN_KEY = "_cryptobot_api_was_down"


@dataclass(frozen=True)
class PageContext:
    """Where the API and the Dagster UI are, plus the client and the API's /ready answer."""

    api_url: str
    dagster_url: str
    client: ApiClient
    ready: dict[str, Any]

    @property
    def simulated(self) -> bool:
        """True when the API says its data comes from the exchange simulator."""
        return bool((self.ready.get("exchange") or {}).get("simulated"))


def _urls() -> tuple[str, str]:
    """API and Dagster URLs from the project's settings (CRYPTOBOT_API_URL, ..._DAGSTER_URL)."""
    try:
        from cryptobot_core.settings import load_settings

        settings = load_settings()
        return settings.api_url, settings.dagster_url
    except Exception as exc:  # a bad unrelated setting must not take the dashboard down
        log.warning("settings could not be read (%s); using environment and defaults", exc)
        return (
            os.environ.get("CRYPTOBOT_API_URL", DEFAULT_API_URL),
            os.environ.get("CRYPTOBOT_DAGSTER_URL", DEFAULT_DAGSTER_URL),
        )


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


def simulated_banner(ready: dict[str, Any]) -> None:
    """The banner that says, on every page, that the data is not from Binance."""
    exchange = ready.get("exchange") or {}
    if exchange.get("simulated"):
        reason = exchange.get("fallback_reason")
        why = f" Binance was not used because {reason}." if reason else ""
        st.warning(
            "**Simulated data** — every price on this dashboard comes from the built-in "
            f"exchange simulator ({exchange.get('rest_url', 'local')}), not from Binance.{why}",
            icon=":material/science:",
        )


def page_context() -> PageContext:
    """Read settings, check the API, show the banner; stops the page with a message on failure."""
    api_url, dagster_url = _urls()
    client = ApiClient(api_url)
    try:
        ready = client.ready()
    except ApiError as exc:
        stop_with_error(exc, client)
    simulated_banner(ready)
    return PageContext(api_url=api_url, dagster_url=dagster_url, client=client, ready=ready)


CONTEXT_KEY = "_cryptobot_page_context"


def current_context() -> PageContext:
    """The context app.py prepared for this run (or a fresh one when a view runs alone)."""
    ctx = st.session_state.get(CONTEXT_KEY)
    if isinstance(ctx, PageContext):
        return ctx
    return page_context()
