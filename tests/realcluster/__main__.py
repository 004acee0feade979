"""`python -m tests.realcluster`: a local real control plane in the foreground (`make kube-up`).

Writes an admin kubeconfig, applies what --apply names, and runs until interrupted; every
component is stopped on the way out.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from tests.realcluster.launcher import ControlPlane, LaunchError, which_kubectl


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.realcluster", description=__doc__)
    ap.add_argument(
        "--kubeconfig", default="kube.kubeconfig", help="where to write the admin kubeconfig"
    )
    ap.add_argument(
        "--workdir", help="certificates, etcd data and logs (default: a temporary directory)"
    )
    ap.add_argument(
        "--apply",
        action="append",
        default=[],
        help="a file or directory to `kubectl apply --server-side` once up",
    )
    args = ap.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dualcap-kube-"))
    cp = ControlPlane(workdir)
    out = Path(args.kubeconfig)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        cp.start()
        out.write_bytes(cp.kubeconfig.read_bytes())
        out.chmod(0o600)
        for path in args.apply:
            subprocess.run(
                [which_kubectl(), "--kubeconfig", str(out), "apply", "--server-side", "-f", path],
                check=True,
            )
        print(f"control plane up at {cp.server}; logs in {cp.logs_dir}")
        print(f"export KUBECONFIG={out.resolve()}   (Ctrl-C stops it)", flush=True)
        stop.wait()
    except LaunchError as e:
        print(f"kube-up: {e}", file=sys.stderr)
        return 1
    finally:
        cp.stop()
        out.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
