"""Firmware credentials from a mounted Secret: never from annotations, never logged.

The Secret is mounted as a directory with one file per key, `<firmware>.username` and
`<firmware>.password`, where `<firmware>` is asic-rs's firmware name in lower case with
anything but letters and digits removed (`luxos`, `braiinsos`, `vnish`, ...). A firmware
without files uses asic-rs's defaults. The files are read again when they change, as the
kubelet updates a mounted Secret in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


def firmware_key(firmware: str) -> str:
    return re.sub(r"[^a-z0-9]", "", firmware.lower())


@dataclass(frozen=True)
class Login:
    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Login(username={self.username!r}, password=<hidden>)"


class Credentials:
    """Logins by firmware, from a directory (or none)."""

    def __init__(self, directory: str | None):
        self.directory = Path(directory) if directory else None
        self._stamp: tuple[tuple[str, float], ...] = ()
        self._logins: dict[str, Login] = {}

    def __repr__(self) -> str:
        return f"Credentials(directory={str(self.directory)!r}, firmwares={sorted(self._logins)})"

    def _scan(self) -> None:
        if self.directory is None or not self.directory.is_dir():
            self._logins, self._stamp = {}, ()
            return
        try:
            files = sorted(p for p in self.directory.iterdir() if not p.name.startswith("."))
            stamp = tuple((p.name, p.stat().st_mtime) for p in files)
        except OSError:
            return
        if stamp == self._stamp:
            return
        users: dict[str, str] = {}
        passwords: dict[str, str] = {}
        for path in files:
            name, _, part = path.name.rpartition(".")
            if part not in ("username", "password") or not name:
                continue
            try:
                text = path.read_text().strip()
            except OSError:
                continue
            (users if part == "username" else passwords)[firmware_key(name)] = text
        self._logins = {
            key: Login(user, passwords.get(key, "")) for key, user in users.items() if user
        }
        self._stamp = stamp

    def for_firmware(self, firmware: str) -> Login | None:
        self._scan()
        return self._logins.get(firmware_key(firmware))
