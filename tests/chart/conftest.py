"""The sandbox Kubernetes API and openleadr's VTN on loopback, as the adapter's own peer
tests use them (tests/signals): the OpenADR adapter's RBAC is checked against its traffic."""

from tests.peers.openadr_fixtures import cluster, vtn  # noqa: F401
