"""Asset check: streaming 1m candles reconcile exactly with the historical 15m candles."""

import dagster as dg

from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_assets.stream.assets import STREAMING_ASSET_KEY
from cryptobot_core.models import ms_to_dt
from cryptobot_core.stream.reconcile import reconcile_new_windows


@dg.asset_check(
    asset=STREAMING_ASSET_KEY,
    name="reconciles_with_historical_15m",
    description="For every closed 15-minute window present in both datasets, the 15 stored "
    "1m candles aggregate exactly to the 15m candle in historical_data_15m. Incremental: each "
    "evaluation compares the windows since the last one (a window that differs is compared "
    "again until it agrees); reconcile_schedule runs it every hour.",
)
def reconciles_with_historical_15m(config: CryptobotSettingsResource) -> dg.AssetCheckResult:
    """Compare the overlapping 15-minute windows that are new since the last evaluation."""
    with config.open_store() as store:
        report = reconcile_new_windows(store)
    sample = [
        f"{m.symbol} {ms_to_dt(m.open_ms).isoformat()}: "
        + ", ".join(f"{k} 1m={a} 15m={b}" for k, (a, b) in m.fields.items())
        for m in report.mismatches[:10]
    ]
    return dg.AssetCheckResult(
        passed=report.ok,
        metadata={
            "windows_checked": report.windows_checked,
            "next_since": ms_to_dt(report.next_since_ms).isoformat()
            if report.next_since_ms is not None
            else "none",
            "mismatches": len(report.mismatches),
            "first_mismatches": dg.MetadataValue.md("\n".join(f"- {s}" for s in sample) or "none"),
        },
    )
