"""`dualcap-demo` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dualcap-demo",
        description=(
            "Start a sandbox cluster with the examples, run the operator against it, and play"
            " a summer day at the example site: a lease arrives, the summer-peak window and an"
            " ERS dispatch cut the limit, the dispatch ends, a lease ends, mining resumes."
            " Every ASIC controller has a block of fake LuxOS miners driven by a real dualcap"
            " agent, and a SunSpec meter reads the site's true draw. Ends with a summary"
            " (time to compliance, time over the envelope, energy and revenue by kind, the"
            " meter and the miners as measured) in about a minute."
        ),
    )
    parser.add_argument("--examples", default="examples", help="the examples directory (its sibling crds/ is loaded too)")  # fmt: skip
    parser.add_argument(
        "--speed",
        type=float,
        default=30.0,
        help="how much faster than the wall the site clock runs through each moment (default: %(default)s)",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the day, keep the sandbox and the operator running for kubectl (Ctrl-C stops)",
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="write the sandbox's kubeconfig here (default: a temporary file, printed with --keep-running)",
    )
    parser.add_argument(
        "--chart",
        metavar="PNG",
        default="build/demo-day.png",
        help="write the day as a PNG chart here (default: %(default)s; '' for none; needs matplotlib)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    examples = Path(args.examples)
    problem = None
    if not examples.is_dir():
        problem = f"{examples}: not a directory (run from the repository, or pass --examples)"
    elif not (examples.parent / "crds").is_dir():
        problem = f"{examples.parent / 'crds'}: not a directory (the CRDs sit beside the examples)"
    elif args.speed <= 0:
        problem = "--speed: must be positive"
    if problem:
        print(f"dualcap-demo: error: {problem}", file=sys.stderr)
        return 2
    from dualcap_demo import demo

    try:
        return demo.run(
            examples,
            speed=args.speed,
            keep_running=args.keep_running,
            kubeconfig=Path(args.kubeconfig) if args.kubeconfig else None,
            chart=Path(args.chart) if args.chart else None,
        )
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
