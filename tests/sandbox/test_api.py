"""API conformance of the sandbox: one test per behaviour of a real API server, over HTTP."""

from __future__ import annotations

import asyncio

from tests.sandbox.conftest import wait_for, watching

NODES = "/api/v1/nodes"
PODS = "/api/v1/namespaces/default/pods"
SITES = "/apis/dualcap.io/v1alpha1/sites"


def node(name: str, **labels: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {
            "allocatable": {"nvidia.com/gpu": "8"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(name: str, **kw) -> dict:
    spec = {"containers": [{"name": "c", "image": "x"}], **kw.pop("spec", {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **kw}, "spec": spec}


def site(name: str = "s1", **spec) -> dict:
    return {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "Site",
        "metadata": {"name": name},
        "spec": {
            "asic": {
                "miningPodSelector": {"matchLabels": {"app": "m"}},
                "powerKW": 1900,
                "hashrateTHs": 108000,
                "hashpriceUSDPerPHDay": 45,
            },
            "gpu": {"powerPerGPUKW": 1.1},
            **spec,
        },
    }


async def test_discovery(client, with_crds) -> None:
    code, api = await client.get("/api")
    assert code == 200 and api["versions"] == ["v1"]
    code, core = await client.get("/api/v1")
    names = {r["name"] for r in core["resources"]}
    assert {
        "pods",
        "pods/status",
        "pods/eviction",
        "nodes",
        "namespaces",
        "events",
        "configmaps",
        "secrets",
    } <= names
    code, groups = await client.get("/apis")
    assert {
        "apps",
        "coordination.k8s.io",
        "events.k8s.io",
        "apiextensions.k8s.io",
        "dualcap.io",
    } <= {g["name"] for g in groups["groups"]}
    code, dc = await client.get("/apis/dualcap.io/v1alpha1")
    sites = next(r for r in dc["resources"] if r["name"] == "sites")
    assert (
        sites["namespaced"] is False and sites["kind"] == "Site" and "dcsite" in sites["shortNames"]
    )
    assert "sites/status" in {r["name"] for r in dc["resources"]}
    code, version = await client.get("/version")
    assert code == 200 and version["major"] == "1"


async def test_openapi_for_kubectl(client, with_crds) -> None:
    code, v2 = await client.get("/openapi/v2")
    assert code == 200 and "io.k8s.api.core.v1.Pod" in v2["definitions"]
    code, root = await client.get("/openapi/v3")
    assert "apis/dualcap.io/v1alpha1" in root["paths"] and "api/v1" in root["paths"]
    code, doc = await client.get("/openapi/v3/apis/dualcap.io/v1alpha1")
    patch = doc["paths"]["/apis/dualcap.io/v1alpha1/sites/{name}"]["patch"]
    assert any(p["name"] == "fieldValidation" for p in patch["parameters"])
    gvks = [s.get("x-kubernetes-group-version-kind") for s in doc["components"]["schemas"].values()]
    assert [{"group": "dualcap.io", "version": "v1alpha1", "kind": "Site"}] in gvks


async def test_create_sets_server_fields_and_generate_name(client) -> None:
    code, n = await client.post(NODES, node("conformance-create"))
    assert code == 201
    meta = n["metadata"]
    assert meta["uid"] and meta["creationTimestamp"].endswith("Z")
    assert "generation" not in meta  # a Node has none; a Pod and a custom resource do
    assert int(meta["resourceVersion"]) > 0
    code, p = await client.post(
        PODS,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"generateName": "web-"},
            "spec": {"containers": [{"name": "c", "image": "x"}]},
        },
    )
    assert (
        code == 201 and p["metadata"]["name"].startswith("web-") and len(p["metadata"]["name"]) == 9
    )
    assert p["metadata"]["generation"] == 1
    code, again = await client.post(NODES, node("conformance-create"))
    assert code == 409 and again["reason"] == "AlreadyExists" and again["kind"] == "Status"
    await client.delete(f"{NODES}/conformance-create")
    await client.delete(f"{PODS}/{p['metadata']['name']}", params={"gracePeriodSeconds": "0"})


async def test_resource_version_is_cluster_wide_and_changes_on_every_write(client) -> None:
    _, a = await client.post(NODES, node("rv-a"))
    _, b = await client.post(PODS, pod("rv-p"))
    _, a2 = await client.patch(f"{NODES}/rv-a", {"metadata": {"labels": {"x": "1"}}})
    rvs = [int(o["metadata"]["resourceVersion"]) for o in (a, b, a2)]
    assert rvs == sorted(rvs) and len(set(rvs)) == 3


async def test_conflict_on_a_stale_resource_version(client) -> None:
    _, n = await client.post(NODES, node("n"))
    stale = n["metadata"]["resourceVersion"]
    await client.patch(f"{NODES}/n", {"metadata": {"labels": {"x": "1"}}})
    n["metadata"]["labels"] = {"y": "2"}
    code, err = await client.put(f"{NODES}/n", n)
    assert code == 409 and err["reason"] == "Conflict" and "has been modified" in err["message"]
    code, err = await client.patch(
        f"{NODES}/n", {"metadata": {"resourceVersion": stale, "labels": {"z": "3"}}}
    )
    assert code == 409
    code, err = await client.delete(
        f"{NODES}/n",
        {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": stale}},
    )
    assert code == 409 and "precondition" in err["message"]


async def test_generation_and_the_status_subresource(client, with_crds) -> None:
    code, s = await client.post(SITES, site())
    assert code == 201 and s["metadata"]["generation"] == 1
    # A write to the object ignores status.
    s["status"] = {"limitKW": 1}
    code, s = await client.put(f"{SITES}/s1", s)
    assert code == 200 and "status" not in s and s["metadata"]["generation"] == 1
    # A write to /status changes only status, and not the generation.
    s["status"] = {"limitKW": 42.0}
    s["spec"]["suspend"] = True
    code, s = await client.put(f"{SITES}/s1/status", s)
    assert code == 200 and s["status"]["limitKW"] == 42.0 and s["spec"]["suspend"] is False
    assert s["metadata"]["generation"] == 1
    # A spec change bumps it.
    code, s = await client.patch(f"{SITES}/s1", {"spec": {"suspend": True}})
    assert code == 200 and s["metadata"]["generation"] == 2 and s["status"]["limitKW"] == 42.0
    # A no-op write changes nothing, not even the resourceVersion.
    rv = s["metadata"]["resourceVersion"]
    code, s = await client.patch(f"{SITES}/s1", {"spec": {"suspend": True}})
    assert s["metadata"]["resourceVersion"] == rv


async def test_label_and_field_selectors_on_list(client) -> None:
    # Every object and selector carries suite=sel, so the test holds on a cluster that
    # holds other nodes too (the real apiserver's, tests/e2e/test_conformance.py).
    for name, labels in (
        ("sel-a", {"role": "asic", "site": "x"}),
        ("sel-b", {"role": "gpu", "site": "x"}),
        ("sel-c", {"role": "gpu"}),
    ):
        await client.post(NODES, node(name, suite="sel", **labels))

    async def names(selector: str = "", **params):
        _, doc = await client.get(NODES, params={"labelSelector": f"suite=sel{selector}", **params})
        return sorted(o["metadata"]["name"] for o in doc["items"])

    assert await names(",role=gpu") == ["sel-b", "sel-c"]
    assert await names(",role!=gpu") == ["sel-a"]
    assert await names(",role in (asic,gpu),site") == ["sel-a", "sel-b"]
    assert await names(",!site") == ["sel-c"]
    assert await names(",role notin (asic)") == ["sel-b", "sel-c"]
    assert await names(fieldSelector="metadata.name=sel-b") == ["sel-b"]
    code, err = await client.get(NODES, params={"fieldSelector": "spec.bogus=1"})
    assert code == 400 and err["reason"] == "BadRequest"
    code, err = await client.get(NODES, params={"labelSelector": "a in b"})
    assert code == 400


async def test_pod_field_selectors(client, sandbox) -> None:
    await client.post(NODES, node("n1"))
    await client.post(PODS, pod("on-n1", spec={"nodeName": "n1"}))
    await client.post(PODS, pod("nowhere", spec={"nodeSelector": {"none": "x"}}))

    async def names(sel):
        _, doc = await client.get(PODS, params={"fieldSelector": sel})
        return sorted(o["metadata"]["name"] for o in doc["items"])

    assert await names("spec.nodeName=n1") == ["on-n1"]
    await wait_for(lambda: names("status.phase=Running"), what="the pod running")
    assert await names("status.phase=Pending") == ["nowhere"]
    assert await names("spec.nodeName=") == ["nowhere"]


async def test_paging(client) -> None:
    for i in range(5):
        await client.post(NODES, node(f"paging-n{i}", conformance="paging"))
    only = {"labelSelector": "conformance=paging"}
    _, page = await client.get(NODES, params={**only, "limit": "2"})
    names = [o["metadata"]["name"] for o in page["items"]]
    assert names == ["paging-n0", "paging-n1"] and page["metadata"]["continue"]
    _, page2 = await client.get(
        NODES, params={**only, "limit": "10", "continue": page["metadata"]["continue"]}
    )
    assert [o["metadata"]["name"] for o in page2["items"]] == [f"paging-n{i}" for i in (2, 3, 4)]
    assert "continue" not in page2["metadata"]
    for i in range(5):
        await client.delete(f"{NODES}/paging-n{i}")


async def test_watch_from_a_resource_version_and_with_selectors(client, sandbox) -> None:
    _, a = await client.post(NODES, node("a", role="gpu"))
    rv = a["metadata"]["resourceVersion"]
    await client.post(NODES, node("b", role="asic"))
    await client.post(NODES, node("c", role="gpu"))
    events = await client.watch(NODES, {"resourceVersion": rv}, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "b"),
        ("ADDED", "c"),
    ]
    events = await client.watch(NODES, {"resourceVersion": rv, "labelSelector": "role=gpu"}, 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "c")]
    # Without a resourceVersion: every existing object first.
    events = await client.watch(NODES, {}, 3)
    assert sorted(e["object"]["metadata"]["name"] for e in events) == ["a", "b", "c"]
    # A label change moves an object out of the selector: DELETED for that watch.
    _, c = await client.get(f"{NODES}/c")
    task = asyncio.create_task(
        client.watch(
            NODES,
            {"resourceVersion": c["metadata"]["resourceVersion"], "labelSelector": "role=gpu"},
            1,
        )
    )
    await watching(sandbox)
    await client.patch(f"{NODES}/c", {"metadata": {"labels": {"role": "asic"}}})
    (event,) = await task
    assert event["type"] == "DELETED" and event["object"]["metadata"]["name"] == "c"


async def test_watch_field_selector_and_bookmarks(client, sandbox) -> None:
    _, n = await client.post(NODES, node("n1"))
    task = asyncio.create_task(
        client.watch(
            PODS,
            {
                "resourceVersion": n["metadata"]["resourceVersion"],
                "fieldSelector": "spec.nodeName=n1",
                "allowWatchBookmarks": "true",
            },
            2,
        )
    )
    await watching(sandbox)
    await client.post(PODS, pod("elsewhere", spec={"nodeSelector": {"no": "such-node"}}))
    await client.post(PODS, pod("here", spec={"nodeName": "n1"}))
    events = await task
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "here"
    events = await client.watch(
        NODES, {"resourceVersion": "999999", "allowWatchBookmarks": "true"}, 1
    )
    assert (
        events[0]["type"] == "BOOKMARK"
        and int(events[0]["object"]["metadata"]["resourceVersion"]) > 0
    )


async def test_streaming_list_ends_with_a_bookmark(client) -> None:
    await client.post(NODES, node("streaming-a", conformance="streaming"))
    events = await client.watch(
        NODES,
        {
            "labelSelector": "conformance=streaming",
            "sendInitialEvents": "true",
            "resourceVersionMatch": "NotOlderThan",
            "allowWatchBookmarks": "true",
        },
        2,
    )
    assert events[0]["type"] == "ADDED"
    assert events[0]["object"]["metadata"]["name"] == "streaming-a"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    await client.delete(f"{NODES}/streaming-a")


async def test_watch_too_old_is_gone(client, sandbox) -> None:
    _, a = await client.post(NODES, node("a"))
    await client.post(NODES, node("b"))
    sandbox.store.compact()
    # As the API server: the watch opens, its one event is an ERROR with the 410 Status.
    (event,) = await client.watch(NODES, {"resourceVersion": a["metadata"]["resourceVersion"]}, 1)
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"


async def test_patches(client) -> None:
    n = f"{NODES}/patches-n"
    await client.post(NODES, node("patches-n", a="1"))
    code, got = await client.patch(n, {"metadata": {"labels": {"a": None, "b": "2"}}})
    assert got["metadata"]["labels"] == {"b": "2"}
    code, got = await client.patch(
        n,
        [{"op": "add", "path": "/spec/unschedulable", "value": True}],
        ctype="application/json-patch+json",
    )
    assert code == 200 and got["spec"]["unschedulable"] is True
    code, err = await client.patch(
        n,
        [
            {"op": "test", "path": "/spec/unschedulable", "value": False},
            {"op": "remove", "path": "/spec/unschedulable"},
        ],
        ctype="application/json-patch+json",
    )
    assert code == 422 and err["kind"] == "Status"
    # Strategic merge: taints are replaced as a whole list; containers merge by name.
    taint = {"key": "dualcap.io/curtailed", "value": "true", "effect": "NoExecute"}
    code, got = await client.patch(
        n, {"spec": {"taints": [taint]}}, ctype="application/strategic-merge-patch+json"
    )
    assert got["spec"]["taints"] == [taint]
    p = f"{PODS}/patches-p"
    containers = [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]
    # bound to a node that does not exist: no scheduler or kubelet touches it
    await client.post(
        PODS, pod("patches-p", spec={"containers": containers, "nodeName": "nowhere"})
    )
    code, got = await client.patch(
        p,
        {"spec": {"containers": [{"name": "b", "image": "2"}]}},
        ctype="application/strategic-merge-patch+json",
    )
    assert [(c["name"], c["image"]) for c in got["spec"]["containers"]] == [("a", "1"), ("b", "2")]
    # ... and conditions by type, where a $patch: delete removes one
    conditions = [
        {"type": "dualcap.io/a", "status": "True"},
        {"type": "dualcap.io/b", "status": "True"},
    ]
    code, got = await client.patch(f"{p}/status", {"status": {"conditions": conditions}})
    assert code == 200, got
    code, got = await client.patch(
        f"{p}/status",
        {"status": {"conditions": [{"type": "dualcap.io/a", "$patch": "delete"}]}},
        ctype="application/strategic-merge-patch+json",
    )
    assert [c["type"] for c in got["status"]["conditions"]] == ["dualcap.io/b"]
    code, err = await client.patch(n, {"x": 1}, ctype="text/plain")
    assert code == 415
    await client.delete(p, params={"gracePeriodSeconds": "0"})  # no kubelet will finish it
    await client.delete(n)


async def test_server_side_apply_creates_and_updates(client, with_crds) -> None:
    body = site("applied")
    code, s = await client.patch(
        f"{SITES}/applied",
        body,
        ctype="application/apply-patch+yaml",
        params={"fieldManager": "test"},
    )
    assert code == 201 and s["spec"]["facility"]["pue"] == 1.0  # defaulted by the CRD
    body["spec"]["facility"] = {"pue": 1.2}
    code, s = await client.patch(
        f"{SITES}/applied",
        body,
        ctype="application/apply-patch+yaml",
        params={"fieldManager": "test"},
    )
    assert code == 200 and s["spec"]["facility"]["pue"] == 1.2 and s["metadata"]["generation"] == 2


async def test_delete_with_finalizers(client) -> None:
    n = node("fin-n")
    n["metadata"]["finalizers"] = ["example.com/hold"]
    await client.post(NODES, n)
    code, n = await client.delete(f"{NODES}/fin-n")
    assert code == 200 and n["metadata"]["deletionTimestamp"]
    code, n = await client.get(f"{NODES}/fin-n")
    assert code == 200
    code, _ = await client.patch(f"{NODES}/fin-n", {"metadata": {"finalizers": None}})
    code, err = await client.get(f"{NODES}/fin-n")
    assert code == 404 and err["reason"] == "NotFound" and err["details"]["name"] == "fin-n"


async def test_delete_collection(client) -> None:
    for name, role in (("dc-a", "x"), ("dc-b", "x"), ("dc-c", "y")):
        await client.post(NODES, node(name, suite="dc", role=role))
    code, _ = await client.delete(NODES, params={"labelSelector": "suite=dc,role=x"})
    _, doc = await client.get(NODES, params={"labelSelector": "suite=dc"})
    assert code == 200 and [o["metadata"]["name"] for o in doc["items"]] == ["dc-c"]


async def test_eviction(client) -> None:
    await client.post(NODES, node("n1"))
    await client.post(PODS, pod("p", spec={"nodeName": "n1"}))
    code, status = await client.post(
        f"{PODS}/p/eviction",
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "p", "namespace": "default"},
        },
    )
    assert code == 201 and status["status"] == "Success"

    async def gone():
        code, _ = await client.get(f"{PODS}/p")
        return code == 404

    await wait_for(gone, what="the evicted pod to go")


