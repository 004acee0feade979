"""Protobuf request bodies, as kubectl's typed clients send them (``kubectl create
namespace|configmap|secret|serviceaccount``), read into the JSON object the rest of the
sandbox works on.

The body is Kubernetes' protobuf envelope: the magic ``k8s\\x00``, then a
``runtime.Unknown`` whose ``typeMeta`` names the kind and whose ``raw`` is the kind's own
message. The message descriptors are built here from the field numbers of
k8s.io/apimachinery/pkg/runtime/generated.proto, k8s.io/apimachinery/pkg/apis/meta/v1/
generated.proto and k8s.io/api/core/v1/generated.proto (proto2), for the kinds above and
the messages they use; the ``protobuf`` package does the decoding. Responses stay JSON,
which every client accepts.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"

RUNTIME = "k8s.io.apimachinery.pkg.runtime"
META = "k8s.io.apimachinery.pkg.apis.meta.v1"
CORE = "k8s.io.api.core.v1"

# (file, package, imports, {message: [(field, number, type)]}); a type is a scalar, a
# message name (qualified when it is another package's), "[]T" for repeated, or
# "map<string,T>". Field numbers as in the generated.proto files named above.
FILES: list[tuple[str, str, list[str], dict[str, list[tuple[str, int, str]]]]] = [
    (
        "k8s.io/apimachinery/pkg/runtime/generated.proto",
        RUNTIME,
        [],
        {
            "TypeMeta": [("apiVersion", 1, "string"), ("kind", 2, "string")],
            "Unknown": [
                ("typeMeta", 1, "TypeMeta"),
                ("raw", 2, "bytes"),
                ("contentEncoding", 3, "string"),
                ("contentType", 4, "string"),
            ],
        },
    ),
    (
        "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto",
        META,
        [],
        {
            "Time": [("seconds", 1, "int64"), ("nanos", 2, "int32")],
            "FieldsV1": [("Raw", 1, "bytes")],
            "OwnerReference": [
                ("kind", 1, "string"),
                ("name", 3, "string"),
                ("uid", 4, "string"),
                ("apiVersion", 5, "string"),
                ("controller", 6, "bool"),
                ("blockOwnerDeletion", 7, "bool"),
            ],
            "ManagedFieldsEntry": [
                ("manager", 1, "string"),
                ("operation", 2, "string"),
                ("apiVersion", 3, "string"),
                ("time", 4, "Time"),
                ("fieldsType", 6, "string"),
                ("fieldsV1", 7, "FieldsV1"),
                ("subresource", 8, "string"),
            ],
            "ObjectMeta": [
                ("name", 1, "string"),
                ("generateName", 2, "string"),
                ("namespace", 3, "string"),
                ("selfLink", 4, "string"),
                ("uid", 5, "string"),
                ("resourceVersion", 6, "string"),
                ("generation", 7, "int64"),
                ("creationTimestamp", 8, "Time"),
                ("deletionTimestamp", 9, "Time"),
                ("deletionGracePeriodSeconds", 10, "int64"),
                ("labels", 11, "map<string,string>"),
                ("annotations", 12, "map<string,string>"),
                ("ownerReferences", 13, "[]OwnerReference"),
                ("finalizers", 14, "[]string"),
                ("managedFields", 17, "[]ManagedFieldsEntry"),
            ],
        },
    ),
    (
        "k8s.io/api/core/v1/generated.proto",
        CORE,
        ["k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto"],
        {
            "ObjectReference": [
                ("kind", 1, "string"),
                ("namespace", 2, "string"),
                ("name", 3, "string"),
                ("uid", 4, "string"),
                ("apiVersion", 5, "string"),
                ("resourceVersion", 6, "string"),
                ("fieldPath", 7, "string"),
            ],
            "LocalObjectReference": [("name", 1, "string")],
            "NamespaceCondition": [
                ("type", 1, "string"),
                ("status", 2, "string"),
                ("lastTransitionTime", 4, f"{META}.Time"),
                ("reason", 5, "string"),
                ("message", 6, "string"),
            ],
            "NamespaceSpec": [("finalizers", 1, "[]string")],
            "NamespaceStatus": [("phase", 1, "string"), ("conditions", 2, "[]NamespaceCondition")],
            "Namespace": [
                ("metadata", 1, f"{META}.ObjectMeta"),
                ("spec", 2, "NamespaceSpec"),
                ("status", 3, "NamespaceStatus"),
            ],
            "ConfigMap": [
                ("metadata", 1, f"{META}.ObjectMeta"),
                ("data", 2, "map<string,string>"),
                ("binaryData", 3, "map<string,bytes>"),
                ("immutable", 4, "bool"),
            ],
            "Secret": [
                ("metadata", 1, f"{META}.ObjectMeta"),
                ("data", 2, "map<string,bytes>"),
                ("type", 3, "string"),
                ("stringData", 4, "map<string,string>"),
                ("immutable", 5, "bool"),
            ],
            "ServiceAccount": [
                ("metadata", 1, f"{META}.ObjectMeta"),
                ("secrets", 2, "[]ObjectReference"),
                ("imagePullSecrets", 3, "[]LocalObjectReference"),
                ("automountServiceAccountToken", 4, "bool"),
            ],
        },
    ),
]
# The kinds whose protobuf bodies are read: (apiVersion, kind) -> message.
KINDS = {
    ("v1", kind): f"{CORE}.{kind}"
    for kind in ("Namespace", "ConfigMap", "Secret", "ServiceAccount")
}

_SCALARS = {
    "string": FieldDescriptor.TYPE_STRING,
    "bytes": FieldDescriptor.TYPE_BYTES,
    "bool": FieldDescriptor.TYPE_BOOL,
    "int64": FieldDescriptor.TYPE_INT64,
    "int32": FieldDescriptor.TYPE_INT32,
}


class ProtobufError(ValueError):
    """A body that is not a protobuf message the sandbox reads; ``supported`` is False for
    a well-formed body of a kind it does not read (415), True for a malformed one (400)."""

    def __init__(self, message: str, supported: bool = True):
        super().__init__(message)
        self.supported = supported


def _set_type(field: descriptor_pb2.FieldDescriptorProto, kind: str, package: str) -> None:
    if kind in _SCALARS:
        field.type = _SCALARS[kind]
    else:
        field.type = FieldDescriptor.TYPE_MESSAGE
        field.type_name = "." + (kind if "." in kind else f"{package}.{kind}")


def _file(
    name: str, package: str, deps: list[str], messages: dict[str, list[tuple[str, int, str]]]
) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name=name, package=package, syntax="proto2", dependency=deps
    )
    for message_name, fields in messages.items():
        message = proto.message_type.add(name=message_name)
        for field_name, number, kind in fields:
            field = message.field.add(name=field_name, number=number, json_name=field_name)
            field.label = FieldDescriptor.LABEL_OPTIONAL
            if kind.startswith("[]"):
                field.label = FieldDescriptor.LABEL_REPEATED
                _set_type(field, kind[2:], package)
            elif kind.startswith("map<string,"):
                # A map is a repeated nested entry message {key = 1; value = 2}.
                entry_name = field_name[0].upper() + field_name[1:] + "Entry"
                entry = message.nested_type.add(name=entry_name)
                entry.options.map_entry = True
                key = entry.field.add(name="key", number=1, json_name="key")
                key.label = FieldDescriptor.LABEL_OPTIONAL
                key.type = FieldDescriptor.TYPE_STRING
                value = entry.field.add(name="value", number=2, json_name="value")
                value.label = FieldDescriptor.LABEL_OPTIONAL
                _set_type(value, kind[len("map<string,") : -1], package)
                field.label = FieldDescriptor.LABEL_REPEATED
                field.type = FieldDescriptor.TYPE_MESSAGE
                field.type_name = f".{package}.{message_name}.{entry_name}"
            else:
                _set_type(field, kind, package)
    return proto


def _build() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for name, package, deps, messages in FILES:
        pool.Add(_file(name, package, deps, messages))
    return pool


_POOL = _build()


def message_class(full_name: str) -> type[Message]:
    """The message class of ``full_name`` (e.g. ``k8s.io.api.core.v1.ConfigMap``)."""
    cls: type[Message] = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))
    return cls


def _repeated(field: FieldDescriptor) -> bool:
    # ``is_repeated`` in protobuf 6 and later, ``label`` before
    repeated = getattr(field, "is_repeated", None)
    if repeated is None:
        return bool(field.label == FieldDescriptor.LABEL_REPEATED)
    return bool(repeated)


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode()
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message(value)
    return value


def _message(msg: Message) -> Any:
    """The JSON form Kubernetes gives the message: its set fields, empty ones left out as
    ``omitempty`` leaves them out; ``Time`` as RFC 3339, ``FieldsV1`` as its JSON."""
    descriptor: Descriptor = msg.DESCRIPTOR
    if descriptor.full_name == f"{META}.Time":
        seconds = getattr(msg, "seconds", 0)
        if not seconds:
            return None
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if descriptor.full_name == f"{META}.FieldsV1":
        raw = getattr(msg, "Raw", b"")
        return json.loads(raw) if raw else None
    out: dict[str, Any] = {}
    for field, value in msg.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            converted: Any = {k: _scalar(value_field, v) for k, v in value.items()}
        elif _repeated(field):
            converted = [_scalar(field, v) for v in value]
        else:
            converted = _scalar(field, value)
        if converted is None or (converted in ("", 0, {}, []) and not isinstance(converted, bool)):
            continue
        out[field.name] = converted
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object of a protobuf request body; ProtobufError if it is not one that the
    sandbox reads."""
    if not body.startswith(MAGIC):
        raise ProtobufError("not a Kubernetes protobuf body: it does not start with k8s\\x00")
    envelope = message_class(f"{RUNTIME}.Unknown")()
    try:
        envelope.ParseFromString(body[len(MAGIC) :])
    except DecodeError as err:
        raise ProtobufError(f"the protobuf envelope does not decode: {err}") from err
    type_meta = envelope.typeMeta
    api_version, kind = type_meta.apiVersion, type_meta.kind
    if envelope.contentEncoding:
        raise ProtobufError(f"content encoding {envelope.contentEncoding!r} is not read")
    name = KINDS.get((api_version, kind))
    if name is None:
        raise ProtobufError(
            f"protobuf bodies of {kind or 'an unnamed kind'} ({api_version or 'no apiVersion'})"
            " are not read here; send application/json",
            supported=False,
        )
    msg = message_class(name)()
    try:
        msg.ParseFromString(envelope.raw)
    except DecodeError as err:
        raise ProtobufError(f"the {kind} message does not decode: {err}") from err
    return {"apiVersion": api_version, "kind": kind, **_message(msg)}


