"""A local Kubernetes API with the behaviour of a real cluster, for tests and the demo.

So far it holds the CRD schema validation (OpenAPI constraints, pruning, defaulting and CEL
rules) that the API server applies to custom resources.
"""