async def test_scope_is_enforced(client) -> None:
    code, err = await client.get("/api/v1/namespaces/default/nodes")
    assert code == 404 and err["kind"] == "Status"
    code, err = await client.post("/api/v1/pods", pod("p"))
    assert code == 405
    code, err = await client.post("/api/v1/namespaces/nope/pods", pod("p"))
    assert code == 404 and 'namespaces "nope" not found' in err["message"]
    code, err = await client.post(
        PODS, {**pod("p"), "metadata": {"name": "p", "namespace": "other"}}
    )
    assert code == 400
    code, err = await client.get("/apis/nope.io/v1/things")
    assert code == 404


async def test_custom_resources_are_validated_pruned_and_defaulted(client, with_crds) -> None:
    bad = site("bad")
    bad["spec"]["facility"] = {"pue": 0.5}
    code, err = await client.post(SITES, bad)
    assert code == 422 and err["reason"] == "Invalid"
    assert "spec.facility.pue" in err["message"] and "greater than or equal to 1" in err["message"]
    assert err["details"]["causes"][0]["field"] == "spec.facility.pue"
    lease = {
        "apiVersion": "dualcap.io/v1alpha1",
        "kind": "ComputeLease",
        "metadata": {"name": "l", "namespace": "default"},
        "spec": {
            "siteRef": "s1",
            "gpus": 12,
            "gpusPerPod": 8,
            "template": {"spec": {"containers": [{"name": "c"}]}},
        },
    }
    code, err = await client.post(
        "/apis/dualcap.io/v1alpha1/namespaces/default/computeleases", lease
    )
    assert code == 422 and "gpus must be a multiple of gpusPerPod" in err["message"]
    extra = site("extra")
    extra["spec"]["typo"] = 1
    code, s = await client.post(SITES, extra)
    assert (
        code == 201 and "typo" not in s["spec"] and s["spec"]["behavior"]["onDelete"] == "Release"
    )
    code, err = await client.post(
        SITES, {**extra, "metadata": {"name": "strict"}}, params={"fieldValidation": "Strict"}
    )
    assert code == 400 and 'unknown field "spec.typo"' in err["message"]