def encode(obj: dict[str, Any]) -> bytes:
    """A protobuf body for a JSON object of one of the kinds read here, as a typed client
    would send it (for tests; the messages are filled by field name)."""
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    name = KINDS.get((api_version, kind))
    if name is None:
        raise ProtobufError(f"{kind} ({api_version}) has no protobuf message here", supported=False)
    msg = message_class(name)()
    _fill(msg, {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
    envelope = message_class(f"{RUNTIME}.Unknown")()
    envelope.typeMeta.apiVersion = api_version
    envelope.typeMeta.kind = kind
    envelope.raw = msg.SerializeToString()
    body: bytes = MAGIC + envelope.SerializeToString()
    return body


def _fill(msg: Message, values: dict[str, Any]) -> None:
    for key, value in values.items():
        field = msg.DESCRIPTOR.fields_by_name[key]
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            target = getattr(msg, key)
            for k, v in value.items():
                target[k] = (
                    base64.b64decode(v) if value_field.type == FieldDescriptor.TYPE_BYTES else v
                )
        elif _repeated(field):
            target = getattr(msg, key)
            for item in value:
                if field.message_type is not None:
                    _fill(target.add(), item)
                else:
                    target.append(item)
        elif field.message_type is not None:
            _fill(getattr(msg, key), value)
        else:
            setattr(msg, key, value)
