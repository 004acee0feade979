"""Protobuf request bodies (the envelope k8s\\0 + runtime.Unknown, and the core/v1 messages
kubectl's create commands send); real kubectl drives them in test_kubectl.py."""

from __future__ import annotations

import pytest

from dualcap_sandbox import protobuf
from dualcap_sandbox.protobuf import MEDIA_TYPE, ProtobufError, decode, encode, message_class

NS = "/api/v1/namespaces/default"


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a", "labels": {"x": "y"}}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default", "annotations": {"k": "v"}},
            "data": {"a": "b", "empty": ""},
            "binaryData": {"bin": "AAEC"},
            "immutable": True,
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"a": "Yg=="},
            "type": "Opaque",
        },
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "sa", "finalizers": ["f"]},
            "secrets": [{"name": "t", "namespace": "default"}],
            "imagePullSecrets": [{"name": "registry"}],
            "automountServiceAccountToken": False,
        },
    ],
)
def test_each_kind_reads_back_as_its_json(obj: dict) -> None:
    assert decode(encode(obj)) == obj


def test_times_read_as_rfc3339_and_empty_fields_are_left_out() -> None:
    meta = message_class(f"{protobuf.META}.ObjectMeta")()
    meta.name = "a"
    meta.generateName = ""  # Go writes empty strings; the JSON omits them
    meta.creationTimestamp.seconds = 1_784_000_000
    meta.deletionTimestamp.seconds = 0  # the zero time: no deletion
    cm = message_class(f"{protobuf.CORE}.ConfigMap")()
    cm.metadata.CopyFrom(meta)
    envelope = message_class(f"{protobuf.RUNTIME}.Unknown")()
    envelope.typeMeta.apiVersion, envelope.typeMeta.kind = "v1", "ConfigMap"
    envelope.raw = cm.SerializeToString()
    obj = decode(protobuf.MAGIC + envelope.SerializeToString())
    assert obj == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "creationTimestamp": "2026-07-14T03:33:20Z"},
    }


def test_a_kind_not_read_here_is_unsupported() -> None:
    envelope = message_class(f"{protobuf.RUNTIME}.Unknown")()
    envelope.typeMeta.apiVersion, envelope.typeMeta.kind = "apps/v1", "Deployment"
    with pytest.raises(ProtobufError) as err:
        decode(protobuf.MAGIC + envelope.SerializeToString())
    assert not err.value.supported and "send application/json" in str(err.value)


async def test_a_protobuf_create_is_answered_in_json(client) -> None:
    body = encode({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}})  # fmt: skip
    code, doc = await client.post(f"{NS}/configmaps", body, ctype=MEDIA_TYPE)
    assert code == 201 and doc["data"] == {"a": "b"} and doc["metadata"]["namespace"] == "default"
    code, doc = await client.get(f"{NS}/configmaps/c")
    assert code == 200 and doc["metadata"]["uid"]


async def test_bad_protobuf_bodies_are_refused_plainly(client) -> None:
    code, doc = await client.post(f"{NS}/configmaps", b"\x0a\x02hi", ctype=MEDIA_TYPE)
    assert code == 400 and "k8s" in doc["message"]
    code, doc = await client.post(
        f"{NS}/configmaps", protobuf.MAGIC + b"\xff\xff", ctype=MEDIA_TYPE
    )
    assert code == 400 and "does not decode" in doc["message"]
    envelope = message_class(f"{protobuf.RUNTIME}.Unknown")()
    envelope.typeMeta.apiVersion, envelope.typeMeta.kind = "v1", "Pod"
    code, doc = await client.post(
        f"{NS}/pods", protobuf.MAGIC + envelope.SerializeToString(), ctype=MEDIA_TYPE
    )
    assert code == 415 and doc["reason"] == "UnsupportedMediaType"
