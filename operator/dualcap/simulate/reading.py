"""Reading a scenario: its YAML checked field by field, the site's objects loaded and the
GPU nodes it asks for added."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from dualcap.simulate.prices import price_file, step_prices
from dualcap.simulate.scenario import (
    Arrival,
    Scenario,
    ScenarioError,
)


def _need(doc: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in doc:
        raise ScenarioError(f"{path}: missing field {key!r}")
    return doc[key]


def _series(value: Any, key: str, path: str) -> list[float]:
    values = value if isinstance(value, list) else [value]
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ScenarioError(f"{path}: {key}: numbers expected, got {value!r}") from None
    if not out or any(math.isnan(v) or v < 0 for v in out):
        raise ScenarioError(f"{path}: {key}: non-negative numbers expected")
    return out


def load(
    path: str | Path,
    prices: str | None = None,
    settlement_point: str | None = None,
    market: str | None = None,
) -> Scenario:
    """The scenario at ``path``; ``prices``, ``settlement_point`` and ``market`` (the
    command line's) replace its energy price with an ERCOT report's."""
    from dualcap.manifests import load_objects

    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text())
    except OSError as err:
        raise ScenarioError(f"{p}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise ScenarioError(f"{p}: not YAML: {err}") from None
    if not isinstance(doc, dict):
        raise ScenarioError(f"{p}: a mapping expected")
    where = str(p)
    site_dir = (p.parent / str(_need(doc, "siteObjects", where))).resolve()
    if not site_dir.exists():
        raise ScenarioError(f"{where}: siteObjects: {site_dir} does not exist")
    objects = [o for o in load_objects(str(site_dir)) if o.get("kind") != "ComputeLease"]
    sites = [o for o in objects if o.get("kind") == "Site"]
    if len(sites) != 1:
        raise ScenarioError(f"{where}: siteObjects: exactly one Site expected, found {len(sites)}")
    site = sites[0]["metadata"]["name"]
    try:
        start = datetime.fromisoformat(str(_need(doc, "start", where)))
    except ValueError:
        raise ScenarioError(f"{where}: start: an RFC 3339 time with an offset expected") from None
    if start.tzinfo is None:
        raise ScenarioError(f"{where}: start: give the UTC offset, e.g. 2026-07-14T00:00:00-05:00")
    try:
        tz = ZoneInfo(str(doc.get("timezone", "UTC")))
    except Exception:
        raise ScenarioError(f"{where}: timezone: unknown {doc.get('timezone')!r}") from None
    hours = float(_need(doc, "hours", where))
    step_minutes = float(doc.get("stepMinutes", 5))
    if not 0 < hours <= 24 * 31 or not 0 < step_minutes <= 60:
        raise ScenarioError(f"{where}: hours must be in (0, 744] and stepMinutes in (0, 60]")
    extra = doc.get("extraGpuNodes") or 0
    if not isinstance(extra, int) or not 0 <= extra <= 10_000:
        raise ScenarioError(f"{where}: extraGpuNodes: an integer in [0, 10000] expected")
    if extra and not sites[0].get("spec", {}).get("gpu"):
        raise ScenarioError(f"{where}: extraGpuNodes: the Site has no spec.gpu")
    objects += _gpu_nodes(site, sites[0], extra)
    envelope = doc.get("envelope") or {}
    for obj in objects:  # the scenario's envelope replaces the budget's windows and events
        if obj.get("kind") == "PowerBudget":
            for key in ("limitKW", "windows", "events", "leadTimeSeconds"):
                if key in envelope:
                    obj["spec"][key] = envelope[key]
    arrivals = []
    for i, a in enumerate(doc.get("leases") or []):
        w = f"{where}: leases[{i}]"
        try:
            at = start + timedelta(hours=float(_need(a, "arriveAfterHours", w)))
            arrivals.append(
                Arrival(
                    name=str(_need(a, "name", w)),
                    namespace=str(a.get("namespace", "default")),
                    at=at,
                    hours=float(_need(a, "hours", w)),
                    gpus=int(_need(a, "gpus", w)),
                    gpus_per_pod=int(a.get("gpusPerPod", 8)),
                    priority=int(a.get("priority", 0)),
                    preemptible=bool(a.get("preemptible", False)),
                    price=float(_need(a, "pricePerGPUHourUSD", w)),
                )
            )
        except (TypeError, ValueError) as err:
            raise ScenarioError(f"{w}: {err}") from None
    steps, step = int(hours * 60 / step_minutes), timedelta(minutes=step_minutes)
    source = price_file(doc, p.parent, where, prices, settlement_point, market)
    if source is None:
        series = _series(_need(doc, "energyPriceUSDPerMWh", where), "energyPriceUSDPerMWh", where)
    else:
        given_as = "--prices" if prices is not None else "energyPrices"
        series = step_prices(source, start, steps, step, tz, f"{where}: {given_as}")
    return Scenario(
        name=str(doc.get("name", p.stem)),
        description=str(doc.get("description", "")).strip(),
        objects=objects,
        site=site,
        start=start,
        steps=steps,
        step=step,
        prices=series,
        hashprices=_series(
            _need(doc, "hashpriceUSDPerPHDay", where), "hashpriceUSDPerPHDay", where
        ),
        tz=tz,
        arrivals=arrivals,
        split_percent=float(doc.get("fixedSplitGPUPercent", 30)),
        price_file=source,
    )


def _gpu_nodes(site: str, site_obj: Mapping[str, Any], count: int) -> list[dict[str, Any]]:
    """``count`` more 8-GPU servers, labelled as the site's GPU nodes (a hall being built)."""
    spec = site_obj["spec"]
    if not count:
        return []
    labels = {
        **((spec.get("nodeSelector") or {}).get("matchLabels") or {"dualcap.io/site": site}),
        **((spec["gpu"].get("nodeSelector") or {}).get("matchLabels") or {}),
    }
    resource = spec["gpu"].get("resourceName", "nvidia.com/gpu")
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": f"sim-gpu-{i:04d}", "labels": dict(labels), "uid": f"sim-gpu-{i}"},
            "spec": {},
            "status": {
                "allocatable": {resource: "8"},
                "capacity": {resource: "8"},
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }
        for i in range(count)
    ]
