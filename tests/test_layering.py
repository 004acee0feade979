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
