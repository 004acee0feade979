"""`dualcap` command line: crds, plan, demo."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


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


class InputError(Exception):
    """Bad input: reported as one line on stderr, exit code 2."""


def _objects_from(text: str, source: str) -> list[dict[str, Any]]:
    import yaml

    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise InputError(f"{source}: not valid YAML or JSON{where}") from err
    out: list[dict[str, Any]] = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise InputError(f"{source}: expected Kubernetes objects, found {type(doc).__name__}")
        kind = str(doc.get("kind", ""))
        if kind.endswith("List") and isinstance(doc.get("items"), list):
            item_kind = kind[: -len("List")] if kind != "List" else None
            for item in doc["items"]:
                if isinstance(item, dict):
                    if item_kind and "kind" not in item:
                        item = {**item, "kind": item_kind}
                    out.append(item)
        else:
            out.append(doc)
    return out


def load_objects(path: str) -> list[dict[str, Any]]:
    """Kubernetes objects from a file, a directory of .yaml/.yml/.json files, or '-'."""
    if path == "-":
        return _objects_from(sys.stdin.read(), "<stdin>")
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml", ".json"))
        if not files:
            raise InputError(f"{path}: no .yaml, .yml or .json files")
        return [o for f in files for o in _objects_from(f.read_text(), str(f))]
    if not p.exists():
        raise InputError(f"{path}: no such file")
    try:
        return _objects_from(p.read_text(), path)
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not a text file") from err


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
    fleet = build_fleet(load_objects(args.snapshot))
    if not fleet.sites:
        raise InputError(f"{args.snapshot}: no Site found")
    names = args.site or sorted(fleet.sites)
    unknown = [n for n in names if n not in fleet.sites]
    if unknown:
        raise InputError(f"unknown site {unknown[0]!r} (sites: {', '.join(sorted(fleet.sites))})")
    fatal = [p for p in fleet.problems if p.reason == "SiteNotFound"]
    for name in names:
        fatal += [
            p
            for p in fleet.sites[name].problems
            if p.reason in ("InvalidSpec", "ConflictingBudgets")
        ]
    if fatal:
        raise InputError("; ".join(str(p) for p in fatal))
    plans = [plan(fleet.sites[n], at) for n in names]
    if args.output == "json":
        print(json.dumps(plans_json(plans, at), indent=2))
    else:
        print(plans_table(plans, at))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from dualcap import demo

    examples = Path(args.examples)
    if not examples.is_dir():
        raise InputError(
            f"{examples}: not a directory (run from the repository, or pass --examples)"
        )
    if not (examples.parent / "crds").is_dir():
        raise InputError(
            f"{examples.parent / 'crds'}: not a directory (the CRDs sit beside the examples)"
        )
    if args.speed <= 0:
        raise InputError("--speed: must be positive")
    return demo.run(
        examples,
        speed=args.speed,
        keep_running=args.keep_running,
        kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
    )


def _cmd_simulate(args: argparse.Namespace) -> int:
    from dualcap import simulate

    try:
        return simulate.run(args.scenario, args.output)
    except simulate.ScenarioError as err:
        raise InputError(str(err)) from None


def _cmd_sandbox(args: argparse.Namespace) -> int:
    import asyncio

    from dualcap.sandbox.app import serve
    from dualcap.sandbox.cluster import Behaviour

    behaviour = Behaviour(pod_termination_seconds=args.termination_seconds)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.kubeconfig, args.load or [], behaviour))
    return 0


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
    )
    return 0


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
            " envelope. Credentials: the pod's service account in a cluster, else the"
            " current kubeconfig (KUBECONFIG)."
        ),
    )
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

    sandbox = sub.add_parser(
        "sandbox",
        help="serve a local Kubernetes API with cluster behaviour (no cluster needed)",
        description=(
            "Serve an in-memory Kubernetes API on localhost, with a scheduler, kubelets,"
            " NoExecute eviction, DaemonSets and garbage collection, until interrupted."
            " Writes a kubeconfig that kubectl and the operator can use."
        ),
    )
    sandbox.add_argument(
        "--kubeconfig",
        default="sandbox.kubeconfig",
        help="where to write the kubeconfig (default: ./sandbox.kubeconfig)",
    )
    sandbox.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)"
    )
    sandbox.add_argument(
        "--load",
        action="append",
        metavar="FILE",
        help="YAML to create at start (a file or directory; repeatable)",
    )
    sandbox.add_argument(
        "--termination-seconds",
        type=float,
        default=2.0,
        help="how long a pod takes to stop (a miner's preStop)",
    )
    sandbox.set_defaults(func=_cmd_sandbox)

    demo = sub.add_parser(
        "demo",
        help="the operator on a local sandbox cluster through an accelerated summer day",
        description=(
            "Start a sandbox cluster with the examples, run the operator against it, and play"
            " a summer day at the example site: a lease arrives, the summer-peak window and an"
            " ERS dispatch cut the limit, the dispatch ends, a lease ends, mining resumes."
            " Ends with a summary (time to compliance, time over the envelope, energy and"
            " revenue by kind) in about a minute."
        ),
    )
    demo.add_argument("--examples", default="examples", help="the examples directory (its sibling crds/ is loaded too)")  # fmt: skip
    demo.add_argument(
        "--speed",
        type=float,
        default=30.0,
        help="how much faster than the wall the site clock runs through each moment (default: %(default)s)",
    )
    demo.add_argument(
        "--keep-running",
        action="store_true",
        help="after the day, keep the sandbox and the operator running for kubectl (Ctrl-C stops)",
    )
    demo.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="write the sandbox's kubeconfig here (default: a temporary file, printed with --keep-running)",
    )
    demo.set_defaults(func=_cmd_demo)

    simulate = sub.add_parser(
        "simulate",
        help="the planner over a day or a week of prices, envelope changes and lease arrivals",
        description=(
            "Step the planning core over a scenario (see examples/scenarios/) in 5-minute"
            " intervals, applying its commands as an ideal cluster would; print energy,"
            " revenue and cost by kind beside two naive policies (always mine; a fixed"
            " GPU/mining split), and optionally write a chart."
        ),
    )
    simulate.add_argument("scenario", help="a scenario file (YAML)")
    simulate.add_argument(
        "--output", "-o", metavar="CHART.png", help="write a PNG chart (needs matplotlib)"
    )
    simulate.set_defaults(func=_cmd_simulate)

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
