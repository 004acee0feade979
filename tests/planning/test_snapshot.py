"""The snapshot: references to the source objects, and the incremental build (entities
reused by uid and resourceVersion while their objects are unchanged)."""

from __future__ import annotations

import copy
import hashlib
import json
from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from dualcap.api.marks import curtail_patch, is_marked, resume_patch
from dualcap.api.site import ControllerState
from dualcap.planning import ParseCache, build_fleet, plan
from dualcap.planning.world import apply
from tests.planning.builders import (
    SITE,
    T0,
    asic,
    asics,
    budget,
    flatten,
    gpu_nodes,
    lease,
    running,
    site,
)
from tests.planning.test_properties import SETTINGS, worlds

Obj = dict


def versioned(objects: list[Obj]) -> list[Obj]:
    """The objects with a uid (by kind and name) and a resourceVersion that changes
    exactly when the object does, as the API server keeps them."""
    out = []
    for obj in objects:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta.pop("resourceVersion", None)
        body = json.dumps(obj, sort_keys=True, default=str).encode()
        meta["uid"] = f"{obj['kind']}/{meta.get('namespace', '')}/{meta['name']}"
        meta["resourceVersion"] = hashlib.sha1(body).hexdigest()[:12]
        out.append(obj)
    return out


def build(objects: list[Obj], cache: ParseCache | None = None):
    return build_fleet(objects, T0, cache).sites[SITE]


def world(**kw) -> list[Obj]:
    return versioned(
        flatten(
            site(**kw),
            budget(limit_kw=10_000),
            *asics(3),
            gpu_nodes(2),
            *running(lease("l"), ["g00"]),
        )
    )


def test_entities_carry_a_reference_to_their_object() -> None:
    objects = world()
    snap = build(objects)
    by_name = {o["metadata"]["name"]: o for o in objects if o["kind"] != "PowerBudget"}
    c = snap.controllers[0]
    assert c.ref is not None
    assert (c.ref.kind, c.ref.name) == ("Node", "a00")
    assert c.ref.uid == by_name["a00"]["metadata"]["uid"]
    assert c.ref.resource_version == by_name["a00"]["metadata"]["resourceVersion"]
    assert snap.gpu_nodes["g00"].ref.uid == by_name["g00"]["metadata"]["uid"]
    (lease_,) = snap.leases
    assert lease_.ref.key == ("ComputeLease", "t", "l") and lease_.uid
    assert lease_.pods[0].ref.key == ("Pod", "t", "l-0")
    assert snap.site_ref.uid == by_name[SITE]["metadata"]["uid"]
    assert snap.budget_refs[SITE].name == SITE


def test_a_node_ref_builds_the_same_mark_patches_as_its_node() -> None:
    # The executor can curtail and resume from the snapshot alone.
    objects = versioned(
        flatten(
            site(),
            budget(),
            asic("a", taints=[{"key": "other", "effect": "NoSchedule"}]),
            asic("b", curtailed_at=T0 - timedelta(hours=1), mining=False),
        )
    )
    nodes = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Node"}
    for c in build(objects).controllers:
        assert c.ref is not None
        node = c.ref.as_object()
        assert curtail_patch(node, T0) == curtail_patch(nodes[c.name], T0)
        assert resume_patch(node, T0) == resume_patch(nodes[c.name], T0)
        assert is_marked(node) == is_marked(nodes[c.name]) == c.marked


def test_unchanged_objects_are_not_derived_again() -> None:
    objects = world()
    cache = ParseCache()
    first, again = build(objects, cache), build(objects, cache)
    assert all(a is b for a, b in zip(first.controllers, again.controllers, strict=True))
    assert again.gpu_nodes["g00"] is first.gpu_nodes["g00"]
    assert again.leases[0] is first.leases[0]


def test_a_changed_node_is_derived_again_and_the_others_reused() -> None:
    objects = world()
    cache = ParseCache()
    first = build(objects, cache)
    changed = copy.deepcopy(objects)
    node = next(o for o in changed if o["metadata"]["name"] == "a01")
    node["metadata"].setdefault("annotations", {})["dualcap.io/power-kw"] = "700"
    node["metadata"]["resourceVersion"] = "new"
    again = build(changed, cache)
    assert [c.power_kw for c in again.controllers] == [1000.0, 700.0, 1000.0]
    assert again.controllers[0] is first.controllers[0]
    assert again.controllers[1] is not first.controllers[1]


def test_a_controller_is_derived_again_when_a_pod_on_it_goes() -> None:
    objects = world()
    cache = ParseCache()
    build(objects, cache)
    node = next(o for o in objects if o["metadata"]["name"] == "a01")
    node["spec"] = {"unschedulable": True}
    node["metadata"]["resourceVersion"] = "cordoned"
    assert build(objects, cache).controllers[1].state is ControllerState.HELD
    without_miner = [o for o in objects if o["metadata"]["name"] != "miner-a01"]
    held = build(without_miner, cache).controllers[1]
    assert held.state is ControllerState.HELD and held.committed_it_kw == 0


def test_a_changed_site_derives_every_entity_again() -> None:
    cache = ParseCache()
    build(world(), cache)
    again = build(world(pue=1.2, power_kw=800.0), cache)
    assert {c.power_kw for c in again.controllers} == {800.0}
    assert {c.facility_kw for c in again.controllers} == {800.0 * 1.2}


def test_problems_of_a_reused_node_are_reported_at_every_build() -> None:
    objects = versioned(
        flatten(site(), budget(), asic("a", annotations={"dualcap.io/power-kw": "x"}))
    )
    cache = ParseCache()
    assert [p.reason for p in build(objects, cache).problems] == ["InvalidAnnotation"]
    assert [p.reason for p in build(objects, cache).problems] == ["InvalidAnnotation"]


@SETTINGS
@given(worlds(), st.integers(1, 3))
def test_a_warm_build_equals_a_cold_one_along_a_trajectory(objects, steps) -> None:
    cache = ParseCache()
    objects = versioned(objects)
    for n in range(steps):
        warm = build(objects, cache)
        assert warm == build(objects)
        at = T0 + timedelta(minutes=n)
        objects = versioned(apply(objects, plan(warm, at).schedule.now, at, SITE))
    assert build(objects, cache) == build(objects)


def test_a_forgotten_site_keeps_nothing() -> None:
    objects = world()
    cache = ParseCache()
    first = build(objects, cache)
    cache.forget(next(o for o in objects if o["kind"] == "Site")["metadata"]["uid"])
    again = build(objects, cache)
    assert again == first and again.controllers[0] is not first.controllers[0]
