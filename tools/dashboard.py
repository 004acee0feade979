"""The Grafana dashboard of dualcap, generated with grafana-foundation-sdk.

`make dashboard` writes charts/dualcap/dashboards/dualcap.json (shipped by the chart as a
ConfigMap for Grafana's sidecar); `make verify` regenerates it and fails on a difference.
Every query here runs in tests/observability against a real Prometheus scraping a running
operator, and must return data; every metric name must be one dualcap exports.

A fleet row (every site that reports), then one row per site (repeated over `$site`):
the limit and its next change, committed, metered, modelled and unmodelled draw, the load
by kind, the ASIC controllers and the miners by state, time to compliance after each
limit change, the inputs' freshness and ages, leases and Workloads by phase, and
curtailments and resumes as annotations.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "charts" / "dualcap" / "dashboards" / "dualcap.json"
UID = "dualcap-sites"
DS = DataSourceRef(type_val="prometheus", uid="${datasource}")
SITE = 'site=~"$site"'


def query(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)


def series(
    title: str,
    description: str,
    unit: str,
    targets: list[tuple[str, str]],
    *,
    width: int = 12,
    stacked: bool = False,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .span(width)
        .height(8)
        .fill_opacity(25 if stacked else 0)
        .line_width(1)
        .legend(cb.VizLegendOptions().show_legend(True).display_mode(common.LegendDisplayMode.LIST))
    )
    if stacked:
        panel = panel.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL))
    for i, (expr, legend) in enumerate(targets):
        panel = panel.with_target(query(expr, legend, chr(ord("A") + i)))
    return panel


def single(title: str, description: str, unit: str, expr: str, legend: str = "") -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .unit(unit)
        .span(4)
        .height(4)
        .graph_mode(common.BigValueGraphMode.NONE)
        .with_target(query(expr, legend, "A"))
    )


def fleet_row(d: db.Dashboard) -> db.Dashboard:
    d = d.with_row(db.Row("Fleet"))
    d = d.with_panel(single("Sites reporting", "Sites whose operator reports a limit.", "none",
                            "count(dualcap_site_limit_watts)"))  # fmt: skip
    d = d.with_panel(single("Fleet limit", "The sum of the sites' limits.", "watt",
                            "sum(dualcap_site_limit_watts)"))  # fmt: skip
    d = d.with_panel(single("Fleet committed", "The sum of the sites' committed draw.", "watt",
                            "sum(dualcap_site_committed_watts)"))  # fmt: skip
    d = d.with_panel(series(
        "Headroom by site",
        "Each site's limit minus its committed draw (below zero: over its envelope).",
        "watt",
        [("dualcap_site_headroom_watts", "{{site}}")],
    ))  # fmt: skip
    d = d.with_panel(series(
        "Revenue and energy cost by site",
        "Estimated revenue (mining and GPU) and energy cost per hour at each site's plan.",
        "currencyUSD",
        [("sum by (site) (dualcap_site_revenue_usd_per_hour)", "{{site}} revenue"),
         ("dualcap_site_energy_cost_usd_per_hour", "{{site}} energy")],
    ))  # fmt: skip
    return d


def site_row(d: db.Dashboard) -> db.Dashboard:
    d = d.with_row(db.Row("Site $site").repeat("site"))
    d = d.with_panel(series(
        "Power against the envelope",
        "The limit (margin deducted), what the site may draw now counted conservatively"
        " (committed), what the meter reads (while fresh), the sum of the parts (modelled)"
        " and the load the meter shows beyond them (unmodelled), and the draw once the plan"
        " has taken effect (planned).",
        "watt",
        [(f"dualcap_site_limit_watts{{{SITE}}}", "limit"),
         (f"dualcap_site_committed_watts{{{SITE}}}", "committed"),
         (f"dualcap_site_metered_watts{{{SITE}}}", "metered"),
         (f"dualcap_site_committed_watts{{{SITE}}} - on (site) dualcap_site_unmodelled_watts{{{SITE}}}", "modelled"),
         (f"dualcap_site_unmodelled_watts{{{SITE}}}", "unmodelled"),
         (f"dualcap_site_planned_watts{{{SITE}}}", "planned")],
        width=16,
    ))  # fmt: skip
    d = d.with_panel(single("Next limit", "The limit after its next change (none ahead: no value).",
                            "watt", f"dualcap_site_next_limit_watts{{{SITE}}}"))  # fmt: skip
    d = d.with_panel(single("Next change", "When the limit next changes.", "dateTimeFromNow",
                            f"dualcap_site_next_limit_change_timestamp_seconds{{{SITE}}} * 1000"))  # fmt: skip
    d = d.with_panel(series(
        "Load by kind",
        "The committed draw by kind: mining, GPU, overhead (fixed load and PUE).",
        "watt",
        [(f"dualcap_site_draw_watts{{{SITE}}}", "{{kind}}")],
        width=8,
        stacked=True,
    ))  # fmt: skip
    d = d.with_panel(series(
        "ASIC controllers by state",
        "mining, curtailing (not yet confirmed), curtailed, held (NotReady: counted at full"
        " power), unready.",
        "none",
        [(f"dualcap_site_controllers{{{SITE}}}", "{{state}}")],
        width=8,
        stacked=True,
    ))  # fmt: skip
    d = d.with_panel(series(
        "Miners by state",
        "The miners of the blocks with a fresh MinerBlock report (MinerAgent sites), and the"
        " blocks without one.",
        "none",
        [(f"dualcap_site_miners{{{SITE}}}", "{{state}}"),
         (f"dualcap_site_blocks{{{SITE},state=\"stale\"}}", "blocks not reporting")],
        width=8,
        stacked=False,
    ))  # fmt: skip
    d = d.with_panel(series(
        "Time to compliance",
        "From a change of the limit to the first reconcile inside it: the 99th percentile over"
        " the interval, and the mean since the operator started.",
        "s",
        [(f"histogram_quantile(0.99, sum by (le) (rate(dualcap_envelope_compliance_seconds_bucket{{{SITE}}}[$__rate_interval])))", "p99"),
         (f"dualcap_envelope_compliance_seconds_sum{{{SITE}}} / dualcap_envelope_compliance_seconds_count{{{SITE}}}", "mean")],
        width=8,
    ))  # fmt: skip
    d = d.with_panel(series(
        "Inputs",
        "Whether the meter, the GPU power query and the price feeds are fresh (1) or stale"
        " or failing (0).",
        "none",
        [(f"dualcap_site_input_fresh{{{SITE}}}", "{{input}}")],
        width=8,
    ))  # fmt: skip
    d = d.with_panel(series(
        "Signal ages",
        "How old the latest reading of each outside signal is (price feeds; the OpenADR VTN"
        " when its adapter is scraped).",
        "s",
        [(f"dualcap_signal_age_seconds{{{SITE}}}", "{{source}}")],
        width=8,
    ))  # fmt: skip
    d = d.with_panel(series(
        "Leases and Workloads by phase",
        "ComputeLeases and Kueue Workloads under the power check, by phase.",
        "none",
        [(f"dualcap_site_leases{{{SITE}}}", "leases {{phase}}"),
         (f"dualcap_site_workloads{{{SITE}}}", "workloads {{phase}}")],
        width=12,
    ))  # fmt: skip
    d = d.with_panel(series(
        "Waiting for power",
        "How long the longest waiting lease and Workload have waited for power.",
        "s",
        [(f"dualcap_site_power_wait_seconds{{{SITE}}}", "{{kind}}")],
        width=12,
    ))  # fmt: skip
    return d


def annotation(name: str, kind: str, color: str) -> db.AnnotationQuery:
    return (
        db.AnnotationQuery()
        .name(name)
        .datasource(DS)
        .enable(True)
        .icon_color(color)
        .expr(f'sum by (site) (increase(dualcap_commands_total{{kind="{kind}",{SITE}}}[1m])) > 0')
    )


def build() -> db.Dashboard:
    d = (
        db.Dashboard("dualcap: sites and their power envelopes")
        .uid(UID)
        .tags(["dualcap", "power"])
        .description("Generated by tools/dashboard.py in the dualcap repository: do not edit.")
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(db.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            db.QueryVariable("site")
            .label("Site")
            .datasource(DS)
            .query("label_values(dualcap_site_limit_watts, site)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .multi(True)
            .include_all(True)
        )
        .annotation(annotation("Curtailments", "curtail", "red"))
        .annotation(annotation("Resumes", "resume", "green"))
    )
    return site_row(fleet_row(d))


def render() -> str:
    return json.dumps(build().build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main() -> int:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render())
    print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
