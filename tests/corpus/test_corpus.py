"""The bad-input corpus against the running operator on the sandbox (issue 8).

Every invalid or hostile object is sent over HTTP, as kubectl would, while the operator
runs the example site. Each must be either refused by the CRD (422, the message naming
the field) or accepted and then reported (Stalled and an Event), with the example site
unaffected and the operator alive. The count of each outcome is printed.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

from tests.api.test_bad_examples import BASE, CASES, TPL, _build, _set
from tests.operator.conftest import SITE, Running
from tests.operator.test_operator import http
from tests.sandbox.conftest import wait_for

API = "/apis/dualcap.io/v1alpha1"
PLURAL = {
    "Site": "sites",
    "PowerBudget": "powerbudgets",
    "ComputeLease": "computeleases",
    "MinerBlock": "minerblocks",
}


def lease(name: str, changes: dict[str, Any], site: str = SITE) -> dict[str, Any]:
    obj = copy.deepcopy(BASE["llm-inference"])
    obj["metadata"] = {"name": name, "namespace": "acme"}
    obj["spec"]["siteRef"] = site
    for path, value in changes.items():
        _set(obj, path, value)
    return obj


def budget(name: str, site: str, changes: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(BASE["PowerBudget"])
    obj["metadata"] = {"name": name}
    obj["spec"]["siteRef"] = site
    for path, value in changes.items():
        _set(obj, path, value)
    return obj


W0 = {
    "name": "w",
    "start": "14:00",
    "end": "19:00",
    "limitKW": 30000,
    "timezone": "America/Chicago",
}
EV0 = {
    "name": "dr",
    "start": "2026-07-14T19:00:00Z",
    "end": "2026-07-14T22:00:00Z",
    "limitKW": 8000,
}

# Refused by the CRD, beyond the model-level cases of tests/api: (id, object, text, field)
MORE_REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "nan-string-limit",
        budget("c-nan", SITE, {"spec.limitKW": "NaN"}),
        "must be of type number",
        "spec.limitKW",
    ),
    (
        "infinity-string-pue",
        {
            **copy.deepcopy(BASE["Site"]),
            "metadata": {"name": "c-inf"},
            "spec": {**copy.deepcopy(BASE["Site"]["spec"]), "facility": {"pue": "Infinity"}},
        },
        "must be of type number",
        "spec.facility.pue",
    ),
    (
        "huge-window-list",
        budget("c-huge", SITE, {"spec.windows": [dict(W0, name=f"w{i}") for i in range(5000)]}),
        "must have at most",
        "spec.windows",
    ),
    (
        "duplicate-event-names",
        budget("c-dup", SITE, {"spec.events": [EV0, dict(EV0)]}),
        "Duplicate value",
        "spec.events",
    ),
    (
        "window-bad-time",
        budget("c-time", SITE, {"spec.windows": [dict(W0, start="25:00")]}),
        "should match",
        "spec.windows[0].start",
    ),
    ("unicode-lease-name", lease("lease-\u00e9t\u00e9", {}), "metadata.name", "metadata.name"),
    ("uppercase-lease-name", lease("LLM", {}), "metadata.name", "metadata.name"),
    (
        "lease-gpus-huge",
        lease("c-huge-gpus", {"spec.gpus": 10**12}),
        "less than or equal to",
        "spec.gpus",
    ),
    (
        "lease-node-selector-name",
        lease("c-nodename", {f"{TPL}.nodeName": "asic-c01"}),
        "must not set nodeName",
        "spec.template.spec",
    ),
    (
        "lease-negative-gpus",
        lease("c-neg", {"spec.gpus": -8}),
        "greater than or equal to",
        "spec.gpus",
    ),
]

# Accepted by the CRD, then reported by the operator: (id, object, what carries Stalled)
REPORTED: list[tuple[str, dict[str, Any], tuple[str, str | None, str]]] = [
    (
        "lease-unknown-site",
        lease("c-nowhere", {}, site="nowhere"),
        ("computeleases", "acme", "c-nowhere"),
    ),
    (
        "lease-net-admin",
        lease(
            "c-netadmin",
            {f"{TPL}.containers.0.securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}},
        ),
        ("computeleases", "acme", "c-netadmin"),
    ),
    (
        "lease-host-port",
        lease("c-hostport", {f"{TPL}.containers.0.ports": [{"containerPort": 80, "hostPort": 80}]}),
        ("computeleases", "acme", "c-hostport"),
    ),
    (
        "lease-host-path",
        lease("c-hostpath", {f"{TPL}.volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
        ("computeleases", "acme", "c-hostpath"),
    ),
    (
        "budget-unknown-timezone",
        budget("c-tz", "corpus-site", {"spec.windows": [dict(W0, timezone="Mars/Olympus_Mons")]}),
        ("powerbudgets", None, "c-tz"),
    ),
]


def expected_outcomes() -> int:
    return len(CASES) + len(MORE_REFUSED) + len(REPORTED)


def test_the_corpus_has_at_least_60_objects() -> None:
    assert expected_outcomes() >= 60


async def _post(sb: Any, obj: dict[str, Any]) -> tuple[int, Any]:
    ns = obj["metadata"].get("namespace")
    plural = PLURAL[obj["kind"]]
    path = f"{API}/namespaces/{ns}/{plural}" if ns else f"{API}/{plural}"
    return await http(sb, "POST", path, obj, "application/json")


def _stalled(sb: Any, plural: str, ns: str | None, name: str) -> bool:
    obj = sb.store.get(sb.store.rt("dualcap.io", plural), ns, name)
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Stalled" and c["status"] == "True" for c in conds)


def _events_on(sb: Any, name: str) -> list[dict[str, Any]]:
    return [
        e
        for e in sb.store.list_objects(sb.store.rt("", "events"))
        if e["involvedObject"].get("name") == name
    ]


async def test_every_bad_object_is_refused_or_reported(site: Running) -> None:
    sb = site.sb
    before = await site.settle()
    outcomes: Counter[str] = Counter()
    # A second, empty site for budget cases (so the example site's own budget stays).
    corpus_site = copy.deepcopy(BASE["Site"])
    corpus_site["metadata"] = {"name": "corpus-site"}
    corpus_site["spec"]["nodeSelector"] = {"matchLabels": {"dualcap.io/site": "corpus-site"}}
    code, body = await _post(sb, corpus_site)
    assert code == 201, body

    refused = [(c.id, _renamed(c), c.error, "") for c in CASES] + MORE_REFUSED
    for cid, obj, text, field in refused:
        code, body = await _post(sb, obj)
        message = body.get("message", "") if isinstance(body, dict) else str(body)
        assert code in (400, 422), f"{cid}: accepted ({code})"
        assert text in message, f"{cid}: {message}"
        assert field in message and any(p in message for p in ("spec", "metadata")), (
            f"{cid}: no field named: {message}"
        )
        outcomes["refused by the CRD (422)"] += 1

    for cid, obj, (plural, ns, name) in REPORTED:
        code, body = await _post(sb, obj)
        assert code == 201, f"{cid}: {code} {body}"

        async def reported(plural=plural, ns=ns, name=name) -> bool:
            site.state.wake(SITE)
            site.state.wake("corpus-site")
            return _stalled(sb, plural, ns, name) and bool(_events_on(sb, name))

        await wait_for(reported, timeout=15, what=f"{cid}: Stalled and an Event")
        outcomes["accepted, then Stalled + Event"] += 1

    # The example site carries on, unaffected; the operator is alive and reconciling.
    reconciles = site.state.reconciles
    after = await site.settle()
    for key in ("limitKW", "committedKW", "controllers", "gpus"):
        assert after[key] == before[key], key
    assert site.state.reconciles > reconciles
    assert sum(outcomes.values()) == expected_outcomes()
    print(f"\ncorpus: {dict(outcomes)} of {expected_outcomes()} objects")


def _renamed(case: Any) -> dict[str, Any]:
    obj = _build(case)
    if "metadata.name" not in case.changes:
        obj["metadata"]["name"] = f"c-{case.id}"[:60]
    return obj
