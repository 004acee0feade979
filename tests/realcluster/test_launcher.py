"""The launcher's bad input and failures, without Go: a missing binary, a port in use, a
component that exits during start-up. Each is one clear message naming the step (and the
tail of its log), with nothing left running and no kubeconfig written. The components
here are small scripts standing in for binaries that never get far enough to matter; the
real ones are started by the e2e tier (tests/e2e/test_control_plane.py)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.realcluster.launcher import CONTROL_PLANE, Component, ControlPlane, LaunchError, Ports


def bin_dir(tmp_path: Path, scripts: dict[str, str] | None = None) -> Path:
    """Every control-plane binary as an executable script: ``scripts`` by name, else one
    that would wait forever."""
    out = tmp_path / "bin"
    out.mkdir()
    for name in CONTROL_PLANE:
        path = out / name
        path.write_text("#!/bin/sh\n" + (scripts or {}).get(name, "exec sleep 600\n"))
        path.chmod(0o755)
    stages = tmp_path / "kwok" / "stages.yaml"  # make kube-bins writes kwok's own there
    stages.parent.mkdir()
    stages.write_text("kind: Stage\nmetadata: {name: node-initialize}\n")
    return out


def test_missing_binaries_are_named_with_how_to_build_them(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    cp = ControlPlane(tmp_path / "work", empty)
    with pytest.raises(LaunchError) as err:
        cp.start()
    message = str(err.value)
    assert "missing binaries" in message and "make kube-bins" in message
    for name in CONTROL_PLANE:
        assert name in message
    assert not cp.kubeconfig.exists()
    assert not cp.components


def test_a_port_in_use_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cp = ControlPlane(tmp_path / "work", bin_dir(tmp_path), ports=Ports(apiserver=port))
        with pytest.raises(LaunchError) as err:
            cp.start()
    assert f"port {port} (apiserver) is in use" in str(err.value)
    assert not cp.kubeconfig.exists()
    assert not cp.components  # nothing was started


def test_a_component_that_exits_is_named_with_its_log_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    bins = bin_dir(tmp_path, {"etcd": "echo 'etcd: cannot open the data dir' >&2\nexit 3\n"})
    cp = ControlPlane(tmp_path / "work", bins, start_timeout=20)
    with pytest.raises(LaunchError) as err:
        cp.start()
    message = str(err.value)
    assert message.startswith("etcd exited during start-up")
    assert "cannot open the data dir" in message  # the tail of its log
    assert str(cp.log("etcd")) in message
    assert not cp.kubeconfig.exists()
    assert not any(c.running for c in cp.components.values())


def test_kwoks_missing_stages_are_named(tmp_path: Path) -> None:
    bins = bin_dir(tmp_path)
    (tmp_path / "kwok" / "stages.yaml").unlink()
    cp = ControlPlane(tmp_path / "work", bins)
    with pytest.raises(LaunchError, match=r"kwok's stages .* are missing .*make kube-bins"):
        cp.start()
    assert not cp.kubeconfig.exists()


def test_a_component_started_from_a_passing_thread_outlives_it(tmp_path: Path) -> None:
    """A component started from a thread that then ends (asyncio.to_thread's) keeps
    running: the kernel's parent-death signal follows the thread that started it."""
    script = tmp_path / "sleeper"
    script.write_text("#!/bin/sh\nexec sleep 600\n")
    script.chmod(0o755)
    comp = Component("sleeper", [str(script)], tmp_path / "sleeper.log")
    thread = threading.Thread(target=comp.start)
    thread.start()
    thread.join()
    task = Path(f"/proc/self/task/{thread.native_id}")
    deadline = time.monotonic() + 10
    while task.exists() and time.monotonic() < deadline:  # the OS thread gone too
        time.sleep(0.01)
    assert comp.proc is not None
    try:
        # the parent-death signal is sent as the thread exits: a killed child would be
        # reaped at once; this one must still be running half a second later
        with pytest.raises(subprocess.TimeoutExpired):
            comp.proc.wait(0.5)
    finally:
        comp.stop()
    assert not comp.running
