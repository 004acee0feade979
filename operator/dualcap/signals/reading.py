"""What every measurement client returns, and how it fails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class Reading:
    """A measured power: ``watts`` (never negative, never NaN) at an aware UTC time ``at``."""

    watts: float
    at: datetime

    @property
    def kw(self) -> float:
        return self.watts / 1000.0


class SignalError(Exception):
    """A measurement that could not be had. ``reason`` is a stable CamelCase word (a
    condition's reason); ``message`` says what a person needs to know."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def utc_now() -> datetime:
    return datetime.now(UTC)
