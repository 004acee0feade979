"""`dualcap-sandbox`: serve the sandbox on localhost until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence

from dualcap_sandbox.app import serve
from dualcap_sandbox.cluster import Behaviour


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dualcap-sandbox",
        description=(
            "Serve an in-memory Kubernetes API on localhost, with a scheduler, kubelets,"
            " NoExecute eviction, DaemonSets and garbage collection, until interrupted."
            " Writes a kubeconfig that kubectl and the operator can use."
        ),
    )
    parser.add_argument(
        "--kubeconfig",
        default="sandbox.kubeconfig",
        help="where to write the kubeconfig (default: ./sandbox.kubeconfig)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)"
    )
    parser.add_argument(
        "--load",
        action="append",
        metavar="FILE",
        help="YAML to create at start (a file or directory; repeatable)",
    )
    parser.add_argument(
        "--termination-seconds",
        type=float,
        default=2.0,
        help="how long a pod takes to stop (a miner's preStop)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    behaviour = Behaviour(pod_termination_seconds=args.termination_seconds)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.kubeconfig, args.load or [], behaviour))
    return 0


if __name__ == "__main__":
    sys.exit(main())
