"""CryptoBot dashboard: ``streamlit run dashboard/app.py``; reads everything from the REST API."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.common import CONTEXT_KEY, page_context

HERE = Path(__file__).parent

st.set_page_config(page_title="CryptoBot", page_icon=":material/candlestick_chart:", layout="wide")
# The banner (or the API-down message) comes first, so it is on every page.
st.session_state[CONTEXT_KEY] = page_context()
page = st.navigation(
    [
        st.Page(
            HERE / "views" / "historical.py",
            title="Historical",
            icon=":material/history:",
            default=True,
        ),
        st.Page(HERE / "views" / "live.py", title="Live", icon=":material/bolt:", url_path="live"),
        st.Page(
            HERE / "views" / "status.py",
            title="Data status",
            icon=":material/monitor_heart:",
            url_path="status",
        ),
    ]
)
page.run()
