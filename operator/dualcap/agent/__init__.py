"""`dualcap agent`: the miner agent on one ASIC controller node.

It reads its own Node, sleeps or wakes the block's miners through asic-rs as the Node's
curtailment marks say, and reports what they measure in the block's MinerBlock. It uses
`dualcap.api` and a small client of its own; never the planner, never kopf.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal


def run(args: argparse.Namespace) -> int:
    from dualcap.agent.agent import Agent
    from dualcap.agent.credentials import Credentials
    from dualcap.agent.kube import ConfigError, Kube, load_connection
    from dualcap.agent.miners import Driver
    from dualcap.agent.settings import AgentSettings

    node = args.node or os.environ.get("NODE_NAME")
    if not node:
        raise SystemExit("dualcap agent: error: --node (or NODE_NAME) is required")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # asic-rs logs through Python's logging at debug; its chatter is not the agent's
    logging.getLogger("asic_rs").setLevel(logging.WARNING)
    try:
        conn = load_connection(args.kubeconfig, args.context)
    except ConfigError as err:
        raise SystemExit(f"dualcap agent: error: {err}") from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError, RuntimeError):  # not the main thread
                loop.add_signal_handler(sig, stop.set)
        kube = Kube(conn)
        driver = Driver(
            Credentials(args.credentials),
            sleep_watts=args.sleep_watts,
            timeout=args.miner_timeout,
            concurrency=args.concurrency,
        )
        agent = Agent(kube, node, driver, AgentSettings(interval=args.interval))
        logging.getLogger("dualcap.agent").info(
            "agent for node %s on %s, every %ss", node, conn.server, args.interval
        )
        try:
            await agent.run(stop)
        finally:
            await kube.close()

    asyncio.run(main())
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    agent = sub.add_parser(
        "agent",
        help="run the miner agent of one ASIC controller node",
        description=(
            "Sleep or wake the miners of one ASIC controller node (its dualcap.io/miners"
            " annotation) as the node's curtailment marks say, through asic-rs, and report"
            " what they measure in the node's MinerBlock."
        ),
    )
    agent.add_argument("--node", metavar="NAME", help="the node (default: $NODE_NAME)")
    agent.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig (default: $KUBECONFIG, the pod's service account, ~/.kube/config)",
    )
    agent.add_argument(
        "--context", metavar="NAME", help="the kubeconfig's context (default: its current one)"
    )
    agent.add_argument(
        "--interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="measure, re-send and report this often (default: %(default)s)",
    )
    agent.add_argument(
        "--credentials",
        metavar="DIR",
        default=os.environ.get("DUALCAP_CREDENTIALS"),
        help="a mounted Secret with <firmware>.username / <firmware>.password files",
    )
    agent.add_argument(
        "--sleep-watts",
        type=float,
        default=100.0,
        metavar="W",
        help="a miner with no hashrate drawing less than this sleeps (default: %(default)s)",
    )
    agent.add_argument(
        "--concurrency",
        type=int,
        default=64,
        metavar="N",
        help="miners talked to at once (default: %(default)s)",
    )
    agent.add_argument(
        "--miner-timeout",
        type=float,
        default=6.0,
        metavar="SECONDS",
        help="the longest one call to a miner may take (default: %(default)s)",
    )
    agent.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    agent.set_defaults(func=run)
