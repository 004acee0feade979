"""Fault injection: requests that fail, slow down, or fail after taking effect."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Rule:
    """Requests matching ``method`` and ``path`` (a regex searched in path?query) get
    ``code`` (0: none, only latency) ``times`` times (-1: until cleared). ``ambiguous``:
    the request takes effect, then the client sees ``code``."""

    method: str | None = None
    path: str = ""
    code: int = 500
    times: int = 1
    retry_after: int = 1
    latency_seconds: float = 0.0
    ambiguous: bool = False
    hits: int = 0
    _regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex = re.compile(self.path)


class Faults:
    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.injected = 0

    def add(self, **kw: object) -> Rule:
        rule = Rule(**kw)  # type: ignore[arg-type]
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def match(self, method: str, path: str, query: str) -> Rule | None:
        target = f"{path}?{query}" if query else path
        for rule in self.rules:
            if rule.times == 0:
                continue
            if rule.method and rule.method != method:
                continue
            if not rule._regex.search(target):
                continue
            if rule.times > 0:
                rule.times -= 1
            rule.hits += 1
            self.injected += 1
            return rule
        return None
