"""Data status: freshness per dataset, gaps, the exchange source and the Dagster link."""

from __future__ import annotations

import streamlit as st

from dashboard.api_client import ApiError
from dashboard.common import current_context, no_data_message, show_api_error, stop_with_error
from dashboard.display import freshness, human_age
from dashboard.models import Gap

DATASETS = {"15m": "historical_data_15m", "1m": "streaming_data_1m"}


def _utc(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "—"


def render() -> None:
    """Draw the data status page."""
    ctx = current_context()
    st.title("Data status")
    ready = ctx.ready
    exchange = ready.exchange
    cols = st.columns(3)
    cols[0].metric(
        "Exchange source",
        f"{exchange.source} (simulated)" if exchange.simulated else exchange.source,
    )
    cols[1].metric("Document store", "reachable" if ready.store_reachable else "unreachable")
    cols[2].link_button("Open the Dagster UI", ctx.dagster_url)
    st.caption(
        f"Exchange REST URL: {exchange.rest_url} · API: {ctx.api_url} · "
        f"Dagster: [{ctx.dagster_url}]({ctx.dagster_url})"
    )

    st.subheader("Freshness")
    if ready.datasets:
        names = list(ready.datasets)
        info = [ready.datasets[n] for n in names]
        st.dataframe(
            {
                "dataset": names,
                "newest candle": [_utc(i.newest_open_time) for i in info],
                "age": [human_age(i.age_seconds) for i in info],
                "symbols": [i.symbols for i in info],
                "status": [freshness(n, i.age_seconds) for n, i in zip(names, info, strict=True)],
            },
            hide_index=True,
        )
    if not any(i.newest_open_time for i in ready.datasets.values()):
        st.info(no_data_message(ctx.dagster_url), icon=":material/inbox:")

    st.subheader("Stream")
    scols = st.columns(2)
    for col, part in zip(scols, ("producer", "consumer"), strict=True):
        beat = ready.stream.get(part)
        col.metric(
            f"{part.capitalize()} heartbeat",
            human_age(beat.age_seconds) + " ago" if beat else "never seen",
        )

    st.subheader("Gaps")
    try:
        symbols = ctx.client.symbols()
    except ApiError as exc:
        stop_with_error(exc, ctx.client)
    found: list[tuple[str, str, Gap]] = []
    for summary in symbols:
        for key, extent in summary.datasets.items():
            if key not in DATASETS:
                continue
            try:
                gaps = ctx.client.gaps(
                    summary.symbol, key, extent.first_open_time, extent.last_open_time
                )
            except ApiError as exc:
                show_api_error(exc)
                continue
            found.extend((summary.symbol, DATASETS[key], g) for g in gaps)
    if not symbols:
        st.caption("Nothing stored yet, so nothing to check.")
    elif found:
        st.warning(
            f"{len(found)} gap(s) found; re-run the affected partitions in Dagster at "
            f"{ctx.dagster_url}."
        )
        st.dataframe(
            {
                "symbol": [s for s, _, _ in found],
                "dataset": [d for _, d, _ in found],
                "first missing (UTC)": [_utc(g.start) for _, _, g in found],
                "up to (UTC, excluded)": [_utc(g.end) for _, _, g in found],
                "missing candles": [g.missing for _, _, g in found],
            },
            hide_index=True,
        )
    else:
        st.success("No gaps found in the stored ranges.")


render()
