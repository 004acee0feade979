"""A local Kubernetes API with the behaviour of a real cluster, for tests and the demo.

An in-memory API server on aiohttp (``server``: routing, discovery and the HTTP verbs;
``watch``; ``registry``: what create, update, delete and status mean for each kind; CRD
schema validation with CEL rules in ``schema``), and the control plane around it in
``cluster`` (scheduler, kubelets, taint eviction, DaemonSets, garbage collection). It is
its own distribution and imports nothing of the operator: it is the cluster the operator
is tested against.
"""
