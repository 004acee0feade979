"""The miners of a block, from the node's `dualcap.io/miners` annotation.

The value is a comma-separated list of IPv4 addresses (`10.1.2.3`), ranges of the last
octet (`10.1.2.10-59`) and CIDRs (`10.1.3.0/24`: its hosts, without network and broadcast
address below /31). Entries that cannot be read are reported and skipped, so one typo does
not take the rest of the block out of dualcap's hands; a value that names more miners than
one block can hold is refused whole (which addresses to keep would be a guess), and its
size is computed before anything is expanded.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from dualcap.api.names import MAX_BLOCK_MINERS


@dataclass
class Parsed:
    """The addresses of a block (sorted, unique) and what could not be read."""

    addresses: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    too_many: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors and not self.too_many


class _Entry:
    def __init__(self, first: int, last: int):
        self.first, self.last = first, last

    @property
    def size(self) -> int:
        return self.last - self.first + 1


def _entry(text: str) -> _Entry:
    if "/" in text:
        net = ipaddress.IPv4Network(text, strict=False)
        if net.prefixlen >= 31:
            return _Entry(int(net.network_address), int(net.broadcast_address))
        return _Entry(int(net.network_address) + 1, int(net.broadcast_address) - 1)
    if "-" in text:
        start, _, end = text.partition("-")
        first = ipaddress.IPv4Address(start.strip())
        last_octet = end.strip()
        if not last_octet.isdigit() or not 0 <= int(last_octet) <= 255:
            raise ValueError(f"the end of a range is one octet, 0-255: {text!r}")
        last = (int(first) & ~0xFF) | int(last_octet)
        if last < int(first):
            raise ValueError(f"a range must not run backwards: {text!r}")
        return _Entry(int(first), last)
    address = ipaddress.IPv4Address(text)
    return _Entry(int(address), int(address))


def parse_miners(value: str | None, limit: int = MAX_BLOCK_MINERS) -> Parsed:
    """The addresses named by an annotation value; never raises."""
    out = Parsed()
    entries: list[_Entry] = []
    for raw in (value or "").split(","):
        text = raw.strip()
        if not text:
            continue
        try:
            entries.append(_entry(text))
        except ValueError as err:
            out.errors.append(f"{text[:64]!r}: {err}"[:200])
    if len(out.errors) > 10:
        out.errors[10:] = [f"... and {len(out.errors) - 10} more"]
    total = sum(e.size for e in entries)  # an upper bound (overlaps counted twice)
    if total > limit:
        seen: set[int] = set()
        for e in entries:  # overlaps may bring it under the limit: count exactly, bounded
            seen.update(range(e.first, min(e.last, e.first + limit) + 1))
            if len(seen) > limit:
                out.too_many = True
                out.errors.append(f"names more than {limit} miners: one block cannot hold them")
                return out
    unique = sorted({n for e in entries for n in range(e.first, e.last + 1)})
    out.addresses = [str(ipaddress.IPv4Address(n)) for n in unique]
    return out
