"""How every dualcap process logs in: `dualcap run`, `dualcap agent` and `dualcap openadr`
read their credentials here and nowhere else.

- `--kubeconfig` (or `$KUBECONFIG`, several files joined by `:` and merged, as kubectl
  merges them), with `--context` or the file's `current-context`, read by the official
  Kubernetes Python client's loader (`kubernetes.config`): client certificates, tokens,
  token files, and **exec credential plugins** — how EKS (`aws eks get-token`), GKE
  (`gke-gcloud-auth-plugin`) and AKS (`kubelogin`) users reach their clusters. A token from
  a plugin carries its expiry (`expires_at`): every reader loads again when it comes, or
  when the server answers 401.
- Else, in a pod, its service account: the token file is re-read rather than kept, since
  bound tokens rotate (the kubelet rewrites the file well before the old one expires).
- Else `~/.kube/config`.

The `kubernetes` package is imported only to read a kubeconfig: an agent in a pod, which
logs in with its service account, never loads it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Load again this long before a token expires, so no request goes out with a dead one.
EXPIRY_MARGIN = timedelta(seconds=60)
# A service account's token file is read again at most this often.
TOKEN_FILE_SECONDS = 60.0

log = logging.getLogger(__name__)


class CredentialsError(Exception):
    """No usable credentials: the message says where dualcap looked and what was wrong."""


@dataclass(frozen=True)
class Credentials:
    server: str
    source: str  # where they came from, for messages: never a secret
    ca_path: str | None = None
    insecure: bool = False
    tls_server_name: str | None = None
    token: str | None = None
    token_path: str | None = None  # re-read (a service account's bound token rotates)
    cert_path: str | None = None
    key_path: str | None = None
    expires_at: datetime | None = None  # an exec plugin's token: load again before then
    # what to load again from
    kubeconfig: str | None = None
    context: str | None = None
    _file_token: list[Any] = field(default_factory=list, compare=False, repr=False)

    def __repr__(self) -> str:  # never print a token
        return f"Credentials(server={self.server!r}, source={self.source!r})"

    def bearer(self) -> str | None:
        """The bearer token to send now (a token file is read again once a minute)."""
        if self.token_path:
            now = time.monotonic()
            if not self._file_token or now - self._file_token[0] > TOKEN_FILE_SECONDS:
                try:
                    token = Path(self.token_path).read_text().strip()
                except OSError as err:
                    raise CredentialsError(
                        f"cannot read the token file {self.token_path}: {err}"
                    ) from err
                self._file_token[:] = [now, token]
            return str(self._file_token[1])
        return self.token

    def expired(self, now: datetime | None = None) -> bool:
        if self.expires_at is None:
            return False
        return (now or datetime.now(UTC)) >= self.expires_at - EXPIRY_MARGIN

    def reload(self) -> Credentials:
        """The same source loaded again: an exec plugin run again, a token file re-read."""
        if self.kubeconfig is None:
            fresh = replace(self, _file_token=[])
            fresh.bearer()
            return fresh
        return load(self.kubeconfig, self.context)


async def renewed(creds: Credentials, force: bool = False) -> Credentials:
    """``creds`` loaded again (off the event loop: an exec plugin may take a while) when
    they have expired, or when ``force`` says so (the server answered 401). When loading
    fails the old ones are kept, and the server will say what it thinks of them."""
    if not (force or creds.expired()):
        return creds
    try:
        return await asyncio.to_thread(creds.reload)
    except CredentialsError as err:
        log.warning("could not load the credentials again (%s): %s", creds.source, err)
        return creds


def load(kubeconfig: str | None = None, context: str | None = None) -> Credentials:
    """`kubeconfig` (paths joined by os.pathsep), else $KUBECONFIG, else the pod's service
    account, else ~/.kube/config. `context` overrides the kubeconfig's current context."""
    paths = kubeconfig or os.environ.get("KUBECONFIG") or None
    if paths is None:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and (SERVICE_ACCOUNT / "token").exists():
            if context:
                raise CredentialsError("--context needs a kubeconfig; in a pod there is none")
            return in_cluster()
        default = Path.home() / ".kube" / "config"
        if not default.exists():
            raise CredentialsError(
                "no credentials: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, "
                "or run in a pod with a service account"
            )
        paths = str(default)
    return from_kubeconfig(paths, context)


