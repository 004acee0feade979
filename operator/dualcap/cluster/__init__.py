"""Kubernetes I/O: snapshots from the operator's indexes, commands applied to the cluster,
status written back. Knows the API; decides nothing (that is `planning`)."""
