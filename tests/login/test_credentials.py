"""dualcap's one way to log in (dualcap.login), on kubeconfigs as users have
them: a token, several files in KUBECONFIG, a context chosen, an exec credential plugin
(the EKS/GKE/AKS way) with an expiry, a plugin that fails, and a pod's service account
whose token rotates. The real-cluster tier runs the same against a real kube-apiserver."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from dualcap import login as credentials
from dualcap.login import CredentialsError, load


def kubeconfig(
    path: Path, clusters: dict[str, str], users: dict[str, dict[str, Any]], current: str | None
) -> Path:
    contexts = [{"name": n, "context": {"cluster": n, "user": n}} for n in clusters]
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": s}} for n, s in clusters.items()],
        "users": [{"name": n, "user": u} for n, u in users.items()],
        "contexts": contexts,
    }
    if current:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


def exec_plugin(
    tmp_path: Path, token: str, expires_in: float | None = 3600, fail: bool = False
) -> Path:
    """A credential plugin as `aws eks get-token` is one: prints an ExecCredential, counts its runs."""
    script = tmp_path / "plugin.py"
    expiry = (
        (datetime.now(UTC) + timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%SZ")
        if expires_in is not None
        else None
    )
    status: dict[str, Any] = {"token": token}
    if expiry:
        status["expirationTimestamp"] = expiry
    script.write_text(
        f"import json, sys\n"
        f"open({str(tmp_path / 'runs')!r}, 'a').write('x')\n"
        + ("sys.exit('plugin: not logged in')\n" if fail else "")
        + f"print(json.dumps({{'apiVersion': 'client.authentication.k8s.io/v1', "
        f"'kind': 'ExecCredential', 'status': {status!r}}}))\n"
    )
    return script


def exec_user(script: Path) -> dict[str, Any]:
    return {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": sys.executable,
                     "args": [str(script)], "interactiveMode": "Never"}}  # fmt: skip


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_a_token_kubeconfig(tmp_path: Path) -> None:
    path = kubeconfig(
        tmp_path / "kc", {"a": "https://127.0.0.1:6443"}, {"a": {"token": "t0k"}}, "a"
    )
    creds = load(str(path))
    assert creds.server == "https://127.0.0.1:6443" and creds.bearer() == "t0k"
    assert "t0k" not in repr(creds)


def test_kubeconfig_files_merge_and_a_context_is_chosen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kubeconfig(tmp_path / "one", {"a": "https://127.0.0.1:1"}, {"a": {"token": "ta"}}, "a")
    second = kubeconfig(
        tmp_path / "two", {"b": "https://127.0.0.1:2"}, {"b": {"token": "tb"}}, None
    )
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{second}")
    assert load().server == "https://127.0.0.1:1"  # the first file's current-context
    chosen = load(context="b")
    assert chosen.server == "https://127.0.0.1:2" and chosen.bearer() == "tb"
    with pytest.raises(CredentialsError, match="nope"):
        load(context="nope")


def test_an_exec_plugin_gives_the_token_and_its_expiry(tmp_path: Path) -> None:
    script = exec_plugin(tmp_path, "from-plugin", expires_in=3600)
    path = kubeconfig(
        tmp_path / "kc", {"eks": "https://127.0.0.1:6443"}, {"eks": exec_user(script)}, "eks"
    )
    creds = load(str(path))
    assert creds.bearer() == "from-plugin"
    assert creds.expires_at is not None and not creds.expired()
    assert creds.expired(now=creds.expires_at)  # a minute early, never late


def test_an_expiring_token_is_loaded_again_by_running_the_plugin(tmp_path: Path) -> None:
    script = exec_plugin(tmp_path, "short", expires_in=30)  # inside the margin: expired at once
    path = kubeconfig(
        tmp_path / "kc", {"eks": "https://127.0.0.1:6443"}, {"eks": exec_user(script)}, "eks"
    )
    creds = load(str(path))
    assert creds.expired()
    again = creds.reload()
    assert again.bearer() == "short"
    assert (tmp_path / "runs").read_text() == "xx"  # the plugin ran again


def test_a_failing_plugin_is_a_clear_error(tmp_path: Path) -> None:
    script = exec_plugin(tmp_path, "x", fail=True)
    path = kubeconfig(
        tmp_path / "kc", {"eks": "https://127.0.0.1:6443"}, {"eks": exec_user(script)}, "eks"
    )
    with pytest.raises(CredentialsError, match="exec credential plugin"):
        load(str(path))


def test_no_credentials_anywhere_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="no credentials"):
        load()
    with pytest.raises(CredentialsError, match="no such file"):
        load(str(tmp_path / "missing"))


def test_a_pods_service_account_token_is_read_again_as_it_rotates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("first\n")
    (sa / "ca.crt").write_text("")
    monkeypatch.setattr(credentials, "SERVICE_ACCOUNT", sa)
    monkeypatch.setattr(credentials, "TOKEN_FILE_SECONDS", 0.0)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    creds = load()
    assert creds.server == "https://10.0.0.1:443" and creds.bearer() == "first"
    (sa / "token").write_text("rotated\n")
    assert creds.bearer() == "rotated"
    with pytest.raises(CredentialsError, match="needs a kubeconfig"):
        load(context="x")
