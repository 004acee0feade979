"""The layering of docs/architecture.md §1 is one-way; `planning` and `api` import no kopf and no client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "operator" / "dualcap"
FORBIDDEN = {"kopf", "kubernetes", "kubernetes_asyncio", "aiohttp", "kr8s", "lightkube", "kmock"}
# Each package may import only itself and what is listed for it: handlers -> cluster ->
# planning -> api, one way; the agent and the signal adapters use the api and the client,
# never the planner or the handlers. A new package must be given its place here.
CLIENT = "client"  # the one Kubernetes client: the operator, the agent and the adapters
LOGIN = "login"  # dualcap's one way to log in: every process that talks to the API
BELOW = {
    "api": {"api"},
    "planning": {"planning", "api"},
    "cluster": {"cluster", "planning", "api", "signals", CLIENT, LOGIN},  # it polls the meters
    "handlers": {"handlers", "cluster", "planning", "api", CLIENT, LOGIN},
    "agent": {"agent", "api", CLIENT, LOGIN},
    "signals": {"signals", "api", CLIENT, LOGIN},
    # the MultiKueue dispatcher: the sites' offers chosen among by the pure placement
    "fleet": {"fleet", "planning", "api", CLIENT, LOGIN},
    # simulate reads ERCOT price reports with the signal adapters' readers (files only)
    "simulate": {"simulate", "planning", "api", "manifests", "signals.prices", "signals.reading"},
}
PURE = {"api", "planning"}
# Top-level modules of the package: the command line and the offline tools.
TOP = {
    "__init__": set(),
    "__main__": {"cli"},
    "manifests": set(),
    "login": set(),  # credentials: kubeconfigs (exec plugins), the pod's service account
    "client": {LOGIN},  # no layer: below cluster, agent and signals alike
    "cli": set(BELOW) | {"manifests", "simulate", "__init__", LOGIN, CLIENT},
}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            if node.module == "dualcap":  # from dualcap import x
                found |= {f"dualcap.{alias.name}" for alias in node.names}
    return found


def allowed(name: str, may: set[str]) -> bool:
    parts = name.split(".")
    if parts[0] != "dualcap" or len(parts) < 2:
        return True
    return parts[1] in may or ".".join(parts[1:3]) in may or parts[1] == "__version__"


@pytest.mark.parametrize("layer", sorted(BELOW))
def test_layers_import_only_what_is_below(layer: str) -> None:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files
    for path in files:
        for name in imports(path):
            top = name.split(".")[0]
            if layer in PURE:
                assert top not in FORBIDDEN, f"{path.relative_to(PACKAGE)} imports {name}"
            assert allowed(name, BELOW[layer]), (
                f"{path.relative_to(PACKAGE)} imports {name}: {layer} may use only {sorted(BELOW[layer])}"
            )


@pytest.mark.parametrize("module", sorted(TOP))
def test_top_level_modules_import_only_what_they_may(module: str) -> None:
    path = PACKAGE / f"{module}.py"
    for name in imports(path):
        assert allowed(name, TOP[module] | {module}), f"{module}.py imports {name}"


def test_every_package_and_module_has_its_place() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert packages == set(BELOW), "give a new package its place in BELOW"
    assert modules == set(TOP), "give a new module its place in TOP"


def test_source_root_is_not_a_package() -> None:
    """operator/__init__.py would shadow the standard library module `operator`."""
    assert not (PACKAGE.parent / "__init__.py").exists()


SANDBOX = PACKAGE.parent.parent / "sandbox"
NOT_IN_THE_PRODUCT = {"dualcap_sandbox", "dualcap_demo"}


def test_no_product_module_imports_the_sandbox_or_the_demo() -> None:
    files = sorted(PACKAGE.rglob("*.py"))
    assert files
    for path in files:
        for name in imports(path):
            assert name.split(".")[0] not in NOT_IN_THE_PRODUCT, (
                f"{path.relative_to(PACKAGE)} imports {name}: the product must not use the sandbox"
            )


def test_the_sandbox_imports_nothing_of_the_operator() -> None:
    """It is an independent Kubernetes API: the cluster the operator is tested against."""
    files = sorted((SANDBOX / "dualcap_sandbox").rglob("*.py"))
    assert files
    for path in files:
        for name in imports(path):
            top = name.split(".")[0]
            assert top not in ("dualcap", "dualcap_demo"), (
                f"sandbox/{path.relative_to(SANDBOX)} imports {name}"
            )


def test_the_operator_wheel_carries_no_sandbox() -> None:
    """setuptools' package discovery, configured as the root pyproject configures it, finds
    the operator's packages and nothing of the sandbox or the demo."""
    import tomllib

    from setuptools import find_namespace_packages, find_packages

    config = tomllib.loads((PACKAGE.parent.parent / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    where = PACKAGE.parent.parent / find["where"][0]
    discover = find_namespace_packages if find.get("namespaces", True) else find_packages
    found = discover(
        str(where), include=find.get("include", ["*"]), exclude=find.get("exclude", ())
    )
    assert "dualcap" in found and "dualcap.planning" in found
    shipped = [
        p for p in found if p.split(".")[0] in NOT_IN_THE_PRODUCT or "sandbox" in p or "demo" in p
    ]
    assert not shipped, f"the operator's wheel would carry {shipped}"
    assert not (PACKAGE / "sandbox").exists() and not (PACKAGE / "demo.py").exists()
    # The image builds the wheel from the operator's source root only.
    copies = [
        line for line in (PACKAGE.parent.parent / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    ]  # fmt: skip
    assert copies and not any("sandbox" in line for line in copies), copies


def test_the_architecture_docs_say_the_same() -> None:
    """docs/architecture.md §1's table of packages lists, for each, what it may import:
    the same as BELOW (and TOP for dualcap.login and dualcap.client)."""
    import re

    doc = (PACKAGE.parent.parent / "docs" / "architecture.md").read_text()
    rows = {}
    for line in doc.splitlines():
        m = re.match(r"\| `dualcap\.(\w+)` \|.*\| (.*) \|$", line)
        if m:
            rows[m.group(1)] = set(re.findall(r"`([\w.]+)`", m.group(2)))
    want = {layer: may - {layer} for layer, may in BELOW.items()} | {
        LOGIN: TOP[LOGIN],
        CLIENT: TOP[CLIENT],
    }
    assert rows == want, f"docs/architecture.md says {rows}, the layering test {want}"
