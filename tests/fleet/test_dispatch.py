"""`dualcap fleet`'s pure parts: an offer read back from a Site's status, which Workloads
wait to be dispatched, what a Workload is as a job, and the nomination written as Kueue's
own admission status (nothing of Kueue's dropped)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dualcap.api.objects import rfc3339
from dualcap.cluster.status import offer_status
from dualcap.fleet.dispatch import Dispatcher, Settings, _waiting, nomination_apply
from dualcap.fleet.workers import offer_from_status, unsafe_kubeconfig
from dualcap.planning.offer import Offer, Room, Step, taken

NOW = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)
CHECKS = {"multikueue": ["site-a", "site-b"]}


def workload(**status: Any) -> dict[str, Any]:
    container = {"name": "c", "resources": {"requests": {"nvidia.com/gpu": "4"}}}
    return {
        "apiVersion": "kueue.x-k8s.io/v1beta2",
        "kind": "Workload",
        "metadata": {"name": "job-x", "namespace": "ai", "uid": "u1", "generation": 1,
                     "resourceVersion": "42", "labels": {"dualcap.io/usd-per-gpu-hour": "2.5"}},
        "spec": {"podSets": [{"name": "main", "count": 2, "template": {"spec": {"containers": [container]}}}]},
        "status": {
            "conditions": [{"type": "QuotaReserved", "status": "True"},
                           {"type": "PodsReady", "status": "False"}],
            "admission": {"clusterQueue": "gpus"},
            "admissionChecks": [{"name": "multikueue", "state": "Pending", "message": ""}],
            **status,
        },
    }  # fmt: skip


def test_an_offer_read_back_is_the_offer_written() -> None:
    o = Offer(NOW, 16, 1.2, 1_000, 100, (Room(100, 0), Room(400, 55.5)), 30, (Step(NOW + timedelta(hours=2), 600, 90),))  # fmt: skip
    written = offer_status(o, 60, None, NOW)
    assert offer_from_status(written, NOW + timedelta(seconds=30)) == o
    # past validUntil (3 minutes) by more than the skew allowed (5 minutes)
    late = NOW + timedelta(minutes=9)
    assert offer_from_status(written, late) == "offer stale (observed 540 s ago)"
    # a site's clock 4 minutes behind the fleet's: its fresh offer is still fresh ...
    ahead = NOW + timedelta(minutes=4)
    assert offer_from_status(written, ahead, ahead) == o
    # ... and seen unchanged for longer than its 3 minutes, it is stale, whatever the clocks
    assert offer_from_status(written, ahead, NOW) == "offer stale (unchanged for 240 s)"
    assert offer_from_status(None, NOW).startswith("no offer")
    broken = {**(written or {}), "gpusFree": "many"}
    assert str(offer_from_status(broken, NOW)).startswith("offer unreadable (ValueError")
    assert offer_from_status({**(written or {}), "validUntil": rfc3339(NOW)}, NOW) == o


def test_which_workloads_wait_to_be_dispatched() -> None:
    assert _waiting(workload(), CHECKS) == ["site-a", "site-b"]
    assert _waiting(workload(nominatedClusterNames=["site-a"]), CHECKS) is None
    assert _waiting(workload(clusterName="site-a"), CHECKS) is None
    ready = workload(admissionChecks=[{"name": "multikueue", "state": "Ready"}])
    assert _waiting(ready, CHECKS) is None
    no_quota = workload(conditions=[{"type": "QuotaReserved", "status": "False"}])
    assert _waiting(no_quota, CHECKS) is None
    other_check = workload(admissionChecks=[{"name": "power", "state": "Pending"}])
    assert _waiting(other_check, CHECKS) is None


def test_a_workload_as_a_job() -> None:
    d = Dispatcher(None, None, Settings(usd_per_gpu_hour=2.0, expected_hours=1.0))  # type: ignore[arg-type]
    job = d._job(workload())
    assert (job.gpus, job.usd_per_gpu_hour, job.hours) == (8, 2.5, 1.0)  # type: ignore[union-attr]
    w = workload()
    w["spec"]["maximumExecutionTimeSeconds"] = 7200
    assert d._job(w).hours == 2.0  # type: ignore[union-attr]
    w["metadata"]["labels"]["dualcap.io/expected-hours"] = "0.5"
    assert d._job(w).hours == 0.5  # type: ignore[union-attr]
    w["metadata"]["labels"]["dualcap.io/expected-hours"] = "soon"
    assert str(d._job(w)).startswith("cannot place it: a label is not a number")
    for bad in ("inf", "nan", "1e8", "0"):  # never a pass stopped by one Workload's label
        w["metadata"]["labels"]["dualcap.io/expected-hours"] = bad
        assert str(d._job(w)).startswith("cannot place it: dualcap.io/expected-hours must be")
    w["metadata"]["labels"]["dualcap.io/expected-hours"] = "1"
    w["metadata"]["labels"]["dualcap.io/usd-per-gpu-hour"] = "nan"
    assert str(d._job(w)).startswith("cannot place it: dualcap.io/usd-per-gpu-hour must be")
    no_gpus = workload()
    no_gpus["spec"]["podSets"][0]["template"]["spec"]["containers"][0]["resources"] = {}
    assert d._job(no_gpus) == "cannot place it: asks no GPUs"


def test_the_nomination_is_kueues_admission_status_with_the_cluster() -> None:
    w = workload(
        requeueState={"count": 1}, schedulingStats={"evictions": [{"reason": "x", "count": 1}]}
    )
    body = nomination_apply(w, ["site-a"])
    assert body["metadata"]["resourceVersion"] == "42" and body["metadata"]["uid"] == "u1"
    status = body["status"]
    assert status["nominatedClusterNames"] == ["site-a"]
    # everything Kueue's manager applies, as it is: admission, its conditions, the checks
    assert status["admission"] == {"clusterQueue": "gpus"} and status["resourceRequests"] == []
    assert [c["type"] for c in status["conditions"]] == ["QuotaReserved"]  # not PodsReady
    assert status["admissionChecks"] == w["status"]["admissionChecks"]
    assert status["requeueState"] == {"count": 1}
    assert status["schedulingStats"] == {"evictions": [{"reason": "x", "count": 1}]}
    assert "clusterName" not in status


def test_a_worker_kubeconfig_is_refused_as_kueue_refuses_it() -> None:
    def kc(user: dict[str, Any], cluster: dict[str, Any] | None = None) -> str:
        import yaml

        return yaml.safe_dump({
            "clusters": [{"name": "w", "cluster": cluster or {"server": "https://10.0.0.1:6443", "certificate-authority-data": "Zm9v"}}],
            "users": [{"name": "w", "user": user}],
            "contexts": [{"name": "w", "context": {"cluster": "w", "user": "w"}}], "current-context": "w",
        })  # fmt: skip

    assert unsafe_kubeconfig(kc({"token": "t"})) is None
    assert "exec plugins" in str(
        unsafe_kubeconfig(kc({"exec": {"command": "sh", "args": ["-c", "touch /tmp/x"]}}))
    )
    assert "tokenFile" in str(unsafe_kubeconfig(kc({"tokenFile": "/var/run/secrets/token"})))
    assert "auth providers" in str(unsafe_kubeconfig(kc({"auth-provider": {"name": "gcp"}})))
    assert "basic auth" in str(unsafe_kubeconfig(kc({"username": "u", "password": "p"})))
    assert "certificate file paths" in str(
        unsafe_kubeconfig(kc({"client-certificate": "/etc/x.crt"}))
    )
    assert "insecure-skip-tls-verify" in str(
        unsafe_kubeconfig(
            kc({"token": "t"}, {"server": "https://x", "insecure-skip-tls-verify": True})
        )
    )
    assert "certificate-authority file paths" in str(
        unsafe_kubeconfig(
            kc({"token": "t"}, {"server": "https://x", "certificate-authority": "/ca.crt"})
        )
    )
    assert "no server" in str(
        unsafe_kubeconfig(kc({"token": "t"}, {"certificate-authority-data": "Zm9v"}))
    )
    assert "not YAML" in str(unsafe_kubeconfig("this: [is not"))


def test_what_is_nominated_is_taken_from_the_offer_for_the_rest_of_the_pass() -> None:
    o = Offer(NOW, 16, 1.0, 1_000, 10, (Room(10, 0), Room(100, 40)), 30, ())
    after = taken(o, 8, 25.0)
    assert after.gpus_free == 8 and after.free_kw == 0
    assert after.room == (Room(85, 40),) and after.available_kw == 85


def test_a_nomination_not_admitted_in_time_is_withdrawn_to_the_other_clusters() -> None:
    d = Dispatcher(None, None, Settings(nomination_timeout=60))  # type: ignore[arg-type]
    nominated = workload(nominatedClusterNames=["site-a"])
    # first seen (a restart, a new leader): the timeout counts from now
    assert d._overdue([nominated], CHECKS, NOW) == []
    assert d._overdue([nominated], CHECKS, NOW + timedelta(seconds=59)) == []
    overdue = d._overdue([nominated], CHECKS, NOW + timedelta(seconds=60))
    assert overdue == [(nominated, ["site-b"])]  # the other clusters only
    # judged again only after another timeout (no other cluster would do, say)
    assert d._overdue([nominated], CHECKS, NOW + timedelta(seconds=61)) == []
    assert d._overdue([nominated], CHECKS, NOW + timedelta(seconds=120)) != []
    # a new nomination starts its own timeout
    moved = workload(nominatedClusterNames=["site-b"])
    assert d._overdue([moved], CHECKS, NOW + timedelta(seconds=130)) == []
    assert d._overdue([moved], CHECKS, NOW + timedelta(seconds=190)) == [(moved, ["site-a"])]


def test_only_a_pending_nomination_to_one_cluster_can_be_overdue() -> None:
    d = Dispatcher(None, None, Settings(nomination_timeout=1))  # type: ignore[arg-type]
    later = NOW + timedelta(seconds=5)
    admitted = workload(clusterName="site-a")
    several = workload(nominatedClusterNames=["site-a", "site-b"])  # not dualcap's doing
    ready = workload(nominatedClusterNames=["site-a"],
                     admissionChecks=[{"name": "multikueue", "state": "Ready"}])  # fmt: skip
    finished = workload(nominatedClusterNames=["site-a"],
                        conditions=[{"type": "QuotaReserved", "status": "True"},
                                    {"type": "Finished", "status": "True"}])  # fmt: skip
    for wl in (admitted, several, ready, finished):
        d._overdue([wl], CHECKS, NOW)
        assert d._overdue([wl], CHECKS, later) == [], wl["status"]
    # a Workload gone from the listing is forgotten
    d._overdue([workload(nominatedClusterNames=["site-a"])], CHECKS, NOW)
    d._overdue([], CHECKS, NOW)
    assert d.nominated == {}
