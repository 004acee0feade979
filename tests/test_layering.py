"""The layering of docs/architecture.md §1 is one-way; `planning` and `api` import no kopf and no client."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "operator" / "dualcap"
FORBIDDEN = {"kopf", "kubernetes", "kubernetes_asyncio", "aiohttp", "kr8s", "lightkube", "kmock"}
# Each layer may import only itself and the layers below it.
BELOW = {
    "api": {"api"},
    "planning": {"planning", "api"},
    "cluster": {"cluster", "planning", "api"},
}
PURE = {"api", "planning"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", sorted(BELOW))
def test_layers_import_only_what_is_below(layer: str) -> None:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files
    for path in files:
        for name in imports(path):
            top = name.split(".")[0]
            if layer in PURE:
                assert top not in FORBIDDEN, f"{path.relative_to(PACKAGE)} imports {name}"
            if top == "dualcap" and name.count(".") >= 1:
                sub = name.split(".")[1]
                assert sub in BELOW[layer] or sub == "__init__", (
                    f"{path.relative_to(PACKAGE)} imports {name}: {layer} may use only {BELOW[layer]}"
                )


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