async def test_crd_lifecycle(client) -> None:
    import copy

    from dualcap.api.crd import all_crds

    # dualcap's first CRD under a group of its own (a shared cluster already has dualcap's)
    crd = copy.deepcopy(all_crds()[0])
    group = "conformance.dualcap.io"
    crd["metadata"]["name"] = f"{crd['spec']['names']['plural']}.{group}"
    crd["spec"]["group"] = group
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    items = f"/apis/{group}/{crd['spec']['versions'][0]['name']}/{crd['spec']['names']['plural']}"
    code, _created = await client.post(crds, crd)
    assert code == 201

    async def established() -> bool:
        _, got = await client.get(f"{crds}/{crd['metadata']['name']}")
        conditions = {
            c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions") or []
        }
        return conditions.get("Established") == "True"

    await wait_for(established, timeout=30, what="the CRD established")
    await wait_for(lambda: _served(client, items, 200), timeout=30, what="its resources served")
    code, _ = await client.delete(f"{crds}/{crd['metadata']['name']}")
    assert code == 200
    await wait_for(lambda: _served(client, items, 404), timeout=30, what="its resources gone")
    broken = {**crd, "metadata": {"name": f"wrong.{group}"}}
    code, _err = await client.post(crds, broken)
    assert code == 422


async def _served(client, path: str, code: int) -> bool:
    return (await client.get(path))[0] == code


async def test_dry_run_persists_nothing(client) -> None:
    code, _ = await client.post(NODES, node("ghost"), params={"dryRun": "All"})
    assert code == 201 and (await client.get(f"{NODES}/ghost"))[0] == 404


async def test_tables_for_kubectl_get(client, with_crds) -> None:
    await client.post(SITES, site())
    _code, doc = await client.get(
        SITES,
        params={"fieldSelector": "metadata.name=s1"},  # whatever other Sites the cluster has
        headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
    )
    assert doc["kind"] == "Table"
    assert [c["name"] for c in doc["columnDefinitions"]][:8] == [
        "Name",
        "Limit",
        "Draw",
        "Headroom",
        "Mining",
        "Curtailed",
        "GPUs",
        "Ready",
    ]
    assert doc["rows"][0]["cells"][0] == "s1"
