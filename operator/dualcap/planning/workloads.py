"""Kueue Workloads gated by dualcap's power admission check, as the planner sees them: one
more GPU load of the site, the same entity as a ComputeLease (``Lease``), so admission,
preemption and the accounting are one code path.

- Which site: a Workload lists admission checks by name (``status.admissionChecks``); an
  ``AdmissionCheck`` whose ``spec.controllerName`` is ``dualcap.io/power`` and whose
  ``spec.parameters`` name a ``Site`` (apiGroup ``dualcap.io``, kind ``Site``) ties it to
  that site.
- Its power: every pod set's count x the GPUs of its pod x the site's kW per GPU, as a
  lease's. Pod sets whose pods ask different GPU counts count at the largest (the higher
  draw when in doubt): a lease has one pod size.
- Its priority: ``spec.priority`` (Kueue sets it from the WorkloadPriorityClass);
  preemptible when labelled ``dualcap.io/preemptible: "true"`` (copied from its Job by
  Kueue's ``labelKeysToCopy``).
- Its pods: those labelled ``dualcap.io/workload: <name>`` by the check's podSetUpdates;
  made and removed by its Job, counted until gone, never touched by dualcap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from dualcap.api.lease import ComputeLeaseSpec
from dualcap.api.names import (
    GROUP,
    POWER_CHECK_CONTROLLER,
    PREEMPTIBLE_LABEL,
    WORKLOAD_LABEL,
)
from dualcap.planning.entities import Lease, LeasePod, WorkloadState
from dualcap.planning.fields import (
    EPOCH,
    Obj,
    meta_of,
    pod_gpus,
    pod_node,
    pod_terminal,
    ref_of,
    time_of,
)

MAX_PODS = 100_000  # a Workload's pods, all pod sets together (a lease's own bound)


def checks_by_site(checks: Iterable[Obj]) -> dict[str, list[str]]:
    """The names of dualcap's power checks, by the Site their parameters name."""
    out: dict[str, list[str]] = {}
    for check in checks:
        site = check_site(check)
        if site is not None:
            out.setdefault(site, []).append(str(meta_of(check).get("name")))
    return out


def check_site(check: Obj) -> str | None:
    """The Site an AdmissionCheck of dualcap's names, or None (not dualcap's, or its
    parameters name no Site)."""
    spec = check.get("spec") or {}
    if spec.get("controllerName") != POWER_CHECK_CONTROLLER:
        return None
    params = spec.get("parameters") or {}
    if params.get("apiGroup") != GROUP or params.get("kind") != "Site" or not params.get("name"):
        return None
    return str(params["name"])


def check_entry(workload: Obj, checks: Iterable[str]) -> Mapping[str, Any] | None:
    """The Workload's entry for the first of ``checks`` it lists (None: none)."""
    wanted = set(checks)
    for entry in (workload.get("status") or {}).get("admissionChecks") or []:
        if isinstance(entry, Mapping) and entry.get("name") in wanted:
            return entry
    return None


def _condition(workload: Obj, kind: str) -> bool:
    return any(
        isinstance(c, Mapping) and c.get("type") == kind and c.get("status") == "True"
        for c in (workload.get("status") or {}).get("conditions") or []
    )


def workload_pod(pod: Obj, resource: str) -> LeasePod:
    meta = meta_of(pod)
    return LeasePod(
        namespace=str(meta.get("namespace")),
        name=str(meta.get("name")),
        lease=str((meta.get("labels") or {}).get(WORKLOAD_LABEL)),
        node=pod_node(pod),
        gpus=pod_gpus(pod, resource),
        terminating=meta.get("deletionTimestamp") is not None,
        terminal=pod_terminal(pod),
        index=None,
        ref=ref_of("Pod", pod),
        external=True,
    )


def workload_lease(
    workload: Obj, check: Mapping[str, Any], pods: tuple[LeasePod, ...], resource: str
) -> Lease:
    """The Workload as a Lease of the site whose check ``check`` is its entry for."""
    meta = meta_of(workload)
    spec = workload.get("spec") or {}
    labels = meta.get("labels") or {}
    sets: list[tuple[str, int, int]] = []
    error = None
    for i, pod_set in enumerate(spec.get("podSets") or []):
        if not isinstance(pod_set, Mapping):
            error = f"podSets[{i}] is not an object"
            break
        count = pod_set.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            error = f"podSets[{i}].count {count!r} is not a count"
            break
        template = pod_set.get("template") or {}
        sets.append((str(pod_set.get("name") or f"set-{i}"), count, pod_gpus(template, resource)))
    pods_total = sum(count for _, count, _ in sets)
    per_pod = max((gpus for _, count, gpus in sets if count), default=0)
    lease_spec = None
    if error is None and pods_total > MAX_PODS:
        error = f"{pods_total} pods: more than {MAX_PODS}"
    if error is None and per_pod > 0:
        priority = spec.get("priority")
        lease_spec = ComputeLeaseSpec.model_construct(
            site_ref="",
            gpus=pods_total * per_pod,
            gpus_per_pod=per_pod,
            start=None,
            end=None,
            priority=priority
            if isinstance(priority, int) and not isinstance(priority, bool)
            else 0,
            preemptible=str(labels.get(PREEMPTIBLE_LABEL, "")).lower() == "true",
            price_per_gpu_hour_usd=0.0,
            template=None,  # type: ignore[arg-type]  # a Workload has pod sets, not one template
        )
    state = WorkloadState(
        check=str(check.get("name")),
        check_state=str(check.get("state") or "Pending"),
        check_message=str(check.get("message") or ""),
        quota_reserved=_condition(workload, "QuotaReserved"),
        finished=_condition(workload, "Finished"),
        evicted=_condition(workload, "Evicted"),
        uid=meta.get("uid"),
        resource_version=meta.get("resourceVersion"),
        pod_sets=tuple(sets),
    )
    return Lease(
        namespace=str(meta.get("namespace") or "default"),
        name=str(meta.get("name")),
        created=time_of(meta.get("creationTimestamp")) or EPOCH,
        generation=meta.get("generation"),
        spec=lease_spec,
        error=error if error is not None else None if per_pod else "asks no GPUs",
        pods=tuple(sorted(pods, key=lambda p: p.name)),
        deleting=meta.get("deletionTimestamp") is not None,
        ref=ref_of("Workload", workload),
        workload=state,
    )
