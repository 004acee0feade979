"""The agent uses `dualcap.api`, its own client and dualcap's one way to log in
(`dualcap.login`) only: never the planner, the operator's cluster layer, kopf handlers or
kopf, and never the sandbox."""

from __future__ import annotations

from tests.test_layering import PACKAGE, imports


def test_the_agent_imports_only_api_and_itself() -> None:
    files = sorted((PACKAGE / "agent").rglob("*.py"))
    assert files
    for path in files:
        for name in imports(path):
            top, _, rest = name.partition(".")
            assert top != "kopf", f"{path.name} imports kopf"
            if top == "dualcap" and rest:
                assert rest.split(".")[0] in ("api", "agent", "login"), (
                    f"{path.name} imports {name}"
                )


def test_the_agent_loads_no_pydantic() -> None:
    """The agent runs on every ASIC controller: the models (pydantic) are not its to load."""
    import subprocess
    import sys

    code = (
        "import sys, dualcap.cli, dualcap.agent.agent, dualcap.agent.kube, dualcap.agent.miners;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'yaml')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
