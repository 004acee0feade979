"""The Argo CD health checks against the statuses the real operator writes."""

from __future__ import annotations

import pytest

from tests.operator.conftest import SITE, Running

pytest.importorskip("lupa", reason="lupa is part of the test extras")
from tests.gitops.test_argocd_health import health


async def test_settled_example_site_is_healthy_in_argo_cd(site: Running) -> None:
    await site.settle()
    store = site.sb.store
    (obj,) = [o for o in store.list_objects(store.rt("dualcap.io", "sites"))]  # type: ignore[arg-type]
    assert health("Site", obj)["status"] == "Healthy"
    budget = store.get(store.rt("dualcap.io", "powerbudgets"), None, SITE)  # type: ignore[arg-type]
    assert health("PowerBudget", budget)["status"] == "Healthy"  # type: ignore[arg-type]
    leases = {
        o["metadata"]["name"]: health("ComputeLease", o)
        for o in store.list_objects(store.rt("dualcap.io", "computeleases"))  # type: ignore[arg-type]
    }
    assert leases["llm-inference"]["status"] == "Healthy"
    assert leases["batch-training"]["status"] == "Healthy"
    # The August lease waits for its start: progressing, with the operator's reason.
    (later,) = [h for name, h in leases.items() if name not in ("llm-inference", "batch-training")]
    assert later["status"] == "Progressing" and later["message"].startswith("Pending")
