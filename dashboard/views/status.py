"""Data status: freshness per dataset, gaps, the exchange source and the Dagster link."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from dashboard.api_client import ApiError
from dashboard.common import current_context, no_data_message, show_api_error, stop_with_error
from dashboard.display import freshness, human_age

DATASETS = {"15m": "historical_data_15m", "1m": "streaming_data_1m"}


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def render() -> None:
    """Draw the data status page."""
    ctx = current_context()
    st.title("Data status")
    ready = ctx.ready
    exchange = ready.get("exchange") or {}
    store = ready.get("store") or {}
    cols = st.columns(3)
    source = str(exchange.get("source", "?"))
    cols[0].metric(
        "Exchange source", f"{source} (simulated)" if exchange.get("simulated") else source
    )
    cols[1].metric("Document store", "reachable" if store.get("reachable") else "unreachable")
    cols[2].link_button("Open the Dagster UI", ctx.dagster_url)
    st.caption(
        f"Exchange REST URL: {exchange.get('rest_url', '?')} · API: {ctx.api_url} · "
        f"Dagster: [{ctx.dagster_url}]({ctx.dagster_url})"
    )

    st.subheader("Freshness")
    datasets: dict[str, Any] = ready.get("datasets") or {}
    table = [
        {
            "dataset": name,
            "newest candle (UTC)": info.get("newest_open_time") or "—",
            "age": human_age(info.get("age_seconds")),
            "symbols": info.get("symbols") or 0,
            "status": freshness(name, info.get("age_seconds")),
        }
        for name, info in datasets.items()
        if isinstance(info, dict)
    ]
    if table:
        st.dataframe(pd.DataFrame(table), hide_index=True)
    if not any(isinstance(i, dict) and i.get("newest_open_time") for i in datasets.values()):
        st.info(no_data_message(ctx.dagster_url), icon=":material/inbox:")

    st.subheader("Stream")
    stream = ready.get("stream") or {}
    scols = st.columns(2)
    for col, part in zip(scols, ("producer", "consumer"), strict=True):
        beat = stream.get(part)
        col.metric(
            f"{part.capitalize()} heartbeat",
            human_age(beat.get("age_seconds")) + " ago" if beat else "never seen",
        )

    st.subheader("Gaps")
    try:
        symbols = ctx.client.symbols()
    except ApiError as exc:
        stop_with_error(exc, ctx.client)
    gaps: list[dict[str, Any]] = []
    for entry in symbols:
        for key, info in (entry.get("datasets") or {}).items():
            if key not in DATASETS or not info:
                continue
            try:
                found = ctx.client.gaps(
                    entry["symbol"],
                    key,
                    _dt(info.get("first_open_time")),
                    _dt(info.get("last_open_time")),
                )
            except ApiError as exc:
                show_api_error(exc)
                continue
            gaps.extend({"symbol": entry["symbol"], "dataset": DATASETS[key], **g} for g in found)
    if not symbols:
        st.caption("Nothing stored yet, so nothing to check.")
    elif gaps:
        st.warning(
            f"{len(gaps)} gap(s) found; re-run the affected partitions in Dagster at "
            f"{ctx.dagster_url}."
        )
        st.dataframe(pd.DataFrame(gaps), hide_index=True)
    else:
        st.success("No gaps found in the stored ranges.")


render()
