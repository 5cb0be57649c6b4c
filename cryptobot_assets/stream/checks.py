"""Asset check: streaming 1m candles reconcile exactly with the historical 15m candles."""

import dagster as dg

from cryptobot_assets.resources import CryptobotSettingsResource
from cryptobot_assets.stream.assets import STREAMING_ASSET_KEY
from cryptobot_core.models import ms_to_dt
from cryptobot_core.stream.reconcile import reconcile


@dg.asset_check(
    asset=STREAMING_ASSET_KEY,
    name="reconciles_with_historical_15m",
    description="For every closed 15-minute window present in both datasets, the 15 stored "
    "1m candles aggregate exactly to the 15m candle in historical_data_15m.",
)
def reconciles_with_historical_15m(config: CryptobotSettingsResource) -> dg.AssetCheckResult:
    """Compare every overlapping 15-minute window."""
    with config.open_store() as store:
        report = reconcile(store)
    sample = [
        f"{m.symbol} {ms_to_dt(m.open_ms).isoformat()}: "
        + ", ".join(f"{k} 1m={a} 15m={b}" for k, (a, b) in m.fields.items())
        for m in report.mismatches[:10]
    ]
    return dg.AssetCheckResult(
        passed=report.ok,
        metadata={
            "windows_checked": report.windows_checked,
            "mismatches": len(report.mismatches),
            "first_mismatches": dg.MetadataValue.md("\n".join(f"- {s}" for s in sample) or "none"),
        },
    )