def in_cluster() -> Credentials:
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    creds = Credentials(
        server=f"https://{host}:{port}",
        source="the pod's service account",
        ca_path=str(SERVICE_ACCOUNT / "ca.crt"),
        token_path=str(SERVICE_ACCOUNT / "token"),
    )
    creds.bearer()  # an unreadable token file is said now, not at the first request
    return creds


class _Target:
    """What the loader writes into: the attributes of the client's Configuration it sets."""

    def __init__(self) -> None:
        self.api_key: dict[str, str] = {}
        self.host: str | None = None
        self.ssl_ca_cert: str | None = None
        self.cert_file: str | None = None
        self.key_file: str | None = None
        self.verify_ssl = True
        self.tls_server_name: str | None = None
        self.proxy: str | None = None
        self.refresh_api_key_hook: Any = None


def from_kubeconfig(paths: str, context: str | None = None) -> Credentials:
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.kube_config import KubeConfigLoader, KubeConfigMerger
    from yaml import YAMLError  # as kubernetes, loaded only to read a kubeconfig

    missing = [p for p in paths.split(os.pathsep) if p and not Path(p).expanduser().exists()]
    if missing and len(missing) == len([p for p in paths.split(os.pathsep) if p]):
        raise CredentialsError(f"kubeconfig {paths}: no such file")
    try:
        merged = KubeConfigMerger(paths)  # type: ignore[no-untyped-call]
        if merged.config is None:
            raise CredentialsError(f"kubeconfig {paths}: no configuration in it")
        loader = KubeConfigLoader(  # type: ignore[no-untyped-call]
            config_dict=merged.config, active_context=context, config_base_path=None
        )
        target = _Target()
        loader.load_and_set(target)  # type: ignore[no-untyped-call]
        current = loader.current_context
    except ConfigException as err:
        raise CredentialsError(f"kubeconfig {paths}: {err}") from err
    except (KeyError, TypeError, ValueError, YAMLError) as err:  # a malformed file
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CredentialsError(f"kubeconfig {paths}: malformed ({first})") from err
    name = current.get("name") if isinstance(current, dict) else None
    node = getattr(loader, "_user", None)  # the loader's ConfigNode of the context's user
    user: dict[str, Any] = dict(getattr(node, "value", None) or {})
    bearer = target.api_key.get("BearerToken") or target.api_key.get("authorization")
    token = bearer.split(" ", 1)[1] if bearer and bearer.startswith("Bearer ") else None
    if "exec" in user and not token and not target.cert_file:
        command = (user["exec"] or {}).get("command", "?")
        raise CredentialsError(
            f"kubeconfig {paths}, context {name}: the exec credential plugin {command!r} gave "
            "no token or certificate (its error is logged above)"
        )
    if not target.host:
        raise CredentialsError(f"kubeconfig {paths}, context {name}: the cluster has no server")
    expiry = loader.__dict__.get("expiry")
    if isinstance(expiry, datetime) and expiry.tzinfo is None:
        expiry = expiry.replace(tzinfo=UTC)
    return Credentials(
        server=target.host.rstrip("/"),
        source=f"kubeconfig {paths}, context {name}",
        ca_path=target.ssl_ca_cert,
        insecure=not target.verify_ssl,
        tls_server_name=target.tls_server_name,
        token=token,
        cert_path=target.cert_file,
        key_path=target.key_file,
        expires_at=expiry if isinstance(expiry, datetime) else None,
        kubeconfig=paths,
        context=context,
    )
