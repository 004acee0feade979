"""`dualcap` command line: crds, plan, run, agent, simulate, prices, openadr, fleet."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dualcap.manifests import InputError, load_objects


def _cmd_crds(args: argparse.Namespace) -> int:
    from dualcap.api.crd import render_files

    files = render_files()
    if args.output_dir:
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text)
            print(f"wrote {out / name}", file=sys.stderr)
    else:
        sys.stdout.write("---\n".join(files.values()))
    return 0


def _parse_at(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    from dualcap.api.common import parse_rfc3339

    try:
        return parse_rfc3339(value)
    except ValueError as err:
        raise InputError(
            f"--at {value!r}: not an RFC 3339 time with an offset, e.g. 2026-07-14T19:00:00Z"
        ) from err


def _cmd_plan(args: argparse.Namespace) -> int:
    from dualcap.planning import build_fleet, plan
    from dualcap.planning.report import plans_json, plans_table

    at = _parse_at(args.at)
    fleet = build_fleet(load_objects(args.snapshot), now=at)
    if not fleet.sites:
        raise InputError(f"{args.snapshot}: no Site found")
    names = args.site or sorted(fleet.sites)
    unknown = [n for n in names if n not in fleet.sites]
    if unknown:
        raise InputError(f"unknown site {unknown[0]!r} (sites: {', '.join(sorted(fleet.sites))})")
    fatal = [p for p in fleet.problems if p.reason == "SiteNotFound"]
    for name in names:
        fatal += [p for p in fleet.sites[name].problems if p.reason == "InvalidSpec"]
    if fatal:
        raise InputError("; ".join(str(p) for p in fatal))
    plans = [plan(fleet.sites[n], at) for n in names]
    if args.output == "json":
        print(json.dumps(plans_json(plans, at), indent=2))
    else:
        print(plans_table(plans, at))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from dualcap import simulate

    if args.fleet:
        if args.scenario or args.prices:
            raise InputError("--fleet simulates a synthetic fleet: give no scenario or --prices")
        from dualcap.simulate import fleet

        try:
            return fleet.main(args.seed, args.sites, args.jobs, args.output)
        except ValueError as err:
            raise InputError(str(err)) from None
    if not args.scenario:
        raise InputError("a scenario file, or --fleet")
    try:
        return simulate.run(
            args.scenario, args.output, None, args.prices, args.settlement_point, args.market
        )
    except simulate.ScenarioError as err:
        raise InputError(str(err)) from None


def _cmd_prices(args: argparse.Namespace) -> int:
    import asyncio

    from dualcap.signals import hashprice, prices
    from dualcap.signals.reading import SignalError

    at = _parse_at(args.at)
    try:
        signal = asyncio.run(prices.load(args.source, args.settlement_point, args.market, now=at))
        hash_signal = asyncio.run(hashprice.load(args.hashprice)) if args.hashprice else None
    except SignalError as err:
        raise InputError(f"{err.reason}: {err.message}") from None
    intervals = signal.value
    current = prices.price_at(intervals, at)
    doc: dict[str, Any] = {
        "settlementPoint": intervals[0].settlement_point,
        "market": args.market,
        "at": at.isoformat().replace("+00:00", "Z"),
        "usdPerMWh": current,
        "observedAt": signal.observed_at.isoformat().replace("+00:00", "Z"),
        "ageSeconds": signal.age(at),
        "intervals": [
            {
                "start": i.start.isoformat().replace("+00:00", "Z"),
                "end": i.end.isoformat().replace("+00:00", "Z"),
                "usdPerMWh": i.usd_per_mwh,
            }
            for i in intervals
        ],
    }
    if hash_signal is not None:
        doc["hashpriceUSDPerPHDay"] = hash_signal.value
        doc["hashpriceObservedAt"] = hash_signal.observed_at.isoformat().replace("+00:00", "Z")
    if args.output == "json":
        print(json.dumps(doc, indent=2))
        return 0
    first, last = intervals[0], intervals[-1]
    price = "none (outside the series)" if current is None else f"{current:,.2f} USD/MWh"
    print(
        f"{doc['settlementPoint']} ({args.market}): {price} at {doc['at']};"
        f" {len(intervals)} intervals {first.start:%Y-%m-%dT%H:%MZ}..{last.end:%Y-%m-%dT%H:%MZ},"
        f" {signal.age(at):.0f} s old"
    )
    if hash_signal is not None:
        print(f"hashprice: {hash_signal.value:,.2f} USD/PH/day, {hash_signal.age(at):.0f} s old")
    return 0


def _cmd_openadr(args: argparse.Namespace) -> int:
    from dualcap.signals import openadr

    try:
        return openadr.run(args.config, args.metrics_port, args.kubeconfig, args.context)
    except openadr.ConfigError as err:
        raise InputError(str(err)) from None


def _cmd_fleet(args: argparse.Namespace) -> int:
    from dualcap.fleet.dispatch import Settings, run
    from dualcap.login import CredentialsError

    if args.usd_per_gpu_hour < 0 or args.expected_hours <= 0 or args.interval <= 0:
        raise InputError("--usd-per-gpu-hour must be >= 0, --expected-hours and --interval > 0")
    if not args.nomination_timeout > 0:
        raise InputError("--nomination-timeout must be > 0")
    settings = Settings(
        usd_per_gpu_hour=args.usd_per_gpu_hour,
        expected_hours=args.expected_hours,
        gpu_resource=args.gpu_resource,
        interval=args.interval,
        nomination_timeout=args.nomination_timeout,
    )
    try:
        return run(settings, args.kueue_namespace, args.kubeconfig, args.context)
    except CredentialsError as err:
        raise InputError(str(err)) from None


def _cmd_run(args: argparse.Namespace) -> int:
    from dualcap.handlers.run import run

    run(
        args.namespace or [],
        None if args.liveness == "none" else args.liveness,
        args.peering,
        args.verbose,
        args.quiet,
        args.log_format,
        args.metrics_port or None,
        _priority(args.priority),
        kubeconfig=args.kubeconfig,
        context=args.context,
    )
    return 0


def _login_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        metavar="FILE[:FILE...]",
        help="kubeconfig file(s), merged as kubectl merges them (default: $KUBECONFIG, the"
        " pod's service account, ~/.kube/config)",
    )
    parser.add_argument(
        "--context", metavar="NAME", help="the kubeconfig's context (default: its current one)"
    )


def _priority(value: str) -> int:
    if value == "auto":
        import os
        import socket
        import zlib

        name = os.environ.get("POD_NAME") or socket.gethostname()
        return zlib.crc32(name.encode()) % 1_000_000 + 1
    try:
        return int(value)
    except ValueError:
        raise SystemExit(
            f"dualcap run: error: --priority: an integer or 'auto', not {value!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dualcap",
        description="Keep mining-turned-AI-compute sites inside their power envelope.",
    )
    from dualcap import __version__

    parser.add_argument("--version", action="version", version=f"dualcap {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    crds = sub.add_parser("crds", help="print the CustomResourceDefinitions (or write them)")
    crds.add_argument("--output-dir", "-d", help="write one file per CRD into this directory")
    crds.set_defaults(func=_cmd_crds)

    plan = sub.add_parser(
        "plan",
        help="plan every site in a file of Kubernetes objects, offline",
        description=(
            "Run the planning core offline on Kubernetes objects as `kubectl get -o yaml`"
            " prints them (a List, or YAML documents): Sites, PowerBudgets, ComputeLeases,"
            " Nodes and Pods. Prints what dualcap would do at the given time."
        ),
    )
    plan.add_argument(
        "--snapshot",
        "-f",
        required=True,
        metavar="FILE",
        help="a file, a directory of YAML/JSON files, or - for stdin",
    )
    plan.add_argument("--at", metavar="RFC3339", help="the time to plan for (default: now)")
    plan.add_argument("--output", "-o", choices=["table", "json"], default="table")
    plan.add_argument("--site", action="append", help="only this site (repeatable)")
    plan.set_defaults(func=_cmd_plan)

    run = sub.add_parser(
        "run",
        help="run the operator against the current kubeconfig or in-cluster credentials",
        description=(
            "Run the dualcap operator: one reconcile loop per Site, keeping it inside its"
            " envelope. Credentials: --kubeconfig, else KUBECONFIG, else the pod's service"
            " account in a cluster, else ~/.kube/config (exec credential plugins included)."
        ),
    )
    _login_arguments(run)
    run.add_argument(
        "--namespace",
        "-n",
        action="append",
        metavar="NS",
        help="watch ComputeLeases and pods only in this namespace (repeatable; default: all)",
    )
    run.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        metavar="URL",
        help="kopf liveness endpoint (default: %(default)s; 'none' to disable)",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=9090,
        metavar="N",
        help="serve Prometheus metrics on this port at /metrics (default: %(default)s; 0 to disable)",
    )
    run.add_argument(
        "--peering",
        metavar="NAME",
        help="kopf peering object for high availability (default: standalone)",
    )
    run.add_argument(
        "--priority",
        default="0",
        metavar="N|auto",
        help=(
            "peering priority: of the operators sharing a peering object only the highest acts;"
            " 'auto' derives a distinct one from the pod name (POD_NAME, else the host name)"
        ),
    )
    run.add_argument(
        "--log-format",
        choices=["plain", "full", "json"],
        default="full",
        help="log format (default: %(default)s)",
    )
    run.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    run.add_argument("--quiet", "-q", action="store_true", help="warnings and errors only")
    run.set_defaults(func=_cmd_run)

    simulate = sub.add_parser(
        "simulate",
        help="the planner over a day or a week of prices, envelope changes and lease arrivals",
        description=(
            "Step the planning core over a scenario (see examples/scenarios/) in 5-minute"
            " intervals, applying its commands as an ideal cluster would; print energy,"
            " revenue and cost by kind beside two naive policies (always mine; a fixed"
            " GPU/mining split), and optionally write a chart. The energy price is the"
            " scenario's, or an ERCOT report's at one settlement point (--prices), each step"
            " at the interval covering it; a report that does not cover the scenario is an"
            " error."
        ),
    )
    simulate.add_argument("scenario", nargs="?", help="a scenario file (YAML)")
    simulate.add_argument(
        "--fleet",
        action="store_true",
        help="instead: a synthetic fleet (sites in four markets, windows, DR events) and a day"
        " of jobs placed by dualcap's fleet rule against round robin and most-free-GPUs",
    )
    simulate.add_argument(
        "--seed", type=int, default=1, help="--fleet: the seed (default: %(default)s)"
    )
    simulate.add_argument(
        "--sites", type=int, default=40, help="--fleet: how many sites (default: %(default)s)"
    )
    simulate.add_argument(
        "--jobs",
        type=int,
        default=2000,
        help="--fleet: how many jobs in the day (default: %(default)s)",
    )
    simulate.add_argument(
        "--output", "-o", metavar="CHART.png", help="write a PNG chart (needs matplotlib)"
    )
    simulate.add_argument(
        "--prices",
        metavar="FILE",
        help="an ERCOT price report (NP6-905 CSV or JSON, NP4-190 CSV or JSON) for the"
        " scenario's energy price, instead of its own",
    )
    simulate.add_argument(
        "--settlement-point", metavar="NAME", help="the report's point, e.g. HB_HOUSTON"
    )
    simulate.add_argument(
        "--market",
        choices=["rt", "dam"],
        help="rt: NP6-905 real time (the default); dam: NP4-190 day ahead",
    )
    simulate.set_defaults(func=_cmd_simulate)

    prices = sub.add_parser(
        "prices",
        help="read ERCOT settlement point prices (and a hashprice) and print the current one",
        description=(
            "Read an ERCOT real-time (NP6-905-CD) or day-ahead (NP4-190-CD) price report, as"
            " its CSV or as the public API's JSON, from a file or an http(s) URL, for one"
            " settlement point, and print the price in force (Central time, DST flags"
            " honoured). A gap, a duplicated interval or an unknown point is an error."
        ),
    )
    prices.add_argument("--source", "-f", required=True, metavar="FILE|URL", help="the report")
    prices.add_argument(
        "--settlement-point", "-p", required=True, metavar="NAME", help="e.g. HB_HOUSTON, LZ_WEST"
    )
    prices.add_argument(
        "--market", choices=["rt", "dam"], default="rt", help="real time or day ahead"
    )
    prices.add_argument("--hashprice", metavar="FILE|URL", help="also a Hashrate Index hashprice")
    prices.add_argument("--at", metavar="RFC3339", help="the time to price (default: now)")
    prices.add_argument("--output", "-o", choices=["table", "json"], default="table")
    prices.set_defaults(func=_cmd_prices)

    openadr = sub.add_parser(
        "openadr",
        help="an OpenADR 2.0b VEN: a VTN's demand-response events into PowerBudgets of its own",
        description=(
            "Register with an aggregator's OpenADR 2.0b VTN, poll it, and write each event"
            " into a PowerBudget named openadr-<site> (labelled dualcap.io/adapter=openadr),"
            " opting in when the site can comply and out, with the reason, when the event's"
            " limit is below the site's non-curtailable floor. Credentials: --kubeconfig, else"
            " KUBECONFIG, else the pod's service account, else ~/.kube/config."
        ),
    )
    _login_arguments(openadr)
    openadr.add_argument(
        "--config", "-c", required=True, metavar="FILE", help="the VEN's YAML configuration"
    )
    openadr.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="N",
        help="serve dualcap_signal_age_seconds on this port at /metrics (default: off)",
    )
    openadr.set_defaults(func=_cmd_openadr)

    fleet = sub.add_parser(
        "fleet",
        help="the MultiKueue dispatcher of a manager cluster: each Workload where it earns the most",
        description=(
            "On a Kueue MultiKueue manager cluster whose Kueue configuration says"
            " multiKueue.dispatcherName: dualcap.io/fleet: read what each worker cluster's"
            " sites offer (their Sites' status.offer, through the kubeconfig Secrets of the"
            " MultiKueueClusters), and nominate for every Workload waiting to be dispatched"
            " the worker where its expected margin is the highest (its GPUs x its price,"
            " minus the energy at that site's price and the mining margin it displaces, where"
            " it fits now and for its expected duration), with an Event saying why."
            " Credentials (the manager's): --kubeconfig, else KUBECONFIG, else the pod's"
            " service account, else ~/.kube/config."
        ),
    )
    _login_arguments(fleet)
    fleet.add_argument("--kueue-namespace", default="kueue-system", metavar="NS",
                       help="Kueue's namespace on the manager: the kubeconfig Secrets (default: %(default)s)")  # fmt: skip
    fleet.add_argument("--usd-per-gpu-hour", type=float, default=2.0, metavar="USD",
                       help="what a GPU hour pays, for Workloads without the label dualcap.io/usd-per-gpu-hour (default: %(default)s)")  # fmt: skip
    fleet.add_argument("--expected-hours", type=float, default=1.0, metavar="H",
                       help="how long a Workload runs, without the label dualcap.io/expected-hours or a maximumExecutionTimeSeconds (default: %(default)s)")  # fmt: skip
    fleet.add_argument("--gpu-resource", default="nvidia.com/gpu", metavar="NAME",
                       help="the GPUs' extended resource (default: %(default)s)")  # fmt: skip
    fleet.add_argument("--interval", type=float, default=5.0, metavar="S",
                       help="a pass over the waiting Workloads this often (default: %(default)s)")  # fmt: skip
    fleet.add_argument("--nomination-timeout", type=float, default=300.0, metavar="S",
                       help="a nomination its cluster has not admitted in this many seconds is withdrawn and the Workload placed at the best other cluster (default: %(default)s)")  # fmt: skip
    fleet.set_defaults(func=_cmd_fleet)

    from dualcap.agent import add_parser as add_agent_parser

    add_agent_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as err:
        print(f"dualcap {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
