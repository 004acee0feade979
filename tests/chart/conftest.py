"""The sandbox Kubernetes API and openleadr's VTN on loopback, as the adapter's own peer
tests use them (tests/peers_dr): the OpenADR adapter's RBAC is checked against its traffic."""

from tests.peers_dr.conftest import cluster, vtn  # noqa: F401
