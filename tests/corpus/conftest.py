"""The operator fixtures (a sandbox, the example site, the operator on it)."""

from tests.operator.conftest import clock, sandbox, site  # noqa: F401
