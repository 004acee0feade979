"""The run as a chart (matplotlib)."""

from __future__ import annotations

from pathlib import Path

from dualcap.simulate.scenario import KINDS, POLICIES, ScenarioError
from dualcap.simulate.stepping import Result


def chart(r: Result, path: str | Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
    except ImportError:
        raise ScenarioError("--output needs matplotlib: pip install 'dualcap[chart]'") from None
    t = r.totals["dualcap"]
    local = [x.astimezone(r.scenario.tz) for x in r.times]
    mw = {k: [v / 1000 for v in t.series[k]] for k in (*KINDS, "limit")}
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(12, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}
    )
    top.stackplot(
        local,
        mw["overhead"],
        mw["gpu"],
        mw["mining"],
        labels=["overhead (fixed load)", "GPU leases", "mining"],
        colors=["#9e9e9e", "#2e7d32", "#f9a825"],
        step="post",
        alpha=0.9,
    )
    top.step(local, mw["limit"], where="post", color="#c62828", lw=2, label="envelope (limit)")
    naive_total = [sum(v) / 1000 for v in zip(*(r.totals["always-mine"].series[k] for k in KINDS), strict=True)]  # fmt: skip
    top.step(local, naive_total, where="post", color="#1565c0", lw=1.2, ls="--", label="always-mine: total draw")  # fmt: skip
    top.set_ylabel("MW")
    top.set_title(f"dualcap simulate: {r.scenario.name}  (site {r.scenario.site})")
    top.legend(loc="lower left", fontsize=8, ncol=3)
    top.set_ylim(0, max(mw["limit"] + [1]) * 1.12)
    top.grid(alpha=0.3)
    source = r.scenario.price_file
    price_label = "energy price"
    if source:
        price_label += f", {source.settlement_point.upper()} ({source.market.upper()})"
    bottom.step(local, r.prices, where="post", color="#6a1b9a", lw=1.5, label=price_label)
    bottom.step(local, r.breakeven, where="post", color="#ef6c00", lw=1.2, ls=":", label="mining break-even (the largest controller)")  # fmt: skip
    bottom.set_ylabel("USD/MWh")
    if min(r.prices) > 0 and max(r.prices) > 20 * max(1.0, min(r.prices)):
        bottom.set_yscale("log")
    elif max(r.prices) > 20 * max(1.0, abs(min(r.prices))):  # negative prices: no log scale
        bottom.set_yscale("symlog", linthresh=50)
    bottom.legend(loc="upper left", fontsize=8)
    bottom.grid(alpha=0.3)
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=r.scenario.tz))  # type: ignore[no-untyped-call]
    bottom.set_xlabel(f"local time ({r.scenario.tz.key})")
    nets = "   ".join(f"{n}: {r.totals[n].net_usd:,.0f} USD" for n in POLICIES)
    fig.text(0.01, 0.005, f"net over the scenario: {nets}", fontsize=8)
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
