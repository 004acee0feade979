"""The resource types the sandbox serves: built-in kinds, and kinds added by CRDs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: frozenset[str] = frozenset()
    verbs: tuple[str, ...] = ALL_VERBS
    # CRDs: the openAPIV3Schema (validation, pruning, defaults) and printer columns.
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    columns: tuple[dict[str, Any], ...] = field(default=(), compare=False, hash=False)
    custom: bool = False

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def has_generation(self) -> bool:
        """Whether the API server keeps ``metadata.generation`` for this kind: custom
        resources and the kinds whose strategy sets it (Nodes, Namespaces, Secrets,
        ConfigMaps, Events and Leases have none)."""
        return self.custom or (self.group, self.kind) in GENERATION_KINDS

    def discovery(self) -> list[dict[str, Any]]:
        """APIResource entries for the group-version resource list (with subresources)."""
        main = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            main["shortNames"] = list(self.short_names)
        if self.categories:
            main["categories"] = list(self.categories)
        out = [main]
        for sub in sorted(self.subresources):
            if sub == "status":
                out.append(
                    {
                        "name": f"{self.plural}/status",
                        "singularName": "",
                        "namespaced": self.namespaced,
                        "kind": self.kind,
                        "verbs": ["get", "patch", "update"],
                    }
                )
            elif sub == "eviction":
                out.append(
                    {
                        "name": f"{self.plural}/eviction",
                        "singularName": "",
                        "namespaced": self.namespaced,
                        "group": "policy",
                        "version": "v1",
                        "kind": "Eviction",
                        "verbs": ["create"],
                    }
                )
            elif sub == "binding":
                out.append(
                    {
                        "name": f"{self.plural}/binding",
                        "singularName": "",
                        "namespaced": self.namespaced,
                        "kind": "Binding",
                        "verbs": ["create"],
                    }
                )
        return out


# The built-in kinds whose registry strategy sets metadata.generation (k8s.io/kubernetes
# pkg/registry/*/strategy.go: PrepareForCreate sets Generation = 1)
GENERATION_KINDS = frozenset({
    ("", "Pod"), ("", "ReplicationController"), ("apps", "DaemonSet"),
    ("apps", "Deployment"), ("apps", "ReplicaSet"), ("apps", "StatefulSet"),
    ("batch", "Job"), ("batch", "CronJob"), ("policy", "PodDisruptionBudget"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"), ("networking.k8s.io", "Ingress"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),
})  # fmt: skip


def _rt(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool,
    *short: str,
    sub: tuple[str, ...] = (),
    cats: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
) -> ResourceType:
    return ResourceType(
        group,
        version,
        plural,
        kind,
        namespaced,
        kind.lower(),
        tuple(short),
        cats,
        frozenset(sub),
        verbs,
    )


BUILTIN: tuple[ResourceType, ...] = (
    _rt("", "v1", "namespaces", "Namespace", False, "ns", sub=("status",)),
    _rt("", "v1", "nodes", "Node", False, "no", sub=("status",)),
    _rt("", "v1", "pods", "Pod", True, "po", sub=("status", "eviction", "binding"), cats=("all",)),
    _rt("", "v1", "events", "Event", True, "ev"),
    _rt("", "v1", "configmaps", "ConfigMap", True, "cm"),
    _rt("", "v1", "secrets", "Secret", True),
    _rt("", "v1", "serviceaccounts", "ServiceAccount", True, "sa"),
    _rt("", "v1", "services", "Service", True, "svc", sub=("status",), cats=("all",)),
    _rt("apps", "v1", "daemonsets", "DaemonSet", True, "ds", sub=("status",), cats=("all",)),
    _rt("apps", "v1", "deployments", "Deployment", True, "deploy", sub=("status",), cats=("all",)),
    _rt("coordination.k8s.io", "v1", "leases", "Lease", True),
    _rt("events.k8s.io", "v1", "events", "Event", True, "ev"),
    _rt(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        "crd",
        "crds",
        sub=("status",),
    ),
    _rt("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _rt("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _rt("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _rt("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
)


def from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types a CRD serves (one per served version)."""
    spec = crd["spec"]
    names = spec["names"]
    out = []
    for version in spec.get("versions", []):
        if not version.get("served", True):
            continue
        subresources = version.get("subresources") or {}
        out.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular", names["kind"].lower()),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=frozenset(k for k in subresources if k in ("status", "scale")),
                schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                columns=tuple(version.get("additionalPrinterColumns") or ()),
                custom=True,
            )
        )
    return out
