"""Mutual TLS and signed messages between the adapter's VEN and openleadr's VTN, on
loopback, with certificates of a throwaway CA."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from openleadr import utils
from openleadr.messaging import create_message
from openleadr.service import VTNService

from dualcap.signals.openadr import Adapter, Config
from tests.peers.certs import make_pki
from tests.peers.openadr_fixtures import Cluster, until
from tests.peers.vtn import VEN_ID, Vtn, load_dispatch
from tests.signals.test_openadr_e2e import BUDGET, SITE, Running, events_of


@pytest.fixture
def pki(tmp_path: Path) -> Iterator[dict[str, str]]:
    files = make_pki(tmp_path)
    for role in ("ven", "vtn"):
        files[f"{role}_fingerprint"] = utils.certificate_fingerprint(
            Path(files[f"{role}_cert"]).read_text()
        )
    yield files
    # OpenADRServer keeps its signing key and VEN lookup on the VTNService class: undo
    for name in ("ven_lookup", "fingerprint_lookup"):
        if name in VTNService.__dict__:
            delattr(VTNService, name)
    VTNService._create_message = partial(create_message, cert=None, key=None, passphrase=None)
    VTNService.verify_message_signatures = True


@pytest.fixture
async def secure_vtn(pki: dict[str, str]) -> AsyncIterator[Vtn]:
    ven_fingerprint = pki["ven_fingerprint"]

    def ven_lookup(ven_id: str) -> dict[str, Any]:
        return {
            "ven_id": VEN_ID,
            "ven_name": "dualcap-rockdale",
            "fingerprint": ven_fingerprint,
            "registration_id": "reg-1",
        }

    v = Vtn(
        tls={
            "cert": pki["vtn_cert"],
            "key": pki["vtn_key"],
            "http_cert": pki["vtn_cert"],
            "http_key": pki["vtn_key"],
            "http_ca_file": pki["ca"],
            "ven_lookup": ven_lookup,
        }
    )
    await v.start()
    try:
        yield v
    finally:
        await v.stop()


def secure_config(vtn: Vtn, pki: dict[str, str], **signing: Any) -> Config:
    return Config.model_validate(
        {
            "vtnURL": vtn.url,
            "venName": "dualcap-rockdale",
            "pollIntervalSeconds": 0.2,
            "tls": {"caFile": pki["ca"], "certFile": pki["ven_cert"], "keyFile": pki["ven_key"]},
            "signing": {
                "certFile": pki["ven_cert"],
                "keyFile": pki["ven_key"],
                "vtnFingerprint": pki["vtn_fingerprint"],
                **signing,
            },
            "sites": [{"name": SITE, "interconnectKW": 45_000, "floorKW": 2_000}],
        }
    )


async def test_mutual_tls_and_signed_messages(cluster: Cluster, secure_vtn: Vtn, pki):
    assert secure_vtn.url.startswith("https://127.0.0.1:")
    async with Running(Adapter(secure_config(secure_vtn, pki), cluster.client)) as a:
        await until(lambda: _get(a.registered), what="registration over mutual TLS")
        secure_vtn.send(
            load_dispatch("ers-tls", datetime.now(UTC) + timedelta(minutes=5), 30, 7_000)
        )

        async def written() -> bool:
            return [e["limitKW"] for e in events_of(await cluster.budget(BUDGET))] == [7_000]

        await until(written, what="the event over mutual TLS")
        await until(lambda: _get(secure_vtn.answer("ers-tls") == "optIn"), what="signed optIn")


async def test_a_vtn_whose_signature_does_not_match_is_not_believed(
    cluster: Cluster, secure_vtn: Vtn, pki
):
    config = secure_config(secure_vtn, pki, vtnFingerprint="00:11:22:33:44:55:66:77:88:99")
    async with Running(Adapter(config, cluster.client)) as a:
        await until(
            lambda: _get(any(p.startswith("RefusedAnswer") for p in a.problems)),
            what="the answer refused",
        )
        assert not a.registered
    assert await cluster.budget(BUDGET) is None


async def test_without_a_client_certificate_the_vtn_refuses(cluster: Cluster, secure_vtn: Vtn, pki):
    config = secure_config(secure_vtn, pki).model_copy(update={"tls": None, "signing": None})
    async with Running(Adapter(config, cluster.client)) as a:
        await until(lambda: _get(bool(a.problems)), what="a problem said")
        assert not a.registered


async def _get(value: Any) -> Any:
    return value
