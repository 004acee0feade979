"""What each kind's writes mean, below the HTTP layer (kube-apiserver's registry): the
generic write path in ``generic`` and a strategy per kind (``pods``, ``core`` for Nodes,
Namespaces and Secrets, ``crds``, ``custom`` for custom resources; every other kind, Events
included, takes the default ``Strategy``)."""

from dualcap_sandbox.registry.generic import Registry, strategy_for
from dualcap_sandbox.registry.strategy import Options, Strategy, Target

__all__ = ["Options", "Registry", "Strategy", "Target", "strategy_for"]
